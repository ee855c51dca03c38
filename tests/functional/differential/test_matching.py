"""device_spec matching against nova's Whitelist, one generator per class."""

from __future__ import annotations

import collections
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import device_spec
from tests.functional.differential import base
from tests.functional.differential import generators as gen

# device comparisons per generator; about 30,000 per run in all
CASES = {'plain': 1200, 'regex_case': 800, 'devname': 600, 'remote': 600}


def ours(specs: device_spec.DeviceSpecList, host: gen.Host,
         dev: dict[str, Any]) -> dict[str, Any] | None:
    parent = dev['parent_addr']
    own = host.pfs.get(dev['address'], {}).get('ifname')
    parent_name = host.pfs.get(parent or '', {}).get('ifname')
    serial = dev.get('capabilities', {}).get('vpd', {}).get(
        'card_serial_number')
    spec = specs.match(addr.PciAddress.parse(dev['address']),
                       int(dev['vendor_id'], 16), int(dev['product_id'], 16),
                       addr.PciAddress.parse(parent) if parent else None,
                       own, parent_name, serial)
    if spec is None:
        return None
    tags: dict[str, Any] = dict(spec.tags)
    tags.update((k, None) for k in spec.null_tags)
    return {'index': specs.specs.index(spec), 'tags': tags}


class MatchingTest(base.DifferentialTestCase):

    def _run(self, kind: str, **kw: Any) -> collections.Counter[str]:
        rng = self.rng()
        seen: collections.Counter[str] = collections.Counter()
        for case in range(CASES[kind]):
            host = gen.Host(rng, serials=kind == 'remote')
            values = gen.device_specs(rng, host, **kw)
            nova = self.oracle.ask({'cmd': 'match', 'pfs': host.pfs,
                                    'specs': values,
                                    'devices': host.devices})
            where = self.where(case, 'specs=%s devices=%s' % (
                values, host.devices))
            self.assertNotIn('error', nova, where)
            try:
                default = device_spec.DeviceSpecList.from_config(values)
                compat = device_spec.DeviceSpecList.from_config(
                    values, nova_compatible=True)
            except exception.InvalidDeviceSpec as exc:
                self.fail('%s: nova accepts, the core refuses: %s' % (
                    where, exc))
            for dev, theirs in zip(host.devices, nova['devices'],
                                   strict=True):
                self.assertEqual(theirs, ours(compat, host, dev),
                                 '%s: device %s' % (where, dev['address']))
                got = ours(default, host, dev)
                if got != theirs:
                    # documented: regexes anchored at both ends and
                    # case-insensitive unless nova_compatible_matching
                    seen['regex'] += 1
                    self.assertTrue(any(isinstance(
                        s.address, addr.RegexAddressSpec)
                        for s in default.specs), where)
                seen['compared'] += 1
        # about 6.8 devices a host: the cases really compared something
        self.assertGreater(seen['compared'], CASES[kind] * 5)
        return seen

    def test_plain(self) -> None:
        seen = self._run('plain')
        self.assertEqual(0, seen['regex'])

    def test_regex_case_and_anchoring(self) -> None:
        seen = self._run('regex_case', regex_case=True)
        # the documented difference still holds
        self.assertGreater(seen['regex'], 0)

    def test_devname(self) -> None:
        self._run('devname', devnames=True)

    def test_remote_managed_needs_a_vpd_serial(self) -> None:
        self._run('remote', remote=True)
