"""Discovery on generated fake sysfs trees."""

from __future__ import annotations

import testtools

from passthrough_plugin.agent import discovery
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import report as report_mod
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import (E1000, E1000E, IGB_PF, IGB_VFS,
                                       NVME_PF, PCI_BRIDGE, VGA)


def specs(*values: str) -> device_spec.DeviceSpecList:
    return device_spec.DeviceSpecList.from_config(list(values))


class ScanTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())

    def test_reads_every_device(self) -> None:
        scan = discovery.scan(self.host.fs)
        self.assertEqual(9, len(scan.devices))
        igb = scan.devices[IGB_PF]
        self.assertEqual(('8086', '10c9', '020000', 'igb', 0),
                         (igb.vendor_id, igb.product_id, igb.class_code,
                          igb.driver, igb.numa_node))
        self.assertEqual(('enp1s0',), igb.netdevs)
        self.assertEqual((8, 0, 'type-PF'),
                         (igb.total_vfs, igb.num_vfs, igb.dev_type))
        self.assertTrue(scan.devices[VGA].boot_vga)
        self.assertTrue(scan.devices[PCI_BRIDGE].is_bridge)
        self.assertIsNone(scan.devices[VGA].numa_node)

    def test_groups_shared_and_split(self) -> None:
        scan = discovery.scan(self.host.fs)
        shared = scan.devices[E1000[0]].iommu_group
        self.assertEqual(sorted([PCI_BRIDGE] + E1000), scan.members(shared))
        self.assertEqual(E1000E, scan.members(
            scan.devices[E1000E[1]].iommu_group))
        self.assertEqual([IGB_PF], scan.members(
            scan.devices[IGB_PF].iommu_group))

    def test_vfs_link_to_their_pf(self) -> None:
        self.host.tree.create_vfs(IGB_PF, 2)
        scan = discovery.scan(self.host.fs)
        vf = scan.devices[IGB_VFS[1]]
        self.assertEqual(('type-VF', IGB_PF, 'igbvf', ('enp1s0v1',)),
                         (vf.dev_type, vf.physfn, vf.driver, vf.netdevs))
        self.assertEqual(2, scan.devices[IGB_PF].num_vfs)
        self.assertNotEqual(vf.iommu_group,
                            scan.devices[IGB_PF].iommu_group)

    def test_falls_back_without_uevent(self) -> None:
        (self.host.tree.dev(IGB_PF) / 'uevent').unlink()
        info = discovery.read_device(self.host.fs, IGB_PF)
        assert info is not None
        self.assertEqual(('8086', '10c9', '020000', 'igb'),
                         (info.vendor_id, info.product_id, info.class_code,
                          info.driver))

    def test_numa_cells_with_sockets(self) -> None:
        self.assertEqual([report_mod.NumaCell(0, 0),
                          report_mod.NumaCell(1, 1)],
                         discovery.numa_cells(self.host.fs))

    def test_iommu_and_interrupt_remapping(self) -> None:
        self.assertTrue(discovery.iommu_enabled(self.host.fs))
        self.assertTrue(discovery.interrupt_remapping(self.host.fs))


class NoIommuTest(testtools.TestCase):

    def test_iommu_off(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost(iommu=False))
        report = discovery.build_report(host.fs, specs('{}'), 'h')
        self.assertFalse(report.iommu.enabled)
        self.assertIsNone(report.iommu.interrupt_remapping)
        self.assertIsNone(report.device(IGB_PF).iommu_group)


class ReportTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.host.tree.create_vfs(IGB_PF, 4)
        self.host.tree.create_vfs(NVME_PF, 2)

    def report(self, *values: str) -> report_mod.HostReport:
        report = discovery.build_report(self.host.fs, specs(*values),
                                        'compute-1')
        # Whatever discovery produces must pass the schema.
        report_mod.HostReport.from_dict(report.to_dict())
        return report

    def test_pf_address_covers_its_vfs(self) -> None:
        report = self.report('{"address": "0000:01:00.0"}')
        self.assertEqual([IGB_PF] + IGB_VFS[:4],
                         sorted(d.address for d in report.devices))
        vf = report.device(IGB_VFS[0])
        assert vf is not None
        self.assertEqual(('type-VF', IGB_PF, 'CUSTOM_PCI_8086_10CA'),
                         (vf.dev_type, vf.parent_address, vf.resource_class))

    def test_devname_covers_the_pf_vfs(self) -> None:
        report = self.report('{"devname": "enp1s0", '
                             '"physical_network": "physnet1"}')
        self.assertEqual(5, len(report.devices))
        self.assertTrue(all(d.tags == {'physical_network': 'physnet1'}
                            for d in report.devices))

    def test_first_match_wins(self) -> None:
        report = self.report(
            '{"vendor_id": "8086", "product_id": "10ca", '
            '"resource_class": "CUSTOM_IGB_VF", "traits": "fast"}',
            '{"vendor_id": "8086", "physical_network": "other"}')
        vf = report.device(IGB_VFS[2])
        pf = report.device(IGB_PF)
        assert vf is not None and pf is not None
        self.assertEqual(('CUSTOM_IGB_VF', ('CUSTOM_FAST',), {}),
                         (vf.resource_class, vf.traits, vf.tags))
        self.assertEqual({'physical_network': 'other'}, pf.tags)
        self.assertEqual('type-PF', pf.dev_type)

    def test_unlisted_devices_are_left_out(self) -> None:
        report = self.report('{"vendor_id": "1b36", "product_id": "0010"}')
        self.assertEqual([NVME_PF, '0000:02:00.1', '0000:02:00.2'],
                         sorted(d.address for d in report.devices))
        self.assertEqual(1, report.device(NVME_PF).numa_node)

    def test_foreign_members_of_a_partly_listed_group(self) -> None:
        report = self.report('{"address": "0000:04:01.0"}')
        group = report.device(E1000[0]).iommu_group
        # The bridge is not foreign; the sibling endpoint is.
        self.assertEqual({group: (E1000[1],)}, report.iommu.foreign_members)

    def test_fully_listed_group_is_viable(self) -> None:
        report = self.report('{"vendor_id": "8086", "product_id": "100e"}',
                             '{"vendor_id": "8086", "product_id": "10d3"}')
        self.assertEqual({}, report.iommu.foreign_members)
        self.assertEqual(4, len(report.devices))

    def test_hot_added_and_removed_devices_show_on_rescan(self) -> None:
        first = self.report('{"vendor_id": "8086", "product_id": "10ca"}')
        self.host.tree.remove_vfs(IGB_PF)
        self.host.tree.create_vfs(IGB_PF, 1)
        second = self.report('{"vendor_id": "8086", "product_id": "10ca"}')
        self.assertEqual((4, 1), (len(first.devices), len(second.devices)))


class VpdSerialTest(testtools.TestCase):
    """nova's remote_managed rule: the spec needs a VPD card serial."""

    def test_remote_managed_spec_matches_devices_with_a_serial(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost())
        host.tree.create_vfs(IGB_PF, 2)
        # SN in the read-only resource of VF 0's VPD; VF 1 has no VPD
        sn = b'SN\x0cMT2113X00001'
        (host.tree.dev(IGB_VFS[0]) / 'vpd').write_bytes(
            b'\x82\x02\x00ID' + b'\x90' + bytes([len(sn), 0]) + sn + b'\x78')
        scan = discovery.scan(host.fs)
        remote = specs('{"vendor_id": "8086", "remote_managed": "true"}',
                       '{"vendor_id": "8086"}')
        self.assertEqual('MT2113X00001',
                         scan.devices[IGB_VFS[0]].card_serial())
        self.assertIs(remote.specs[0],
                      discovery.spec_for(remote, scan.devices[IGB_VFS[0]],
                                         scan))
        # no serial: the next entry matches, as in nova
        self.assertIs(remote.specs[1],
                      discovery.spec_for(remote, scan.devices[IGB_VFS[1]],
                                         scan))
