"""Fit decisions, chosen devices and pool order against a nova compute.

Each case is one compute's history: a start with devices already in use
(nova does not pool them), then claims and releases; after every step the
core and nova must agree on the decision, on the devices handed out (per
request) and on nova's pools in nova's order with the devices in the order
nova hands them out. The core re-reads its report from JSON at every step,
so the order it keeps is the one a store persists.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as summary_mod
from tests.functional.differential import base
from tests.functional.differential import generators as gen

# histories per generator; each has a start and 3 to 6 steps
CASES = {'fits': 400, 'history': 500, 'pf_mixed': 350, 'null_tags': 250,
         'parent_ifname': 250}


def report(host: gen.Host, specs: device_spec.DeviceSpecList,
           started: dict[str, list[str]]) -> report_mod.HostReport:
    owner = {a: uuid for uuid, addresses in started.items()
             for a in addresses}
    devices = []
    for dev in host.devices:
        parent = dev['parent_addr']
        spec = specs.match(addr.PciAddress.parse(dev['address']),
                           int(dev['vendor_id'], 16),
                           int(dev['product_id'], 16),
                           addr.PciAddress.parse(parent) if parent else None,
                           host.pfs.get(dev['address'], {}).get('ifname'),
                           host.pfs.get(parent or '', {}).get('ifname'))
        if spec is None:
            continue
        used = dev['address'] in owner
        devices.append(report_mod.Device(
            dev['address'], dev['vendor_id'], dev['product_id'],
            dev['dev_type'], parent_address=parent,
            numa_node=dev['numa_node'], tags=dict(spec.pool_tags),
            null_tags=spec.null_tags,
            parent_ifname=dev.get('parent_ifname'),
            status='claimed' if used else 'available',
            owner=owner.get(dev['address'])))
    cells = [report_mod.NumaCell(i, s) for i, s in enumerate(host.sockets)]
    return report_mod.HostReport('h', 1, devices, cells)


def reread(rep: report_mod.HostReport,
           validate: bool) -> report_mod.HostReport:
    if validate:
        return report_mod.HostReport.from_json(rep.to_json())
    data = json.loads(rep.to_json())
    return report_mod.HostReport(
        data['host'], data['generation'],
        [report_mod.Device.from_dict(d) for d in data['devices']],
        [report_mod.NumaCell(c['id'], c['socket'])
         for c in data['numa_cells']])


def pool_lists(hp: pools_mod.HostPools) -> list[list[str]]:
    return [[hp.devices[i].address for i in p.free] for p in hp.pools
            if p.free]



def claim_request(claim: dict[str, Any], aliases: Any
                  ) -> request_mod.RequestSet:
    """The flavor of a generated claim, as the plugin reads it."""
    extra = {'pci_passthrough:alias': claim['asked']}
    if claim['policy']:
        extra['hw:pci_numa_affinity_policy'] = claim['policy']
    return request_mod.RequestSet.from_extra_specs(extra, aliases)


def assert_claimed_as_nova(test: Any, fit: Any, got: Any, at: str) -> None:
    """nova-compute's claim (``got``: the devices it took, None when it
    failed) took what the plugin's device-level fit takes."""
    test.assertEqual(got is not None, fit.ok,
                     '%s: nova compute claims %s' % (at, got))
    if fit.ok:
        test.assertEqual([list(d) for d in fit.devices], got, at)

