"""Property tests: parsers fail only with Invalid; the pool state machine."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import testtools
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from passthrough_plugin import exception
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from tests.unit.pci import fakes
from tests.unit.pci import strategies
from tests.unit.pci import test_report

T = TypeVar('T')

ADDRESS_CHARS = '0123456789abcdefABCDEFg:.* -+x\n'
REGEX_CHARS = '0123456789abf.*+?()[]{}|^$\\-,:'
near_addresses = st.text(alphabet=ADDRESS_CHARS, max_size=16)
regexes = st.one_of(st.text(alphabet=REGEX_CHARS, max_size=12),
                    strategies.regex_like)

SPEC_KEYS = ('vendor_id', 'product_id', 'address', 'devname',
             'physical_network', 'trusted', 'remote_managed',
             'resource_class', 'traits', 'managed', 'live_migratable',
             'one_time_use')
ALIAS_KEYS = ('name', 'vendor_id', 'product_id', 'device_type',
              'numa_policy', 'resource_class', 'traits', 'live_migratable',
              'capability_type')
SPEC_VALUES = st.one_of(
    strategies.jsonish, near_addresses,
    st.sampled_from(['8086', '*', 'ffff', '10000', 'type-VF', 'type-PF',
                     'required', 'socket', 'yes', 'no', 'true', 'x',
                     'CUSTOM_A', 'a,b', '0000:81:00.0', '*:0a:00.*']),
    st.dictionaries(st.sampled_from(addr.RegexAddressSpec.KEYS + ('x',)),
                    regexes, max_size=4))


def only_invalid(fn: Callable[..., T], *args: Any,
                 says: str | None = None) -> T | None:
    """Call ``fn``; the project's Invalid errors are the only ones allowed.

    ``says``: text every error message must hold (the option, the key).
    """
    try:
        return fn(*args)
    except exception.Invalid as exc:
        # a real message, never the fallback of a bad format call (the
        # unformatted template); a "%(" may come from the input itself
        template = type(exc).msg_fmt
        assert exc.message, exc.message
        assert not ('%(' in template and exc.message.startswith(template)), \
            exc.message
        assert '%(' not in exc.message or '%(' in repr(args), exc.message
        if says is not None:
            assert says in exc.message, (says, exc.message)
        return None


# An address regex is matched against fields of at most 4 characters:
# anything slower than this is runaway backtracking, not a busy machine.
MATCH_BOUND = 30


@contextlib.contextmanager
def bounded(seconds: int, what: str) -> Iterator[None]:
    """Fail, naming ``what``, instead of hanging the run past ``seconds``.

    (The property tests run without a deadline, so a pattern whose
    matching backtracks exponentially would hang CI with no message.)
    """
    def expire(_signum: int, _frame: Any) -> None:
        raise AssertionError('still running after %d s: %s' % (seconds,
                                                                what))
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


config_values = st.lists(st.one_of(
    st.text(max_size=30), strategies.nested_json,
    strategies.jsonish.map(json.dumps),
    strategies.keyed(SPEC_KEYS, SPEC_VALUES).map(json.dumps),
    st.lists(strategies.keyed(SPEC_KEYS, SPEC_VALUES),
             max_size=3).map(json.dumps),
), max_size=3)
alias_values = st.lists(st.one_of(
    st.text(max_size=30), strategies.nested_json,
    strategies.jsonish.map(json.dumps),
    strategies.keyed(ALIAS_KEYS, SPEC_VALUES).map(json.dumps),
    st.lists(strategies.keyed(ALIAS_KEYS, SPEC_VALUES),
             max_size=3).map(json.dumps),
), max_size=3)

ALIASES = alias_mod.parse_aliases([json.dumps(a) for a in (
    {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
     'device_type': 'type-VF'},
    {'name': 'gpu', 'vendor_id': '10de', 'product_id': '1eb8'},
)])
EXTRA_KEYS = (request_mod.ALIAS_KEY, request_mod.NUMA_POLICY_KEY,
              request_mod.ANTI_AFFINITY_KEY, request_mod.HEADROOM_KEY,
              'passthrough:other', 'hw:cpu_policy')
name_counts = st.lists(
    st.builds(lambda name, sep, count, pad: pad + name + sep + count + pad,
              st.sampled_from(('vf', 'gpu', 'vf', 'gpu', 'nvme', '')),
              st.sampled_from((':', ':', ' : ', '', '::')),
              strategies.counts, st.sampled_from(('', ' '))),
    min_size=1, max_size=3).map(','.join)
extra_values = st.one_of(
    st.text(max_size=20), name_counts,
    st.sampled_from(strategies.POLICIES + ('true', 'false', 'maybe')))
extra_specs = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(EXTRA_KEYS),
                              st.text(max_size=15)),
                    extra_values, max_size=4),
    st.builds(lambda a, h: {request_mod.ALIAS_KEY: a,
                            request_mod.HEADROOM_KEY: h},
              name_counts, name_counts),
    name_counts.map(lambda v: {request_mod.ALIAS_KEY: v}))


class ParserPropertyTest(testtools.TestCase):

    @strategies.SETTINGS
    @given(st.one_of(st.text(max_size=20), near_addresses))
    def test_pci_address_parse(self, text: str) -> None:
        parsed = only_invalid(addr.PciAddress.parse, text,
                              says='Invalid PCI address')
        if parsed is not None:
            self.assertEqual(parsed, addr.PciAddress.parse(str(parsed)))
            self.assertRegex(str(parsed),
                             r'\A[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]\Z')

    @strategies.SETTINGS
    @given(st.one_of(strategies.jsonish, near_addresses,
                     st.dictionaries(st.sampled_from(
                         addr.RegexAddressSpec.KEYS), regexes, max_size=4),
                     st.fixed_dictionaries({
                         key: st.text(alphabet='0123456789abcdefABCDEF',
                                      min_size=0, max_size=5)
                         for key in addr.RegexAddressSpec.KEYS})))
    def test_address_spec(self, value: Any) -> None:
        spec = only_invalid(addr.address_spec, value)
        if spec is not None:
            with bounded(MATCH_BOUND, 'matching addresses with the address '
                         'spec %s' % json.dumps(value)[:2000]):
                exact = spec.exact()
                if exact is not None:
                    self.assertTrue(spec.match(exact))
                # the normalised form means the same
                again = addr.address_spec(spec.to_config())
                for probe in ('0000:00:00.0', '0000:0a:00.1',
                              'ffff:ff:1f.7', '0000:81:02.3'):
                    a = addr.PciAddress.parse(probe)
                    self.assertEqual(spec.match(a), again.match(a))

    @strategies.SETTINGS
    @given(config_values)
    def test_device_spec_from_config(self, values: list[str]) -> None:
        parsed = only_invalid(device_spec.DeviceSpecList.from_config, values,
                              says='[pci] device_spec value ')
        if parsed is not None:
            a = addr.PciAddress.parse('0000:81:02.1')
            pf = addr.PciAddress.parse('0000:81:00.0')
            with bounded(MATCH_BOUND, 'matching a device with [pci] '
                         'device_spec %s' % json.dumps(values)[:2000]):
                parsed.match(a, 0x8086, 0x154c, pf, 'eth0', 'ens1f0')
            for spec in parsed.specs:
                for key in device_spec.BOOL_TAGS:
                    if key in spec.tags:
                        self.assertIn(spec.tags[key], ('true', 'false'))

    @strategies.SETTINGS
    @given(alias_values)
    def test_parse_aliases(self, values: list[str]) -> None:
        parsed = only_invalid(alias_mod.parse_aliases, values,
                              says='[pci] alias value ')
        for alias in (parsed or {}).values():
            self.assertIn(alias.numa_policy, alias_mod.NUMA_POLICIES)
            self.assertTrue(alias.specs)
            for spec in alias.specs:
                self.assertEqual(alias.dev_type, spec.dev_type)

    @strategies.SETTINGS
    @given(extra_specs)
    def test_request_from_extra_specs(self, specs: dict[str, str]) -> None:
        rs = only_invalid(request_mod.RequestSet.from_extra_specs, specs,
                          ALIASES, says='Invalid flavor extra spec ')
        if rs is not None:
            for r in rs.requests + rs.headroom:
                self.assertGreaterEqual(r.count, 1)
                self.assertIn(r.alias_name, ALIASES)
                self.assertIn(r.numa_policy, alias_mod.NUMA_POLICIES)

    @strategies.SETTINGS
    @given(name_counts)
    def test_name_count_lists(self, value: str) -> None:
        parsed = only_invalid(request_mod.parse_counts,
                              request_mod.ALIAS_KEY, value)
        if parsed is not None:
            self.assertEqual(len(value.split(',')), len(parsed))
            for name, count in parsed:
                self.assertGreaterEqual(count, 1)
                self.assertIn(f'{name}', value)

    @strategies.SETTINGS
    @given(strategies.jsonish)
    # Found by CI's random profile: the input's own "%(" in the message.
    @example({'%(': None})
    def test_report_from_dict_garbage(self, data: Any) -> None:
        only_invalid(report_mod.HostReport.from_dict, data,
                     says='Invalid host report for ')

    @strategies.SETTINGS
    @given(st.one_of(st.text(max_size=40), st.binary(max_size=40),
                     strategies.nested_json,
                     strategies.jsonish.map(json.dumps)))
    def test_report_from_json_garbage(self, text: str | bytes) -> None:
        only_invalid(report_mod.HostReport.from_json, text,
                     says=' at $')

    def _check_loaded(self, doc: dict[str, Any], data: Any) -> None:
        """``doc`` is rejected with Invalid, or it is a usable report."""
        report = only_invalid(report_mod.HostReport.from_dict, doc,
                              says='Invalid host report for ')
        if report is None:
            return
        # a valid report holds only canonical addresses, ids and names,
        # and integers where the schema says integer
        self.assertIs(int, type(report.generation))
        for cell in report.numa_cells:
            self.assertIs(int, type(cell.id))
        for d in report.devices:
            self.assertIn(type(d.numa_node), (int, type(None)))
            self.assertIn(type(d.iommu_group), (int, type(None)))
            for value in (d.address, d.parent_address):
                if value is not None:
                    self.assertEqual(value, addr.normalize(value))
            for value in (d.vendor_id, d.product_id):
                self.assertRegex(value, r'\A[0-9a-f]{4}\Z')
            for value in (d.resource_class, *d.traits):
                self.assertRegex(value, r'\A[A-Z0-9_]+\Z')
        for members in report.iommu.foreign_members.values():
            for value in members:
                self.assertEqual(value, addr.normalize(value))
        loaded = report.to_dict()
        self.assertEqual(loaded,
                         report_mod.HostReport.from_dict(loaded).to_dict())
        hp = pools_mod.HostPools.from_report(report)
        rs = data.draw(strategies.request_sets())
        fit = hp.fit(rs, data.draw(st.one_of(st.none(), st.just([0]))))
        if fit.ok:
            hp.consume(fit, 'fuzz')
            hp.release('fuzz')

    @strategies.SETTINGS
    @given(st.data())
    def test_report_mutated(self, data: Any) -> None:
        # One field of a complete, valid report replaced by anything.
        doc = test_report.canonical()
        parent, key = data.draw(st.sampled_from(paths(doc)))
        if isinstance(parent, dict) and data.draw(st.integers(0, 4)) == 0:
            del parent[key]
        else:
            parent[key] = data.draw(st.one_of(strategies.jsonish,
                                              SPEC_VALUES))
        self._check_loaded(doc, data)

    @strategies.SETTINGS
    @given(st.data())
    def test_report_near_miss(self, data: Any) -> None:
        # One leaf of a valid report changed a little: a trailing newline,
        # a space, upper case, one character less or more, a type change.
        doc = test_report.canonical()
        leaves = [(p, k) for p, k in paths(doc)
                  if not isinstance(p[k], (dict, list))]
        parent, key = data.draw(st.sampled_from(leaves))
        parent[key] = data.draw(near_miss(parent[key]))
        self._check_loaded(doc, data)


def paths(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, depth first."""
    out: list[tuple[Any, Any]] = []
    keys = range(len(doc)) if isinstance(doc, list) else sorted(doc)
    for key in keys:
        out.append((doc, key))
        if isinstance(doc[key], (dict, list)):
            out.extend(paths(doc[key]))
    return out


