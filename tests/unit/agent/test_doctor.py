"""doctor on fake hosts with and without an IOMMU."""

from __future__ import annotations

import json
import os

import fixtures
import testtools

from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import doctor
from passthrough_plugin.agent import nova_spec
from passthrough_plugin.pci import device_spec as device_spec_mod
from passthrough_plugin.pci import report as report_mod
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent import test_cmd
from tests.unit.agent.fixtures import E1000, E1000E


def statuses(checks: list[doctor.Check]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


class DoctorTest(testtools.TestCase):

    def test_ready_host_passes(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost())
        checks = doctor.run(host.fs)
        self.assertEqual({'pass'}, set(statuses(checks).values()), checks)
        self.assertFalse(doctor.failed(checks))

    def test_host_without_iommu_fails_with_hints(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost(iommu=False))
        checks = doctor.run(host.fs)
        self.assertEqual({
            'iommu-firmware': 'fail', 'iommu-cmdline': 'fail',
            'iommu-groups': 'fail', 'interrupt-remapping': 'fail',
            'vfio-modules': 'pass', 'sriov-pfs': 'pass'},
            statuses(checks))
        self.assertTrue(doctor.failed(checks))
        self.assertTrue(all(c.hint for c in checks if c.status == 'fail'))

    def test_iommu_on_by_default_is_a_warning(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost())
        (host.tree.proc / 'cmdline').write_text('root=/dev/vda1\n')
        self.assertEqual('warn', doctor.check_cmdline(host.fs).status)

    def test_amd(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost(iommu=False))
        host.tree.enable_iommu('amd')
        self.assertEqual('pass', doctor.check_cmdline(host.fs).status)
        self.assertIn('IVRS', doctor.check_acpi(host.fs).detail)

    def test_remapping_supported_but_unused_warns(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost(iommu=False))
        host.tree.enable_iommu(interrupt_remapping=False)
        self.assertEqual('fail',
                         doctor.check_interrupt_remapping(host.fs).status)
        (host.tree.sys / 'class/iommu/dmar0/intel-iommu/ecap').write_text(
            'f0205e\n')
        self.assertEqual('warn',
                         doctor.check_interrupt_remapping(host.fs).status)

    def test_missing_modules_and_pfs(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost(standard=False))
        self.assertEqual('fail', doctor.check_modules(host.fs).status)
        self.assertIn('modprobe vfio-pci', doctor.check_modules(host.fs).hint)
        self.assertEqual('warn', doctor.check_sriov(host.fs).status)


class NovaDeviceSpecTest(testtools.TestCase):
    """nova.conf's [pci] device_spec against what the agent can assign."""

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.dir = self.useFixture(fixtures.TempDir()).path

    def nova_conf(self, *specs: dict[str, str], raw: str = '') -> str:
        path = os.path.join(self.dir, 'nova.conf')
        with open(path, 'w') as out:
            out.write('[DEFAULT]\ndebug = true\n[pci]\n' + ''.join(
                'device_spec = %s\n' % json.dumps(s) for s in specs) + raw)
        return path

    def report(self, *agent_specs: dict[str, str]) -> report_mod.HostReport:
        specs = device_spec_mod.DeviceSpecList.from_config(
            [json.dumps(s) for s in agent_specs])
        return discovery.build_report(self.host.fs, specs, 'compute-1')

    def test_device_in_a_tainted_group_warns_naming_it_and_the_entry(
            self) -> None:
        # The agent lists one function of the multifunction e1000e; its
        # sibling (same IOMMU group) stays with the host. nova.conf lists
        # both by vendor and product.
        report = self.report({'address': E1000E[0]})
        path = self.nova_conf({'vendor_id': '8086', 'product_id': '10d3'})
        check = doctor.check_nova_device_spec(self.host.fs, report, path)
        self.assertEqual('warn', check.status)
        self.assertIn(
            '%s (type-PCI) is covered by %s [pci] device_spec value 1 '
            '{"product_id": "10d3", "vendor_id": "8086"} but cannot be '
            'assigned: its IOMMU group holds a device that cannot be '
            'assigned' % (E1000E[0], path), check.detail)
        self.assertIn('%s (type-PCI) is covered by' % E1000E[1],
                      check.detail)
        self.assertIn("the agent's [pci] device_spec leaves it out",
                      check.detail)
        self.assertIn('passthrough-agent nova-device-spec', check.hint)

    def test_hotplug_pool_device_warns(self) -> None:
        report = self.report({'vendor_id': '8086', 'product_id': '100e'})
        report.devices[0].hotplug_pool = True
        path = self.nova_conf({'vendor_id': '8086', 'product_id': '100e'})
        check = doctor.check_nova_device_spec(self.host.fs, report, path)
        self.assertEqual('warn', check.status)
        self.assertIn('%s (type-PCI) is covered by' % E1000[0], check.detail)
        self.assertIn('kept for hot-plugging by the agent', check.detail)
        self.assertNotIn(E1000[1], check.detail)

    def test_nova_device_spec_output_passes(self) -> None:
        # The e1000 pair shares its group with a PCI bridge only: both
        # assignable. The e1000e function is not.
        report = self.report({'vendor_id': '8086', 'product_id': '100e'},
                             {'address': E1000E[0]})
        found, _left_out = nova_spec.entries(report)
        self.assertEqual(E1000, [e['address'] for e in found])
        path = self.nova_conf(*found)
        check = doctor.check_nova_device_spec(self.host.fs, report, path)
        self.assertEqual(('pass', '%s [pci] device_spec covers 2 device(s),'
                          ' all assignable' % path),
                         (check.status, check.detail))

    def test_old_option_name_is_read(self) -> None:
        report = self.report({'address': E1000E[0]})
        path = self.nova_conf(raw='passthrough_whitelist = %s\n' % json.dumps(
            {'address': E1000E[0]}))
        check = doctor.check_nova_device_spec(self.host.fs, report, path)
        self.assertEqual('warn', check.status)
        self.assertIn(E1000E[0], check.detail)

    def test_missing_file_fails_naming_it(self) -> None:
        path = os.path.join(self.dir, 'nope.conf')
        check = doctor.check_nova_device_spec(self.host.fs, self.report(),
                                              path)
        self.assertEqual('fail', check.status)
        self.assertEqual('Invalid input: nova configuration %s: no such '
                         'file' % path, check.detail)

    def test_bad_entry_fails_naming_the_value(self) -> None:
        path = self.nova_conf(raw='device_spec = {"vendor_id": "80861"}\n')
        check = doctor.check_nova_device_spec(self.host.fs, self.report(),
                                              path)
        self.assertEqual('fail', check.status)
        self.assertIn('%s [pci] device_spec value 1' % path, check.detail)
        self.assertIn('80861', check.detail)
        self.assertNotIn('Traceback', check.detail)


class DoctorCommandTest(test_cmd.CmdTestBase):

    def test_nova_config_option(self) -> None:
        self.write_config('''
            [pci]
            device_spec = {"address": "%s"}
            ''' % E1000E[0])
        nova_conf = os.path.join(self.host.root, 'nova.conf')
        with open(nova_conf, 'w') as out:
            out.write('[pci]\ndevice_spec = {"address": "%s"}\n' % E1000E[0])
        rc, out, _err = self.run_cmd('doctor', '--nova-config', nova_conf,
                                     '--format', 'json')
        self.assertEqual(0, rc, out)
        checks = {c['name']: c for c in json.loads(out)['checks']}
        self.assertEqual('warn', checks['nova-device-spec']['status'])
        self.assertIn(E1000E[0], checks['nova-device-spec']['detail'])
