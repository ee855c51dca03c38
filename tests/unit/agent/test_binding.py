"""Whole-group binding, safety refusals, fault injection and crash recovery."""

from __future__ import annotations

import configparser
import os
import pathlib
import warnings
from importlib import metadata

import stevedore
import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import binders
from passthrough_plugin.agent import binding
from passthrough_plugin.agent.binders import base
from passthrough_plugin.agent.binders import stub
from passthrough_plugin.agent.binders import vfio
from passthrough_plugin.pci import device_spec
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import (E1000, E1000E, IGB_PF, IGB_VFS,
                                       NVME_PF, PCI_BRIDGE, VGA)

ALL_E1000 = ['{"vendor_id": "8086", "product_id": "100e"}',
             '{"vendor_id": "8086", "product_id": "10d3"}']


class BindingTestBase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.host.tree.create_vfs(IGB_PF, 2)

    def group_binding(self, *spec: str, binder: str = 'vfio-pci',
                      force: bool = False) -> binding.GroupBinding:
        return binding.GroupBinding(
            self.host.fs, self.host.journal(),
            specs=device_spec.DeviceSpecList.from_config(list(spec)),
            binder=binder, force=force)

    def override(self, address: str) -> str | None:
        return self.host.fs.driver_override(address)


class VfioBindTest(BindingTestBase):

    def test_bind_and_unbind_a_vf(self) -> None:
        gb = self.group_binding()
        self.assertEqual([IGB_VFS[0]], gb.bind([IGB_VFS[0]]))
        self.assertEqual('vfio-pci', self.host.driver(IGB_VFS[0]))
        self.assertEqual('vfio-pci', self.override(IGB_VFS[0]))
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[1]))
        self.assertIn(IGB_VFS[0], self.host.journal().bound)
        self.assertEqual([IGB_VFS[0]], gb.unbind([IGB_VFS[0]]))
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[0]))
        self.assertIsNone(self.override(IGB_VFS[0]))
        self.assertEqual({}, self.host.journal().bound)

    def test_bind_is_idempotent(self) -> None:
        gb = self.group_binding()
        gb.bind([IGB_VFS[0]])
        writes = len(self.host.kernel.writes)
        self.assertEqual([IGB_VFS[0]], gb.bind([IGB_VFS[0]]))
        self.assertEqual(writes, len(self.host.kernel.writes))

    def test_clears_only_the_override_it_set(self) -> None:
        # An operator pinned the VF to vfio-pci already: unbind keeps it.
        (self.host.tree.dev(IGB_VFS[1]) / 'driver_override').write_text(
            'vfio-pci\n')
        gb = self.group_binding()
        gb.bind([IGB_VFS[1]])
        record = self.host.journal().bound[IGB_VFS[1]]
        self.assertFalse(record.set_override)
        gb.unbind([IGB_VFS[1]])
        self.assertEqual('vfio-pci', self.override(IGB_VFS[1]))
        # ...and so the kernel puts it back on vfio-pci.
        self.assertEqual('vfio-pci', self.host.driver(IGB_VFS[1]))

    def test_someone_elses_override_is_refused(self) -> None:
        (self.host.tree.dev(IGB_VFS[1]) / 'driver_override').write_text(
            'igbvf\n')
        e = self.assertRaises(exception.BindError,
                              self.group_binding().bind, [IGB_VFS[1]])
        self.assertIn("driver_override is 'igbvf'", e.message)
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[1]))

    def test_whole_group_is_taken_bridge_excepted(self) -> None:
        gb = self.group_binding(*ALL_E1000)
        self.assertEqual(E1000, gb.bind([E1000[0]]))
        self.assertEqual(['vfio-pci', 'vfio-pci', 'pcieport'],
                         [self.host.driver(a) for a in E1000 + [PCI_BRIDGE]])
        self.assertEqual(sorted(E1000), gb.unbind([E1000[1]]))
        self.assertEqual(['e1000', 'e1000'],
                         [self.host.driver(a) for a in E1000])

    def test_group_not_viable_names_the_blocking_member(self) -> None:
        gb = self.group_binding('{"address": "0000:05:00.0"}')
        e = self.assertRaises(exception.GroupNotViable, gb.bind, [E1000E[0]])
        self.assertIn('member %s' % E1000E[1], e.message)
        self.assertEqual([], self.host.kernel.writes)

    def test_naming_every_member_makes_the_group_viable(self) -> None:
        self.assertEqual(E1000E, self.group_binding().bind(E1000E))

    def test_missing_device(self) -> None:
        e = self.assertRaises(exception.DeviceNotFound,
                              self.group_binding().bind, ['0000:7f:00.0'])
        self.assertIn('0000:7f:00.0', e.message)

    def test_driver_not_loaded(self) -> None:
        import shutil
        shutil.rmtree(self.host.tree.drv('vfio-pci'))
        e = self.assertRaises(exception.BindError,
                              self.group_binding().bind, [IGB_VFS[0]])
        self.assertIn('modprobe vfio-pci', e.message)

    def test_no_iommu_group(self) -> None:
        (self.host.tree.dev(IGB_VFS[0]) / 'iommu_group').unlink()
        e = self.assertRaises(exception.BindError,
                              self.group_binding().bind, [IGB_VFS[0]])
        self.assertIn('intel_iommu=on', e.message)


