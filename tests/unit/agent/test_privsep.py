"""The privileged writer: its own root, an allow-list, no symlink followed."""

from __future__ import annotations

import errno
import os

import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import openat
from passthrough_plugin.agent import privsep
from passthrough_plugin.agent import sysfs as sysfs_mod
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import E1000E, IGB_PF


class WriterTest(testtools.TestCase):
    """In-process (the entrypoint's code); the real daemon is in
    tests/functional/agent/test_privsep_daemon.py."""

    walk = False

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.root = str(self.host.tree.sys)
        if self.walk:
            openat.use_openat2(False)
            self.addCleanup(openat.use_openat2, True)
        # Beside sys/ (same file system, so a hard link can be tried).
        self.outside = self.useFixture(
            agent_fixtures.OutsideFile(self.host.root)).path

    def read(self, rel: str) -> str:
        with open(os.path.join(self.root, rel)) as src:
            return src.read()

    def test_allowed_writes_reach_the_real_file(self) -> None:
        dev = self.host.tree.dev(IGB_PF)
        for rel, value, real in (
                ('bus/pci/devices/%s/driver_override' % IGB_PF, 'vfio-pci',
                 dev / 'driver_override'),
                ('bus/pci/devices/%s/sriov_numvfs' % IGB_PF, '2',
                 dev / 'sriov_numvfs'),
                ('bus/pci/devices/%s/driver/unbind' % IGB_PF, IGB_PF,
                 self.host.tree.drv('igb') / 'unbind'),
                ('bus/pci/drivers/vfio-pci/bind', IGB_PF,
                 self.host.tree.drv('vfio-pci') / 'bind'),
                ('bus/pci/drivers/pci-stub/new_id', '8086 10c9',
                 self.host.tree.drv('pci-stub') / 'new_id'),
                ('bus/pci/drivers_probe', IGB_PF,
                 self.host.tree.sys / 'bus/pci/drivers_probe')):
            privsep.write_attr(rel, value)
            self.assertEqual(value, real.read_text(), rel)

    def test_paths_off_the_allow_list_are_refused(self) -> None:
        os.symlink('/etc', os.path.join(self.root, 'bus/pci/drivers/evil'))
        for rel in ('bus/pci/devices/%s/config' % IGB_PF,
                    'bus/pci/devices/%s/remove' % IGB_PF,
                    'bus/pci/../../etc/bind',
                    'bus/pci/drivers/../../../etc/bind',
                    '/etc/passwd',
                    'kernel/unbind',
                    'bus/pci/rescan',
                    'bus/pci/devices/0000:01:00.0/../../../../x/bind',
                    'bus/pci/devices/not-an-address/driver_override',
                    'bus/pci/drivers/.../bind'):
            e = self.assertRaises(PermissionError, privsep.write_attr, rel,
                                  IGB_PF)
            self.assertIn('refusing', str(e), rel)
        # A symlinked driver directory: refused by the open, not followed.
        e2 = self.assertRaises(OSError, privsep.write_attr,
                               'bus/pci/drivers/evil/bind', IGB_PF)
        self.assertIn(e2.errno, (errno.ELOOP, errno.EXDEV, errno.ENOTDIR))

    def test_values_off_the_allow_list_are_refused(self) -> None:
        dev = 'bus/pci/devices/%s/' % IGB_PF
        for rel, value in ((dev + 'driver_override', '../../x'),
                           (dev + 'driver_override', 'a' * 65),
                           (dev + 'sriov_numvfs', 'x'),
                           (dev + 'sriov_numvfs', '1\0'),
                           ('bus/pci/drivers_probe', '/etc/passwd'),
                           ('bus/pci/drivers/igb/new_id', 'rm -rf')):
            self.assertRaises(PermissionError, privsep.write_attr, rel,
                              value)
        self.assertEqual('(null)\n', self.read(dev + 'driver_override'))

    def test_device_link_out_of_the_devices_tree_is_refused(self) -> None:
        link = os.path.join(self.root, 'bus/pci/devices', IGB_PF)
        os.unlink(link)
        os.symlink(os.path.dirname(self.outside), link)
        self.assertRaises(PermissionError, privsep.write_attr,
                          'bus/pci/devices/%s/driver_override' % IGB_PF,
                          'vfio-pci')
        os.unlink(link)
        os.symlink('../../../devices/../../%s' % IGB_PF, link)
        self.assertRaises(PermissionError, privsep.write_attr,
                          'bus/pci/devices/%s/driver_override' % IGB_PF,
                          'vfio-pci')
        self.assertEqual(agent_fixtures.OutsideFile.CONTENT,
                         open(self.outside).read())

    def test_symlinked_attribute_or_directory_is_not_followed(self) -> None:
        dev = self.host.tree.dev(IGB_PF)
        target = dev / 'driver_override'
        target.unlink()
        os.symlink(self.outside, target)
        e = self.assertRaises(OSError, privsep.write_attr,
                              'bus/pci/devices/%s/driver_override' % IGB_PF,
                              'vfio-pci')
        self.assertEqual(errno.ELOOP, e.errno)
        # A directory on the way to the device swapped for a symlink.
        parent = self.host.tree.sys / 'devices'
        os.rename(parent, self.host.tree.sys / 'devices.real')
        os.symlink(os.path.dirname(self.outside), parent)
        self.assertRaises(OSError, privsep.write_attr,
                          'bus/pci/devices/%s/driver_override' % E1000E[0],
                          'vfio-pci')
        self.assertEqual(agent_fixtures.OutsideFile.CONTENT,
                         open(self.outside).read())

    def test_hard_link_and_fifo_are_refused(self) -> None:
        dev = self.host.tree.dev(IGB_PF)
        (dev / 'driver_override').unlink()
        os.link(self.outside, dev / 'driver_override')
        self.assertRaises(PermissionError, privsep.write_attr,
                          'bus/pci/devices/%s/driver_override' % IGB_PF,
                          'vfio-pci')
        (dev / 'sriov_numvfs').unlink()
        os.mkfifo(dev / 'sriov_numvfs')
        e = self.assertRaises(OSError, privsep.write_attr,
                              'bus/pci/devices/%s/sriov_numvfs' % IGB_PF,
                              '1')
        self.assertEqual(errno.ENXIO, e.errno)  # no reader: never blocks
        self.assertEqual(agent_fixtures.OutsideFile.CONTENT,
                         open(self.outside).read())

    def test_the_root_is_the_privileged_sides_not_the_callers(self) -> None:
        self.assertEqual(os.path.realpath(self.root), privsep.sysfs_root())
        other = self.useFixture(agent_fixtures.FakeHost(standard=False))
        privsep.pin_root(self.root)  # the second FakeHost re-pinned
        fs = sysfs_mod.Sysfs(str(other.tree.sys))
        e = self.assertRaises(exception.SysfsError, fs.write,
                              'bus/pci/drivers_probe', IGB_PF)
        self.assertIn('the privileged helper writes under %s'
                      % os.path.realpath(self.root), e.message)
        self.assertEqual('', (other.tree.sys
                              / 'bus/pci/drivers_probe').read_text())

    def test_refusal_surfaces_as_a_sysfs_error(self) -> None:
        fs = sysfs_mod.Sysfs(self.root)
        e = self.assertRaises(exception.SysfsError, fs.write,
                              'bus/pci/devices/%s/config' % IGB_PF, 'x')
        self.assertIn('refusing to write', e.message)
        self.assertEqual([], self.host.kernel.writes)


class WalkWriterTest(WriterTest):
    """The same without openat2: the O_NOFOLLOW component walk."""

    walk = True
