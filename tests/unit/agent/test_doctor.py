"""doctor on fake hosts with and without an IOMMU."""

from __future__ import annotations

import testtools

from passthrough_plugin.agent import doctor
from tests.unit.agent import fixtures as agent_fixtures


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