def near_miss(value: Any) -> Any:
    if isinstance(value, str):
        return st.sampled_from([value + '\n', value + ' ', ' ' + value,
                                value.upper(), value[:-1], value + '0',
                                '0' + value, value.replace('0', 'O')])
    if isinstance(value, bool):
        return st.sampled_from([not value, int(value), str(value).lower()])
    if isinstance(value, int):
        return st.sampled_from([value - 1, value + 1, -value - 1,
                                str(value), float(value), value + 0.5])
    return st.sampled_from(['', 0, False, [], {}])


def check_invariants(test: testtools.TestCase,
                     hp: pools_mod.HostPools) -> None:
    """A PF and its VFs are never both in use; bookkeeping is consistent."""
    devices = hp.report.devices
    in_use = {d.address for d in devices if d.status in report_mod.IN_USE}
    for d in devices:
        if d.address in in_use and d.parent_address:
            test.assertNotIn(d.parent_address, in_use,
                             f'PF {d.parent_address} and its VF {d.address} '
                             'are both in use')
    owned = [i for held in hp.owners.values() for i, _s in held]
    test.assertEqual(len(owned), len(set(owned)), 'a device has two owners')
    test.assertEqual(in_use, {devices[i].address for i in owned})
    for owner, held in hp.owners.items():
        for i, _s in held:
            test.assertEqual(owner, devices[i].owner)