class SafetyTest(BindingTestBase):

    def test_netdev_with_routes_is_refused(self) -> None:
        self.host.tree.add_route('enp1s0v0')
        e = self.assertRaises(exception.DeviceBusy,
                              self.group_binding().bind, [IGB_VFS[0]])
        self.assertIn('enp1s0v0 -> 10.0.0.0/24 route', e.message)
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[0]))

    def test_global_ipv6_address_is_refused_link_local_is_not(self) -> None:
        self.host.tree.add_inet6('enp1s0v1', scope='20')
        self.group_binding().bind([IGB_VFS[1]])
        self.host.tree.add_inet6('enp1s0v0', scope='00')
        self.assertRaises(exception.DeviceBusy,
                          self.group_binding().bind, [IGB_VFS[0]])

    def test_force_overrides(self) -> None:
        self.host.tree.add_route('enp1s0v0')
        self.group_binding(force=True).bind([IGB_VFS[0]])
        self.assertEqual('vfio-pci', self.host.driver(IGB_VFS[0]))

    def test_mounted_filesystem_is_refused(self) -> None:
        self.host.tree.remove_vfs(NVME_PF)
        majmin = (self.host.tree.dev(NVME_PF) / 'nvme/nvme0/nvme0n1/dev'
                  ).read_text().strip()
        self.host.tree.mount(majmin, '/srv')
        e = self.assertRaises(exception.DeviceBusy,
                              self.group_binding().bind, [NVME_PF])
        self.assertIn('nvme0n1 -> mounted on /srv', e.message)

    def test_boot_vga_is_refused(self) -> None:
        e = self.assertRaises(exception.DeviceBusy,
                              self.group_binding().bind, [VGA])
        self.assertIn('boot VGA', e.message)

    def test_pf_with_vfs_is_refused(self) -> None:
        e = self.assertRaises(exception.DeviceBusy,
                              self.group_binding().bind, [IGB_PF])
        self.assertIn('2 VFs enabled', e.message)


class FaultTest(BindingTestBase):
    """A failure at each write of a bind leaves every device as it was."""

    def bind_group(self) -> None:
        self.group_binding(*ALL_E1000).bind(E1000E)

    def writes_of_a_clean_bind(self) -> int:
        host = self.useFixture(agent_fixtures.FakeHost())
        binding.GroupBinding(
            host.fs, host.journal(), specs=device_spec.DeviceSpecList
            .from_config(ALL_E1000)).bind(E1000E)
        return len(host.kernel.writes)

    def test_failure_at_each_step_rolls_back(self) -> None:
        steps = self.writes_of_a_clean_bind()
        self.assertEqual(6, steps)  # 2 x (override, unbind, drivers_probe)
        for step in range(steps):
            host = self.useFixture(agent_fixtures.FakeHost())
            host.kernel.fail_at(step)
            gb = binding.GroupBinding(
                host.fs, host.journal(),
                specs=device_spec.DeviceSpecList.from_config(ALL_E1000))
            e = self.assertRaises(exception.BindError, gb.bind, E1000E)
            self.assertIn('every device is back on its original driver',
                          e.message, 'step %d' % step)
            self.assertEqual(['e1000e', 'e1000e'],
                             [host.driver(a) for a in E1000E],
                             'step %d' % step)
            self.assertEqual([None, None],
                             [host.fs.driver_override(a) for a in E1000E],
                             'step %d' % step)
            journal = host.journal()
            self.assertEqual((None, {}), (journal.pending, journal.bound))

    def test_failed_rollback_is_reported(self) -> None:
        self.host.kernel.fail_at(4)  # the second device's unbind
        self.host.kernel.fail_at(5)  # and the first write of the rollback
        e = self.assertRaises(exception.BindError, self.bind_group)
        self.assertIn('ROLLBACK FAILED', e.message)

    def test_pci_stub_failure_at_each_step_rolls_back(self) -> None:
        warnings.simplefilter('ignore', DeprecationWarning)
        for step in range(3):  # new_id, unbind, bind
            host = self.useFixture(agent_fixtures.FakeHost())
            host.tree.create_vfs(IGB_PF, 1)
            host.kernel.fail_at(step)
            gb = binding.GroupBinding(host.fs, host.journal(),
                                      binder='pci-stub')
            self.assertRaises(exception.BindError, gb.bind, [IGB_VFS[0]])
            self.assertEqual('igbvf', host.driver(IGB_VFS[0]), step)
            self.assertEqual(set(), host.kernel.dynids.get('pci-stub',
                                                          set()), step)


