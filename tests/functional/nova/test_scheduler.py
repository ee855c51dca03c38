"""PciPoolFilter and PciPoolWeigher inside the real nova 34 scheduler.

Three or more libvirt computes with fake SR-IOV PFs and VFs; the reports
of those computes (built from the very devices fakelibvirt gives each one)
sit in the file store; the plugin is enabled purely through nova.conf.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

# nova's functional package patches the process for eventlet: it comes
# before anything that imports oslo.context (thread-locals created earlier
# stay shared between green threads, and nova's database transactions
# then collide: "Can't upgrade a READER transaction to a WRITER").
import nova.tests.functional  # noqa: F401

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base

from passthrough_plugin.pci import address as address_mod
from passthrough_plugin.pci import device_spec as device_spec_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.store import file as file_store

VEND = fakelibvirt.PCI_VEND_ID
PCI_DEVICE_SPEC = [json.dumps(x) for x in (
    {'vendor_id': VEND, 'product_id': fakelibvirt.PF_PROD_ID,
     'physical_network': 'physnet4'},
    {'vendor_id': VEND, 'product_id': fakelibvirt.VF_PROD_ID,
     'physical_network': 'physnet4'},
)]
PCI_ALIAS = [json.dumps(x) for x in (
    {'vendor_id': VEND, 'product_id': fakelibvirt.VF_PROD_ID,
     'device_type': 'type-VF', 'name': 'vfs'},
    {'vendor_id': VEND, 'product_id': fakelibvirt.PF_PROD_ID,
     'device_type': 'type-PF', 'name': 'pfs'},
)]
TYPES = {'PF': 'type-PF', 'VF': 'type-VF', 'PCI': 'type-PCI'}
PRODUCTS = {'PF': fakelibvirt.PF_PROD_ID, 'VF': fakelibvirt.VF_PROD_ID,
            'PCI': fakelibvirt.PCI_PROD_ID}


def report_for(host: str, pci_info: Any,
               device_spec: Sequence[str] = tuple(PCI_DEVICE_SPEC)
               ) -> report_mod.HostReport:
    """The HostReport an agent would publish for fakelibvirt's devices,
    whitelisted by ``device_spec`` (nova's syntax)."""
    specs = device_spec_mod.DeviceSpecList.from_config(list(device_spec))
    devices = []
    for dev in pci_info.devices.values():
        address = '0000:%02x:%02x.%x' % (dev.bus, dev.slot, dev.function)
        parent = ('0000:%02x:%02x.%x' % dev.parent
                  if dev.dev_type == 'VF' else None)
        vendor = dev.vend_id or VEND
        product = dev.prod_id or PRODUCTS[dev.dev_type]
        spec = specs.match(
            address_mod.PciAddress.parse(address), int(vendor, 16),
            int(product, 16),
            address_mod.PciAddress.parse(parent) if parent else None)
        if spec is None:
            continue
        devices.append(report_mod.Device(
            address=address, vendor_id=vendor, product_id=product,
            dev_type=TYPES[dev.dev_type], parent_address=parent,
            numa_node=dev.numa_node, iommu_group=dev.iommu_group,
            tags=dict(spec.pool_tags)))
    return report_mod.HostReport(
        host=host, devices=devices,
        numa_cells=[report_mod.NumaCell(0, 0), report_mod.NumaCell(1, 0)])


class _PluginTestBase(base.ServersTestBase):
    """Computes with fake SR-IOV devices and their reports in the store."""

    ADMIN_API = True
    microversion = 'latest'
    # nova's PciPassthroughFilter stays off: ours does the PCI filtering.
    ADDITIONAL_FILTERS = ['PciPoolFilter']
    STRATEGY = 'pack'

    def setUp(self) -> None:
        self.reports = self.useFixture(fixtures.TempDir()).path
        # What an operator writes into nova.conf; nova registers no options
        # of ours, so they are registered first, as the filter would.
        nova_adapter.nova_conf()
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        self.flags(device_spec=PCI_DEVICE_SPEC, alias=PCI_ALIAS, group='pci')
        self.flags(available_filters=[
            'nova.scheduler.filters.all_filters',
            'passthrough_plugin.scheduler.filters.all_filters'],
            weight_classes=[
            'nova.scheduler.weights.all_weighers',
            'passthrough_plugin.scheduler.weighers.all_weighers'],
            group='filter_scheduler')
        self.flags(path=self.reports, group='file_store')
        self.flags(weigh_strategy=self.STRATEGY, weight_multiplier=10.0,
                   group='passthrough_scheduler')
        super().setUp()
        # nova's scheduler really loaded ours, from nova.conf alone.
        host_manager = self.scheduler.manager.host_manager
        self.assertEqual(
            ['PciPoolFilter'],
            [type(f).__name__ for f in host_manager.enabled_filters
             if type(f).__module__.startswith('passthrough_plugin')])
        self.assertEqual(
            ['PciPoolWeigher'],
            [type(w).__name__ for w in host_manager.weighers
             if type(w).__module__.startswith('passthrough_plugin')])
        self.neutron = self.useFixture(base.LibvirtNeutronFixture(self))
        self.store = file_store.FileReportStore(nova_adapter.nova_conf())

    def _clear_attrs(self) -> None:
        # nova's test base wipes the test's attributes to save memory under
        # stestr; pytest still reads them after the test, so skip it there.
        if 'pytest' not in sys.modules:
            super()._clear_attrs()

    def start_pci_compute(self, host: str, *, num_pfs: int, num_vfs: int,
                          report: bool = True) -> report_mod.HostReport:
        pci_info = fakelibvirt.HostPCIDevicesInfo(
            num_pci=0, num_pfs=num_pfs, num_vfs=num_vfs)
        self.start_compute(hostname=host, pci_info=pci_info)
        host_report = report_for(host, pci_info)
        if report:
            self.store.publish(host_report)
        return host_report

    def boot(self, alias: str, expected_state: str = 'ACTIVE'
             ) -> dict[str, Any]:
        flavor = self._create_flavor(
            extra_spec={'pci_passthrough:alias': alias})
        return self._create_server(flavor_id=flavor, networks='none',
                                   expected_state=expected_state)


class PciPoolSchedulerTest(_PluginTestBase):

    def test_lands_on_the_fitting_host(self) -> None:
        self.start_pci_compute('compute1', num_pfs=1, num_vfs=2)
        self.start_pci_compute('compute2', num_pfs=1, num_vfs=4)
        self.start_pci_compute('compute3', num_pfs=0, num_vfs=0)
        server = self.boot('vfs:3')
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        log = self.stdlog.logger.output
        self.assertIn('compute1 rejected: compute1 needs 3 x vfs', log)
        self.assertIn('compute3 rejected: compute3 needs 3 x vfs', log)

    def test_beyond_capacity_is_no_valid_host_with_the_reason(self) -> None:
        self.start_pci_compute('compute1', num_pfs=1, num_vfs=2)
        self.start_pci_compute('compute2', num_pfs=1, num_vfs=4)
        self.start_pci_compute('compute3', num_pfs=0, num_vfs=0)
        server = self.boot('vfs:5', expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('compute2 rejected: compute2 needs 5 x vfs (8086:1515 '
                      'type-VF): 4 free', log)
        self.assertIn('compute3 rejected: compute3 needs 5 x vfs (8086:1515 '
                      'type-VF): no device on the host matches', log)
        self.assertIn("'PciPoolFilter: (start: 3, end: 0)'", log)

    def test_iommu_group_not_viable_is_never_picked(self) -> None:
        tainted = self.start_pci_compute('compute1', num_pfs=1, num_vfs=4,
                                         report=False)
        # A device that is not assignable shares every VF's IOMMU group.
        tainted.iommu.foreign_members = {
            d.iommu_group: ('0000:00:1f.3',) for d in tainted.devices
            if d.iommu_group is not None}
        self.store.publish(tainted)
        self.start_pci_compute('compute2', num_pfs=1, num_vfs=2)
        self.start_pci_compute('compute3', num_pfs=0, num_vfs=0)
        first = self.boot('vfs:1')
        self.assertEqual('compute2', first['OS-EXT-SRV-ATTR:host'])
        # compute2 has one VF left for us; then nothing, though compute1
        # has four VFs free in nova's own view.
        self.assertEqual('compute2',
                         self.boot('vfs:1')['OS-EXT-SRV-ATTR:host'])
        self.boot('vfs:1', expected_state='ERROR')
        self.assertIn('compute1 rejected: compute1 needs 1 x vfs (8086:1515 '
                      'type-VF): 0 free, 4 in an IOMMU group with devices '
                      'that cannot be assigned, the IOMMU group(s) also hold '
                      '0000:00:1f.3', self.stdlog.logger.output)

    def test_corrupt_report_host_is_skipped(self) -> None:
        self.start_pci_compute('compute1', num_pfs=1, num_vfs=8)
        self.start_pci_compute('compute2', num_pfs=1, num_vfs=2)
        self.start_pci_compute('compute3', num_pfs=0, num_vfs=0)
        with open(os.path.join(self.reports, 'compute1.json'), 'w') as f:
            f.write('{"version": 1, "host": "compute1", "devi')
        server = self.boot('vfs:1')
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn('compute1 rejected: Invalid host report for compute1',
                      self.stdlog.logger.output)


    def test_rebuild_keeps_the_host_and_its_devices(self) -> None:
        self.start_pci_compute('compute1', num_pfs=1, num_vfs=1)
        home = self.start_pci_compute('compute2', num_pfs=1, num_vfs=2,
                                      report=False)
        self.start_pci_compute('compute3', num_pfs=0, num_vfs=0)
        self.store.publish(home)
        server = self.boot('vfs:2')
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        # The agent now reports both VFs allocated to the server: nothing
        # is free on compute2, yet a rebuild (a new image goes through the
        # scheduler) must keep the server there with its devices.
        for dev in home.devices:
            if dev.dev_type == 'type-VF':
                dev.status, dev.owner, dev.source = (
                    'allocated', server['id'], 'flavor')
        self.store.publish(home)
        other = next(i['id'] for i in (self.glance.image1,
                                       self.glance.image2)
                     if i['id'] != server['image']['id'])
        rebuilt = self._rebuild_server(server, other)
        self.assertEqual('compute2', rebuilt['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(other, rebuilt['image']['id'])
        self.assertNotIn('compute2 rejected', self.stdlog.logger.output)


class _StrategyCase:
    """Two equal SR-IOV hosts; compute1's agent reports one VF in use."""

    EXPECTED = ''

    def test_strategy_picks(self: Any) -> None:
        busy = self.start_pci_compute('compute1', num_pfs=2, num_vfs=8,
                                      report=False)
        vf = next(d for d in busy.devices if d.dev_type == 'type-VF')
        vf.status, vf.owner, vf.source = 'allocated', 'other-vm', 'flavor'
        self.store.publish(busy)
        self.start_pci_compute('compute2', num_pfs=2, num_vfs=8)
        self.start_pci_compute('compute3', num_pfs=0, num_vfs=0)
        server = self.boot('vfs:1')
        self.assertEqual(self.EXPECTED, server['OS-EXT-SRV-ATTR:host'])


class PackTest(_StrategyCase, _PluginTestBase):
    """pack fills the PF that already serves a VF."""

    STRATEGY = 'pack'
    EXPECTED = 'compute1'


class SpreadTest(_StrategyCase, _PluginTestBase):
    """spread takes the host with the most free devices."""

    STRATEGY = 'spread'
    EXPECTED = 'compute2'