def check_fit(test: testtools.TestCase, hp: pools_mod.HostPools,
              fit: pools_mod.Fit,
              rs: request_mod.RequestSet | None = None,
              cells: list[int] | None = None) -> None:
    """What an accepted fit promises, checked device by device."""
    chosen = list(fit.addresses)
    test.assertEqual(len(chosen), len(set(chosen)), 'chosen twice')
    test.assertFalse(set(chosen) & set(fit.companions),
                     'a companion is also a chosen device')
    test.assertEqual(len(fit.companions), len(set(fit.companions)))
    for address in chosen + list(fit.companions):
        device = hp.report.device(address)
        test.assertEqual('available', device.status,
                         f'{address} handed out while {device.status}')
    # taking one member takes the whole IOMMU group
    taken = set(chosen) | set(fit.companions)
    groups = {hp.report.device(a).iommu_group for a in taken} - {None}
    for d in hp.report.devices:
        if d.iommu_group in groups:
            test.assertIn(d.address, taken,
                          f'group {d.iommu_group} split')
    # no PF together with one of its VFs
    for address in taken:
        parent = hp.report.device(address).parent_address
        test.assertNotIn(parent, taken, f'{address} with its PF')
    if rs is None:
        return
    test.assertEqual(len(rs.requests), len(fit.devices))
    sockets = {c.id: c.socket for c in hp.report.numa_cells}
    for req, group in zip(rs.requests, fit.devices, strict=True):
        test.assertEqual(req.count, len(group), req.describe())
        devices = [hp.report.device(a) for a in group]
        for d in devices:
            test.assertTrue(any(
                (s.vendor_id is None or s.vendor_id == int(d.vendor_id, 16))
                and (s.product_id is None
                     or s.product_id == int(d.product_id, 16))
                and (s.dev_type is None or s.dev_type == d.dev_type)
                for s in req.specs), f'{d.address} for {req.describe()}')
            if d.dev_type == 'type-PF':
                test.assertTrue(req.wants_pf, d.address)
            if cells and req.numa_policy == 'required':
                test.assertIn(d.numa_node, cells, d.address)
            if cells and req.numa_policy == 'legacy':
                test.assertIn(d.numa_node, [*cells, None], d.address)
            if cells and req.numa_policy == 'socket':
                wanted = {sockets.get(c) for c in cells}
                test.assertIn(sockets.get(d.numa_node), wanted, d.address)
        if req.anti_affinity:
            parents = [d.parent_address for d in devices
                       if d.dev_type == 'type-VF']
            test.assertEqual(len(parents), len(set(parents)),
                             f'VFs of one PF for {req.describe()}')


