"""The privileged entrypoint writes PCI attributes and nothing else."""

from __future__ import annotations

import os

import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import privsep
from passthrough_plugin.agent import sysfs as sysfs_mod
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import IGB_PF


class CheckedPathTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.root = str(self.host.tree.sys)

    def test_allowed(self) -> None:
        for rel in ('bus/pci/drivers_probe',
                    'bus/pci/devices/%s/driver_override' % IGB_PF,
                    'bus/pci/devices/%s/driver/unbind' % IGB_PF,
                    'bus/pci/drivers/vfio-pci/bind'):
            self.assertEqual(os.path.join(self.root, rel),
                             privsep.checked_path(self.root, rel))

    def test_refused(self) -> None:
        os.symlink('/etc', os.path.join(self.root, 'bus/pci/drivers/evil'))
        for root, rel in ((self.root, 'bus/pci/devices/%s/config' % IGB_PF),
                          (self.root, 'bus/pci/../../etc/bind'),
                          (self.root, '/etc/passwd'),
                          (self.root, 'kernel/unbind'),
                          (self.root, 'bus/pci/drivers/evil/bind'),
                          ('relative/root', 'bus/pci/drivers_probe')):
            self.assertRaises(PermissionError, privsep.checked_path, root,
                              rel)

    def test_refusal_surfaces_as_a_sysfs_error(self) -> None:
        fs = sysfs_mod.Sysfs(self.root)
        e = self.assertRaises(exception.SysfsError, fs.write,
                              'bus/pci/devices/%s/config' % IGB_PF, 'x')
        self.assertIn('refusing to write', e.message)
        self.assertEqual([], self.host.kernel.writes)

    def test_write_reaches_the_file(self) -> None:
        fs = sysfs_mod.Sysfs(self.root)
        fs.write('bus/pci/devices/%s/driver_override' % IGB_PF, 'vfio-pci')
        self.assertEqual('vfio-pci', fs.driver_override(IGB_PF))
