"""The real privsep daemon: its own root, no capabilities, no escape."""

from __future__ import annotations

import collections
import errno
import os
import threading

import testtools
from testtools import content

from passthrough_plugin import exception
from passthrough_plugin.agent import binding
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import openat
from passthrough_plugin.agent import privsep
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import device_spec
from tests.functional.agent import fixtures as daemon_fixtures
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import E1000E, IGB_PF

RACE_ATTEMPTS = 2000


class FakeTree(agent_fixtures.FakeHost):
    """A FakeHost whose writes go through the client channel (no
    in-process privsep): the daemon fixture decides where they land."""

    def _setUp(self) -> None:
        super()._setUp()
        # FakeHost ran the entrypoints in-process; undo that at once.
        privsep.sysfs_admin.set_client_mode(True)
        privsep.unpin_root()


class DaemonTestBase(testtools.TestCase):

    fork = True
    walk = False

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(FakeTree())
        if self.walk:
            # Before the daemon forks: it inherits the choice.
            openat.use_openat2(False)
            self.addCleanup(openat.use_openat2, True)
        self.sys = str(self.host.tree.sys)
        self.daemon = self.useFixture(daemon_fixtures.PrivsepDaemon(
            self.sys, fork=self.fork))
        self.outside = self.useFixture(
            agent_fixtures.OutsideFile(self.host.root)).path


