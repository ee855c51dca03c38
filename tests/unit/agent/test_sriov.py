"""VF configuration through sriov_numvfs on the emulated kernel."""

from __future__ import annotations

import errno

import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import sriov
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import E1000, IGB_PF, IGB_VFS, NVME_PF

NUMVFS = 'bus/pci/devices/%s/sriov_numvfs'


class ConfigureVfsTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())

    def numvfs_writes(self, pf: str) -> list[str]:
        return [v for p, v in self.host.kernel.writes if p == NUMVFS % pf]

    def test_creates_vfs_and_returns_them(self) -> None:
        vfs = sriov.configure_vfs(self.host.fs, IGB_PF, 2)
        self.assertEqual(IGB_VFS[:2], vfs)
        self.assertEqual(['igbvf', 'igbvf'],
                         [self.host.driver(v) for v in vfs])

    def test_changing_a_nonzero_count_goes_through_zero(self) -> None:
        sriov.configure_vfs(self.host.fs, IGB_PF, 2)
        self.assertEqual(IGB_VFS[:4],
                         sriov.configure_vfs(self.host.fs, IGB_PF, 4))
        self.assertEqual(['2', '0', '4'], self.numvfs_writes(IGB_PF))

    def test_same_count_writes_nothing(self) -> None:
        sriov.configure_vfs(self.host.fs, NVME_PF, 2)
        sriov.configure_vfs(self.host.fs, NVME_PF, 2)
        self.assertEqual(['2'], self.numvfs_writes(NVME_PF))

    def test_too_many(self) -> None:
        e = self.assertRaises(exception.InvalidVfCount, sriov.configure_vfs,
                              self.host.fs, NVME_PF, 3)
        self.assertIn('sriov_totalvfs is 2; choose 0 to 2', e.message)
        self.assertEqual([], self.host.kernel.writes)

    def test_not_sriov_capable(self) -> None:
        e = self.assertRaises(exception.VfConfigError, sriov.configure_vfs,
                              self.host.fs, E1000[0], 1)
        self.assertIn('not SR-IOV capable', e.message)

    def test_kernel_error_is_reported(self) -> None:
        self.host.kernel.fail_at(0, errno.ENOMEM)
        e = self.assertRaises(exception.SysfsError, sriov.configure_vfs,
                              self.host.fs, IGB_PF, 2)
        self.assertIn('ENOMEM', e.message)
        self.assertEqual('0', self.host.fs.read(
            'bus/pci/devices/%s/sriov_numvfs' % IGB_PF))

    def test_waits_for_the_vfs_then_gives_up(self) -> None:
        now = [0.0]

        def sleep(seconds: float) -> None:
            now[0] += seconds

        # A kernel that accepts the write but never creates the VFs.
        self.host.kernel.hooks.append(lambda i, p, v: None)
        self.host.fs.kernel = None
        self.useFixture(agent_fixtures.PrivsepInProcess())
        e = self.assertRaises(exception.VfConfigError, sriov.configure_vfs,
                              self.host.fs, IGB_PF, 2, timeout=1.0,
                              sleep=sleep, clock=lambda: now[0])
        self.assertIn('0 VFs appeared within 1 s', e.message)
        self.assertGreaterEqual(now[0], 1.0)

    def test_resolve_pf_by_interface_or_address(self) -> None:
        self.assertEqual(IGB_PF, sriov.resolve_pf(self.host.fs, 'enp1s0'))
        self.assertEqual(IGB_PF, sriov.resolve_pf(self.host.fs, '01:00.0'))
        self.assertRaises(exception.DeviceNotFound, sriov.resolve_pf,
                          self.host.fs, 'eth9')
        self.assertRaises(exception.InvalidPciAddress, sriov.resolve_pf,
                          self.host.fs, '01:00.9')

    def test_apply_desired(self) -> None:
        result = sriov.apply_desired(self.host.fs, sriov.parse_desired(
            ['enp1s0=3', '0000:02:00.0=1']))
        self.assertEqual({IGB_PF: IGB_VFS[:3], NVME_PF: ['0000:02:00.1']},
                         result)

    def test_parse_desired_rejects_bad_values(self) -> None:
        for bad in ('enp1s0', '=3', 'enp1s0=x', '0000:01:00.0=-1'):
            e = self.assertRaises(exception.InvalidConfig,
                                  sriov.parse_desired, [bad])
            self.assertIn('[sriov] vf_count=%r' % bad, e.message)
