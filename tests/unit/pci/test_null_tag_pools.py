"""A null tag never lets a device join another spec's pool (nova's does)."""

from __future__ import annotations

import testtools

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

PF = '0000:81:00.0'
VFS = ['0000:81:02.%d' % n for n in range(3)]
ALIASES = alias_mod.parse_aliases([
    '{"name": "lm", "vendor_id": "15b3", "product_id": "1018", '
    '"device_type": "type-VF", "live_migratable": "true"}'])


def host() -> pools_mod.HostPools:
    """Spec A tags VFS[0] live_migratable; spec B gives the other VFs
    ``"physical_network": null`` (nova would pool them with VFS[0])."""
    devices = [report_mod.Device(
        VFS[0], '15b3', '1018', 'type-VF', parent_address=PF,
        tags={'live_migratable': 'true'})]
    devices += [report_mod.Device(
        vf, '15b3', '1018', 'type-VF', parent_address=PF,
        null_tags=('physical_network',)) for vf in VFS[1:]]
    return pools_mod.HostPools.from_report(
        report_mod.HostReport('h', devices=devices))


def wanted(count: int) -> request_mod.RequestSet:
    return request_mod.RequestSet.from_extra_specs(
        {'pci_passthrough:alias': 'lm:%d' % count}, ALIASES)


class NullTagPoolsTest(testtools.TestCase):

    def test_pools_by_the_exact_key(self) -> None:
        hp = host()
        self.assertEqual(2, len(hp.pools))
        self.assertIsNot(hp.pool_of[0], hp.pool_of[1])
        self.assertIs(hp.pool_of[1], hp.pool_of[2])

    def test_null_tagged_devices_are_not_live_migratable(self) -> None:
        hp = host()
        fit = hp.fit(wanted(1))
        self.assertEqual((VFS[0],), fit.addresses)
        # nova 34 hands out two (its pool lookup merged them)
        self.assertFalse(hp.fit(wanted(2)).ok)