class ForkedDaemonTest(DaemonTestBase):

    def test_runs_as_uid_0_with_no_capabilities(self) -> None:
        privsep.sysfs_root()  # the daemon is up and answering
        status = self.daemon.status()
        self.assertEqual('0', status['Uid'].split()[0])
        for field in ('CapEff', 'CapPrm', 'CapInh'):
            self.assertEqual(0, int(status[field], 16), field)

    def test_writes_the_allow_list_and_refuses_the_rest(self) -> None:
        privsep.write_attr('bus/pci/devices/%s/driver_override' % IGB_PF,
                           'vfio-pci')
        self.assertEqual('vfio-pci', (self.host.tree.dev(IGB_PF)
                                      / 'driver_override').read_text())
        e = self.assertRaises(PermissionError, privsep.write_attr,
                              'bus/pci/devices/%s/config' % IGB_PF, 'x')
        self.assertIn('not an attribute on the allow-list', str(e))
        link = self.host.tree.dev(IGB_PF) / 'sriov_numvfs'
        link.unlink()
        os.symlink(self.outside, link)
        e2 = self.assertRaises(OSError, privsep.write_attr,
                               'bus/pci/devices/%s/sriov_numvfs' % IGB_PF,
                               '1')
        self.assertEqual(errno.ELOOP, e2.errno)
        self.assertEqual(agent_fixtures.OutsideFile.CONTENT,
                         open(self.outside).read())

    def test_group_bind_and_unbind_through_the_daemon(self) -> None:
        state = os.path.join(self.host.root, 'state.json')
        gb = binding.GroupBinding(
            self.host.fs, journal_mod.Journal(state),
            specs=device_spec.DeviceSpecList.from_config(
                ['{"vendor_id": "8086", "product_id": "10d3"}']))
        self.assertEqual(E1000E, gb.bind([E1000E[0]]))
        self.assertEqual(['vfio-pci'] * 2,
                         [self.host.driver(a) for a in E1000E])
        self.assertEqual(E1000E, gb.unbind([E1000E[0]]))
        self.assertEqual(['e1000e'] * 2,
                         [self.host.driver(a) for a in E1000E])
        self.assertEqual(6 * 2, len(self.host.kernel.writes))

    def test_symlink_race_never_writes_outside_the_tree(self) -> None:
        """A thread swaps symlinks in while the daemon writes.

        Three attributes are written in turn (a device attribute, a
        driver's bind, and unbind through the device's driver link) while
        the thread swaps, in turn, each attribute file, the bus/pci/devices
        link, the device directory, the driver directory and the device's
        driver link for links to a decoy outside the tree.
        """
        tree = self.host.tree
        decoy = os.path.join(self.host.root, 'outside')
        os.mkdir(decoy)
        decoys = []
        for name in ('driver_override', 'bind', 'unbind'):
            decoys.append(os.path.join(decoy, name))
            with open(decoys[-1], 'w') as out:
                out.write(agent_fixtures.OutsideFile.CONTENT)
            os.chmod(decoys[-1], 0o600)
        attr = str(tree.dev(IGB_PF) / 'driver_override')
        device = str(tree.dev(IGB_PF))
        driver_dir = str(tree.drv('vfio-pci'))
        unbind = str(tree.drv('igb') / 'unbind')
        driver_link = str(tree.dev(IGB_PF) / 'driver')
        good_driver = os.readlink(driver_link)
        bus_link = str(tree.sys / 'bus/pci/devices' / IGB_PF)
        good_link = os.readlink(bus_link)
        targets = (('bus/pci/devices/%s/driver_override' % IGB_PF,
                    'vfio-pci'),
                   ('bus/pci/drivers/vfio-pci/bind', IGB_PF),
                   ('bus/pci/devices/%s/driver/unbind' % IGB_PF, IGB_PF))
        stop = threading.Event()
        swaps = collections.Counter[str]()

        def swap_link(path: str, target: str) -> None:
            tmp = path + '.swap'
            os.symlink(target, tmp)
            os.replace(tmp, path)

        def put_file(path: str) -> None:
            tmp = path + '.swap'
            with open(tmp, 'w') as out:
                out.write('(null)\n')
            os.replace(tmp, path)

        def swap_dir(path: str) -> None:
            os.rename(path, path + '.real')
            os.symlink(decoy, path)
            os.unlink(path)
            os.rename(path + '.real', path)

        def race() -> None:
            n = 0
            while not stop.is_set():
                kind = n % 6
                if kind == 0:  # a device attribute
                    swap_link(attr, self.outside)
                    put_file(attr)
                elif kind == 1:  # the bus/pci/devices link
                    swap_link(bus_link, decoy)
                    swap_link(bus_link, '../../../../outside/../sys/'
                              'devices/pci0000:00/%s' % IGB_PF)
                    swap_link(bus_link, good_link)
                elif kind == 2:  # the device directory
                    swap_dir(device)
                elif kind == 3:  # a driver directory
                    swap_dir(driver_dir)
                elif kind == 4:  # the device's driver link
                    swap_link(driver_link, '../../../../outside')
                    swap_link(driver_link, good_driver)
                else:  # a driver attribute
                    swap_link(unbind, self.outside)
                    put_file(unbind)
                swaps[str(kind)] += 1
                n += 1

        racer = threading.Thread(target=race, daemon=True)
        outcome = collections.Counter[str]()
        racer.start()
        try:
            for n in range(RACE_ATTEMPTS):
                rel, value = targets[n % 3]
                try:
                    privsep.write_attr(rel, value)
                    outcome['%d written' % (n % 3)] += 1
                except PermissionError:
                    outcome['refused'] += 1
                except OSError as exc:
                    outcome[errno.errorcode.get(exc.errno or 0, 'E?')] += 1
        finally:
            stop.set()
            racer.join(timeout=30)
        self.assertFalse(racer.is_alive(), 'the racing thread did not stop '
                         'within 30 s')
        figures = 'attempts %d: %s; swaps %s' % (
            RACE_ATTEMPTS, dict(sorted(outcome.items())),
            dict(sorted(swaps.items())))
        self.addDetail('race', content.text_content(figures))
        print(figures)
        self.assertEqual(RACE_ATTEMPTS, sum(outcome.values()))
        for path in [self.outside] + decoys:
            with open(path) as src:
                self.assertEqual(agent_fixtures.OutsideFile.CONTENT,
                                 src.read(), 'written outside the tree: '
                                 '%s (%s)' % (path, figures))
        # The race really raced: each attribute was written at times and
        # some writes were refused; every kind of swap happened.
        for n in range(len(targets)):
            self.assertGreater(outcome['%d written' % n], 0, figures)
        self.assertGreater(outcome['refused'] + outcome['ELOOP'], 0,
                           figures)
        self.assertEqual(set('012345'), set(swaps), figures)


class WalkingDaemonTest(ForkedDaemonTest):
    """The same daemon without openat2: the O_NOFOLLOW component walk."""

    walk = True


class HelperDaemonTest(DaemonTestBase):
    """Started as sudo would start it: privsep-helper --config-file."""

    fork = False

    def test_root_is_the_daemons_config_not_the_callers(self) -> None:
        # This process's [agent] sysfs_root is /sys; the daemon's file
        # says the fake tree.
        self.assertEqual(os.path.realpath(self.sys), privsep.sysfs_root())
        status = self.daemon.status()
        self.assertEqual(0, int(status['CapEff'], 16))
        real = sysfs_mod.Sysfs('/sys')
        e = self.assertRaises(exception.SysfsError, real.write,
                              'bus/pci/drivers_probe', IGB_PF)
        self.assertIn('the privileged helper writes under %s'
                      % os.path.realpath(self.sys), e.message)
        fake = sysfs_mod.Sysfs(self.sys)
        fake.write('bus/pci/devices/%s/driver_override' % IGB_PF,
                   'vfio-pci')
        self.assertEqual('vfio-pci', fake.driver_override(IGB_PF))