REASONS = (explain.NO_MATCH, explain.INSUFFICIENT, explain.NUMA,
           explain.ANTI_AFFINITY, explain.HEADROOM, explain.GROUP,
           explain.NO_IOMMU)


def check_reason(test: testtools.TestCase, hp: pools_mod.HostPools,
                 fit: pools_mod.Fit, rs: request_mod.RequestSet,
                 cells: list[int] | None) -> None:
    """A refusal has a known code and a sentence that fits the case."""
    test.assertIn(fit.reason, REASONS)
    test.assertIn(hp.host, fit.detail)
    names = [r.alias_name for r in rs.requests + rs.headroom]
    test.assertTrue(any(f' x {n} ' in fit.detail for n in names),
                    fit.detail)
    if fit.reason == explain.NUMA:
        test.assertTrue(cells)
    if fit.reason == explain.ANTI_AFFINITY:
        test.assertTrue(rs.vf_anti_affinity)
    if fit.reason == explain.HEADROOM:
        test.assertTrue(rs.headroom)
        test.assertTrue(hp.fits(request_mod.RequestSet(rs.requests), cells))
    if fit.reason == explain.NO_IOMMU:
        test.assertFalse(hp.report.iommu.enabled)


class PoolPropertyTest(testtools.TestCase):

    @strategies.SETTINGS
    @given(st.data())
    def test_consume_then_release_restores_exact_state(
            self, data: Any) -> None:
        report = data.draw(strategies.hosts())
        hp = pools_mod.HostPools.from_report(report)

        def state() -> tuple[Any, ...]:
            # The same devices free; nova's pool order and the order in a
            # pool follow history (pci/pool_order.py), so not compared.
            devices = [{k: v for k, v in d.items()
                        if k not in ('pool_stamp', 'join_stamp')}
                       for d in report.to_dict()['devices']]
            return (devices, sorted(sorted(f) for f in fakes.free_lists(hp)),
                    list(hp.state),
                    {k: list(v) for k, v in hp.owners.items()})

        before = state()
        consumers = []
        for n in range(data.draw(st.integers(1, 3))):
            rs = data.draw(strategies.request_sets())
            cells = data.draw(strategies.numa_cells(report))
            fit = hp.fit(rs, cells)
            if not fit.ok:
                check_reason(self, hp, fit, rs, cells)
                self.assertRaises(exception.ClaimFailed, hp.consume, fit,
                                  'new')
                continue
            check_fit(self, hp, fit, rs, cells)
            hp.consume(fit, f'new-{n}')
            consumers.append(f'new-{n}')
            check_invariants(self, hp)
            # the headroom the fit promised is still free
            self.assertTrue(hp.fits(request_mod.RequestSet(rs.headroom),
                                    cells))
        for consumer in data.draw(st.permutations(consumers)):
            hp.release(consumer)
        self.assertEqual(before, state())

    @strategies.FEW
    @given(st.data())
    def test_random_sequences(self, data: Any) -> None:
        report = data.draw(strategies.hosts())
        hp = pools_mod.HostPools.from_report(report)
        check_invariants(self, hp)
        consumers = ['c0', 'c1', 'c2', 'other-instance']
        old_fits: list[pools_mod.Fit] = []
        for _step in range(data.draw(st.integers(1, 8))):
            action = data.draw(st.sampled_from(('fit', 'fit', 'release',
                                                'stale')))
            consumer = data.draw(st.sampled_from(consumers))
            if action == 'release':
                held = set(hp.held_by(consumer))
                released = hp.release(consumer)
                self.assertEqual(held, set(released))
                self.assertEqual([], hp.held_by(consumer))
                for address in released:
                    self.assertEqual('available',
                                     hp.report.device(address).status)
            elif action == 'stale' and old_fits:
                fit = data.draw(st.sampled_from(old_fits))
                before = report.to_dict()
                try:
                    hp.consume(fit, consumer)
                except exception.ClaimFailed:
                    self.assertEqual(before, report.to_dict())
            else:
                rs = data.draw(strategies.request_sets())
                cells = data.draw(strategies.numa_cells(report))
                fit = hp.fit(rs, cells)
                if fit.ok:
                    check_fit(self, hp, fit, rs, cells)
                    old_fits.append(fit)
                    taken = hp.consume(fit, consumer)
                    for address in taken:
                        device = hp.report.device(address)
                        self.assertEqual((consumer, 'claimed'),
                                         (device.owner, device.status))
            check_invariants(self, hp)
            # the report stays valid through every step
            report_mod.HostReport.from_dict(report.to_dict())