class KilledMidApplyTest(BindingTestBase):
    """The agent dies (no cleanup at all) at each write; a rerun converges."""

    def test_killed_at_each_step_then_rerun(self) -> None:
        for step in range(6):
            host = self.useFixture(agent_fixtures.FakeHost())
            specs = device_spec.DeviceSpecList.from_config(ALL_E1000)

            def die(index: int, path: str, value: str,
                    step: int = step) -> None:
                if index == step:
                    os._exit(9)

            pid = os.fork()
            if pid == 0:  # the agent, killed mid-apply
                host.kernel.hooks.append(die)
                binding.GroupBinding(host.fs, host.journal(),
                                     specs=specs).bind(E1000E)
                os._exit(0)
            _pid, status = os.waitpid(pid, 0)
            self.assertEqual(9, os.waitstatus_to_exitcode(status))
            self.assertIsNotNone(host.journal().pending, step)
            # The agent runs again: the interrupted bind is rolled back...
            gb = binding.GroupBinding(host.fs, host.journal(), specs=specs)
            self.assertIn('rolled back', gb.recover() or '')
            self.assertEqual(['e1000e', 'e1000e'],
                             [host.driver(a) for a in E1000E], step)
            self.assertEqual([None, None],
                             [host.fs.driver_override(a) for a in E1000E])
            # ...and applying the desired state again converges.
            gb.bind(E1000E)
            self.assertEqual(['vfio-pci', 'vfio-pci'],
                             [host.driver(a) for a in E1000E], step)

    def test_interrupted_unbind_is_finished(self) -> None:
        gb = self.group_binding(*ALL_E1000)
        gb.bind(E1000E)
        pid = os.fork()
        if pid == 0:
            self.host.kernel.hooks.append(
                lambda i, p, v: os._exit(9) if p.endswith('/bind') else None)
            self.group_binding(*ALL_E1000).unbind(E1000E)
            os._exit(0)
        os.waitpid(pid, 0)
        self.assertIn('finished', self.group_binding().recover() or '')
        self.assertEqual(['e1000e', 'e1000e'],
                         [self.host.driver(a) for a in E1000E])
        self.assertEqual({}, self.host.journal().bound)


class StubBinderTest(BindingTestBase):

    def test_deprecated_and_round_trips(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            gb = self.group_binding(binder='pci-stub')
        self.assertTrue(any(issubclass(w.category, DeprecationWarning)
                            for w in caught))
        gb.bind([IGB_VFS[0]])
        self.assertEqual('pci-stub', self.host.driver(IGB_VFS[0]))
        self.assertIn(('bus/pci/drivers/pci-stub/new_id', '8086 10ca'),
                      self.host.kernel.writes)
        gb.unbind([IGB_VFS[0]])
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[0]))
        self.assertEqual(set(), self.host.kernel.dynids['pci-stub'])


class LoaderTest(testtools.TestCase):

    def test_setup_cfg_declares_the_builtin_binders(self) -> None:
        cfg = configparser.ConfigParser()
        cfg.read(pathlib.Path(__file__).parents[3] / 'setup.cfg')
        declared = dict(
            line.replace(' ', '').split('=', 1) for line in
            cfg['entry_points']['passthrough_plugin.binders'].splitlines()
            if line.strip())
        self.assertEqual(binders.BUILTIN, declared)

    def test_loads_by_name(self) -> None:
        host = self.useFixture(agent_fixtures.FakeHost(standard=False))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            self.assertIsInstance(binders.load('pci-stub', host.fs),
                                  stub.PciStubBinder)
        e = self.assertRaises(exception.InvalidConfig, binders.load,
                              'vfio', host.fs)
        self.assertIn('choose one of pci-stub, vfio-pci', e.message)

    def test_installed_entry_point_loads(self) -> None:
        names = {ep.name for ep in metadata.entry_points(
            group=base.NAMESPACE)}
        if 'vfio-pci' not in names:
            self.skipTest('passthrough-plugin is not installed')
        host = self.useFixture(agent_fixtures.FakeHost(standard=False))
        manager = stevedore.DriverManager(
            base.NAMESPACE, 'vfio-pci', invoke_on_load=True,
            invoke_args=(host.fs,))
        self.assertIsInstance(manager.driver, vfio.VfioPciBinder)
