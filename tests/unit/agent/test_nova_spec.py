"""``passthrough-agent nova-device-spec``: nova's [pci] device_spec lines."""

from __future__ import annotations

import json

import testtools

from passthrough_plugin.agent import nova_spec
from passthrough_plugin.pci import address as address_mod
from passthrough_plugin.pci import device_spec as device_spec_mod
from tests.unit.agent import test_cmd
from tests.unit.agent.fixtures import IGB_PF, IGB_VFS
from tests.unit.scheduler import fakes


class EntriesTest(testtools.TestCase):

    def test_only_assignable_devices_with_explicit_addresses(self) -> None:
        report = fakes.sriov_host('h', pfs=2, vfs=2, used_vfs=1)
        bad_vf = report.devices[2]  # second VF of the first PF
        report.iommu.foreign_members = {bad_vf.iommu_group or 0:
                                        ('0000:00:1f.3',)}
        report.devices[-1].hotplug_pool = True  # last VF of the second PF
        found, left_out = nova_spec.entries(report)
        listed = [e['address'] for e in found]
        vfs = [d.address for d in report.devices
               if d.dev_type == 'type-VF']
        # The VF in use stays (nova tracks its guest); the tainted and
        # the hot-plug VF go, and so do the PFs whose VFs are listed.
        self.assertEqual([vfs[0], vfs[2]], listed)
        reasons = dict(left_out)
        self.assertIn('IOMMU group holds a device that cannot be assigned',
                      reasons[bad_vf.address])
        self.assertEqual('kept for hot-plugging by the agent',
                         reasons[report.devices[-1].address])
        self.assertIn('its VFs are listed', reasons[report.devices[0].address])
        self.assertEqual({'address': vfs[0], 'vendor_id': '8086',
                          'product_id': '154c',
                          'physical_network': 'physnet0'}, found[0])

    def test_rendered_lines_parse_as_nova_device_spec(self) -> None:
        report = fakes.sriov_host('h', pfs=1, vfs=2)
        text = nova_spec.render(report)
        values = [line.split(' = ', 1)[1] for line in text.splitlines()
                  if line.startswith('device_spec = ')]
        specs = device_spec_mod.DeviceSpecList.from_config(values)
        for dev in report.devices:
            match = specs.match(
                address_mod.PciAddress.parse(dev.address),
                int(dev.vendor_id, 16), int(dev.product_id, 16),
                address_mod.PciAddress.parse(dev.parent_address)
                if dev.parent_address else None)
            self.assertEqual(dev.dev_type == 'type-VF', match is not None,
                             dev.address)
        self.assertIn('[pci]', text.splitlines())


class CommandTest(test_cmd.CmdTestBase):

    def test_prints_the_vfs_of_the_configured_pf(self) -> None:
        self.write_config('''
            [pci]
            device_spec = {"address": "%s"}
            ''' % IGB_PF)
        self.assertEqual(0, self.run_cmd('configure-vfs', 'enp1s0', '2')[0])
        rc, out, err = self.run_cmd('nova-device-spec', '--format', 'json')
        self.assertEqual((0, ''), (rc, err))
        data = json.loads(out)
        self.assertEqual('compute-1', data['host'])
        self.assertEqual(IGB_VFS[:2],
                         [e['address'] for e in data['device_spec']])
        self.assertEqual([IGB_PF],
                         [e['address'] for e in data['left_out']])
        rc, out, _err = self.run_cmd('nova-device-spec')
        self.assertEqual(0, rc)
        self.assertIn('device_spec = {"address": "%s"' % IGB_VFS[0], out)
