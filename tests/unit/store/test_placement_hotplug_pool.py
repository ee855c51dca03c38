"""The hotplug pool through Placement's providers: marked by a trait, read
back into the core's pool facts, so flavors never take those devices."""

from __future__ import annotations

import json

import testtools

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as core_summary
from passthrough_plugin.store.placement import mapping

GPU_ALIAS = {'name': 'gpu', 'vendor_id': '10de', 'product_id': '20b5',
             'device_type': 'type-PCI'}
ALIASES = alias_mod.parse_aliases([json.dumps(GPU_ALIAS)])


def report(pool: bool) -> report_mod.HostReport:
    devices = [report_mod.Device(
        '0000:5e:%02x.0' % n, '10de', '20b5', 'type-PCI', numa_node=0,
        iommu_group=80 + n, hotplug_pool=pool and n == 0) for n in range(2)]
    return report_mod.HostReport('compute-1', 1, devices,
                                 [report_mod.NumaCell(0, 0)])


def summary(pool: bool) -> core_summary.Summary:
    facts = []
    for address, want in mapping.desired(report(pool)).items():
        view = mapping.ProviderView(
            mapping.provider_uuid(want.name), address,
            {rc: (inv['total'] - inv['reserved'], 0)
             for rc, inv in want.inventories.items()},
            frozenset(want.traits))
        facts.extend(mapping.pool_facts(view))
    return core_summary.Summary.from_pools('compute-1', 1, facts)


def fits(summ: core_summary.Summary, key: str, value: str) -> bool:
    return summ.fits(request_mod.RequestSet.from_extra_specs(
        {key: value}, ALIASES))


class PlacementHotplugPoolTest(testtools.TestCase):

    def test_pool_provider_carries_the_trait(self) -> None:
        want = mapping.desired(report(True))
        self.assertIn(mapping.HOTPLUG_POOL, want['0000:5e:00.0'].traits)
        self.assertNotIn(mapping.HOTPLUG_POOL, want['0000:5e:01.0'].traits)

    def test_flavor_counts_only_nova_s_devices(self) -> None:
        alias = request_mod.ALIAS_KEY
        self.assertTrue(fits(summary(False), alias, 'gpu:2'))
        self.assertFalse(fits(summary(True), alias, 'gpu:2'))
        self.assertTrue(fits(summary(True), alias, 'gpu:1'))

    def test_headroom_counts_the_pool(self) -> None:
        self.assertTrue(fits(summary(True), request_mod.HEADROOM_KEY,
                             'gpu:2'))