class HistoryTest(base.DifferentialTestCase):

    def _case(self, rng: Any, kind: str) -> dict[str, Any]:
        host = gen.Host(rng, max_vfs=4,
                        ifnames=1.0 if kind == 'parent_ifname' else 0.5)
        values = gen.device_specs(rng, host)
        if kind == 'null_tags':
            # a null tag next to specs without it: pools nova keeps apart
            null: dict[str, Any] = {'physical_network': None}
            if host.pfs and rng.random() < 0.7:
                null['address'] = rng.choice(sorted(host.pfs))
            values.insert(rng.randint(0, len(values)), json.dumps(null))
            vfs = [d['address'] for d in host.devices
                   if d['dev_type'] == 'type-VF']
            if vfs and rng.random() < 0.3:
                # one VF with another single tag, first: the pool nova's
                # lookup lets the null-tagged VFs join (documented)
                values.insert(0, json.dumps({
                    'address': rng.choice(vfs),
                    rng.choice(('trusted', 'live_migratable')): 'true'}))
        alias_values = gen.aliases(rng, host)
        names = sorted({json.loads(v)['name'] for v in alias_values})
        pf_names = sorted({json.loads(v)['name'] for v in alias_values
                           if json.loads(v).get('device_type') == 'type-PF'})
        start = []
        if kind != 'fits':
            for n in range(rng.randint(0, 2)):
                picked = [d['address'] for d in host.devices
                          if rng.random() < 0.25]
                start.append(('old-%d' % n, picked))
        ops: list[dict[str, Any]] = []
        claimed: list[str] = [uuid for uuid, _a in start]
        for n in range(rng.randint(3, 6)):
            if kind != 'fits' and claimed and rng.random() < 0.35:
                ops.append({'release': claimed.pop(
                    rng.randrange(len(claimed)))})
                continue
            parts = ['%s:%d' % (rng.choice(names), rng.choice((1, 1, 2, 3)))
                     for _ in range(rng.randint(1, 2))]
            if kind == 'pf_mixed' and pf_names:
                parts[0] = '%s:1' % rng.choice(pf_names)
                parts.append('%s:%d' % (rng.choice(names),
                                        rng.choice((1, 2))))
                rng.shuffle(parts)
            uuid = 'inst-%d' % n
            ops.append({'claim': {
                'asked': ','.join(parts), 'uuid': uuid,
                'policy': rng.choice((None,) * 3 + alias_mod.NUMA_POLICIES),
                'cells': rng.choice((None, None, [0], [1], [0, 1]))}})
            claimed.append(uuid)
        return {'cmd': 'scenario', 'pfs': host.pfs, 'specs': values,
                'aliases': alias_values, 'devices': host.devices,
                'sockets': list(host.sockets), 'start': start, 'ops': ops,
                'host': host}

    def _run(self, kind: str, until: str | None = None
             ) -> collections.Counter[str]:
        """CASES[kind] random histories; with ``until``, more (up to four
        times as many) until that rare outcome has been seen."""
        rng = self.rng()
        seen: collections.Counter[str] = collections.Counter()
        number = 0
        while number < CASES[kind] or (
                until and not seen[until] and number < CASES[kind] * 4):
            case = self._case(rng, kind)
            self._check(case, self.where(number, json.dumps(
                {k: v for k, v in case.items() if k != 'host'})), seen)
            number += 1
        self.assertGreaterEqual(seen['compared'], CASES[kind] * 3)
        return seen

    def _check(self, case: dict[str, Any], where: str,
               seen: collections.Counter[str]) -> None:
        """One history, step by step, against nova's."""
        host = case.pop('host')
        nova = self.oracle.ask(case)
        specs = device_spec.DeviceSpecList.from_config(case['specs'])
        aliases = alias_mod.parse_aliases(case['aliases'])
        rep = report(host, specs, nova['started'])
        merged = nova['merged']
        for step, (op, theirs) in enumerate(
                zip(case['ops'], nova['steps'], strict=True)):
            at = '%s step %d %s' % (where, step, op)
            if merged:
                # documented: nova's pool lookup lets a device of a
                # spec with a null tag join a pool of another spec
                # (a null tag equals a missing key); the core pools
                # by the exact key. The histories part here.
                self.assertTrue(any(spec.null_tags
                                    for spec in specs.specs), at)
                seen['null_tag_joins_other_pool'] += 1
                break
            # what a store keeps, read back (the schema checked once)
            hp = pools_mod.HostPools.from_report(reread(rep, step == 0))
            if 'release' in op:
                hp.release(op['release'])
            else:
                claim = op['claim']
                rs = claim_request(claim, aliases)
                fit = hp.fit(rs, claim['cells'])
                self.assertEqual(
                    fit.ok, summary_mod.Summary(hp).fits(
                        rs, claim['cells']), at)
                assert_claimed_as_nova(self, fit, theirs['claim'], at)
                if fit.ok:
                    hp.consume(fit, claim['uuid'])
                    seen['fits'] += 1
                if theirs['support'] != fit.ok:
                    # documented: nova's scheduler ignores the PF/VF
                    # dependency between the requests of one flavor;
                    # nova's compute claim then fails.
                    self.assertTrue(theirs['support'], at)
                    self.assertTrue(any(r.wants_pf for r in rs.requests)
                                    and len(rs.requests) > 1, at)
                    seen['pf_vf_within_one_fit'] += 1
            merged = theirs['merged']
            if merged:
                continue  # devices joined another pool: see above
            self.assertEqual([p for p in theirs['pools'] if p],
                             pool_lists(hp), '%s: pools' % at)
            rep = hp.report
            seen['compared'] += 1

    def test_fits(self) -> None:
        seen = self._run('fits')
        # Both decisions are common. A claim fits at about 11.5% of the
        # steps (206 of 1,800 a run, standard deviation 15, measured over
        # 17 runs and 9,036 steps): the bound at 10% failed about one run
        # in 30 by chance. 5% is 8 deviations away.
        self.assertGreater(seen['fits'], seen['compared'] // 20, seen)
        self.assertLess(seen['fits'], seen['compared'] * 9 // 10, seen)

    def test_history(self) -> None:
        self._run('history')

    def test_null_tags(self) -> None:
        # The documented difference is rare (2.4% of the histories,
        # measured over 3,000: none in about 1 run of 500 of 250 by
        # chance): more are drawn until it shows, so that only nova no
        # longer having it fails here.
        seen = self._run('null_tags', until='null_tag_joins_other_pool')
        # the documented difference still holds
        self.assertGreater(seen['null_tag_joins_other_pool'], 0, seen)

    def test_parent_ifname(self) -> None:
        self._run('parent_ifname')

    def test_pf_mixed_requests(self) -> None:
        # The documented difference is rare (1.2% of the histories,
        # measured over 3,000: none in about 1 run of 60 of 350 by
        # chance): more are drawn until it shows, so that only nova no
        # longer having it fails here.
        seen = self._run('pf_mixed', until='pf_vf_within_one_fit')
        # the documented difference still holds
        self.assertGreater(seen['pf_vf_within_one_fit'], 0, seen)
