"""Live attach/detach end to end: fake sysfs, file store, SQLite ledger, and
libvirt's API served by nova's fakelibvirt; faults, crashes and re-runs."""

from __future__ import annotations

import errno
import json

import fixtures
import testtools
from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.cmd import agent as cmd
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from tests.functional.nova import hotplug_fixtures as hf
from tests.functional.nova.hotplug_fixtures import GPU0
from tests.functional.nova.hotplug_fixtures import GPU0_AUDIO
from tests.functional.nova.hotplug_fixtures import GPU1
from tests.functional.nova.hotplug_fixtures import INSTANCE
from tests.functional.nova.hotplug_fixtures import OTHER
from tests.functional.nova.hotplug_fixtures import PROJECT

ATTACHED = {
    'drivers': {GPU0: ('vfio-pci', 'vfio-pci'),
                GPU0_AUDIO: ('vfio-pci', 'vfio-pci'),
                GPU1: ('nouveau', None)},
    'claims': {GPU0: ('claimed', INSTANCE, 'hotplug'),
               GPU0_AUDIO: ('claimed', INSTANCE, 'hotplug'),
               GPU1: ('available', None, None)},
    # The group's audio function is bound and held, not given to the guest.
    'live': {GPU0: '0000:00:05.0'},
    'config': {GPU0: '0000:00:05.0'},
    'intervals': [(GPU0, 'hotplug', None)],
    'pending': {},
    'attached': [GPU0],
}


class LiveHotplugTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.env = self.useFixture(hf.HotplugHost())
        self.before = self.env.state()

    def attach(self, count: int = 1, **kw: object) -> list[dict[str, object]]:
        return self.env.hotplugger().attach(INSTANCE, 'gpu', count,
                                            project=PROJECT, **kw)

    # -- the happy path ----------------------------------------------------
    def test_report_marks_the_pool_and_flavors_never_take_it(self) -> None:
        report = self.env.store.get(hf.HOST)
        self.assertEqual({GPU0: True, GPU0_AUDIO: True, GPU1: True},
                         {d.address: d.hotplug_pool for d in report.devices
                          if d.address in hf.POOL})
        aliases = alias_mod.parse_aliases(self.env.conf.pci.alias)
        pools = pools_mod.HostPools.from_report(report)
        flavor = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'gpu:1'}, aliases)
        self.assertEqual('no_match', pools.fit(flavor).reason)
        headroom = request_mod.RequestSet.from_extra_specs(
            {'passthrough:hotplug_headroom': 'gpu:2'}, aliases)
        self.assertTrue(pools.fit(headroom).ok)

    def test_attach_then_detach(self) -> None:
        held = self.attach()
        self.assertEqual([(GPU0, 'gpu', [GPU0, GPU0_AUDIO])],
                         [(h['address'], h['alias'], h['group'])
                          for h in held])
        self.assertEqual(ATTACHED, self.env.state())
        # managed='no': libvirt must not rebind what the agent bound.
        self.assertIn("managed='no'", self.env.faults.sent[0])
        self.env.clock.advance(seconds=3725)
        self.assertEqual([GPU0], self.env.hotplugger().detach(INSTANCE))
        after = self.env.state()
        self.assertEqual([(GPU0, 'hotplug', 'detached')],
                         after.pop('intervals'))
        expected = dict(self.before)
        expected.pop('intervals')
        self.assertEqual(expected, after)
        interval, = self.env.ledger.intervals(instance=INSTANCE)
        self.assertEqual(3725, (interval.end - interval.start).seconds)

    def test_attach_and_detach_are_idempotent(self) -> None:
        self.attach()
        self.attach()
        self.assertEqual(ATTACHED, self.env.state())
        self.assertEqual(1, self.env.faults.attach_calls)
        self.env.hotplugger().detach(INSTANCE)
        self.assertEqual([], self.env.hotplugger().detach(INSTANCE))

    def test_guest_numa_node_chooses_the_device(self) -> None:
        self.env.hotplugger().attach(OTHER, 'gpu', project=PROJECT)
        self.assertEqual({GPU1: '0000:00:05.0'},
                         self.env.guest(OTHER).hostdevs())

    def test_guest_address_is_asked_of_libvirt(self) -> None:
        self.attach(guest_addresses=['0000:00:07.0'])
        self.assertIn("<address type='pci' domain='0x0000' bus='0x00' "
                      "slot='0x07' function='0x0'/>",
                      self.env.faults.sent[0])

    def test_flavor_device_cannot_be_detached(self) -> None:
        with self.env.ledger.begin() as txn:
            txn.add_instance(INSTANCE, PROJECT, hf.HOST, {},
                             self.env.ledger.now())
            txn.start(txn.instance(INSTANCE), hf.HOST, '0000:01:10.0',
                      resource_class='CUSTOM_VF', source='flavor',
                      at=self.env.ledger.now())
        error = self.assertRaises(
            exception.InvalidLedgerInput, self.env.hotplugger().detach,
            INSTANCE, ['0000:01:10.0'])
        self.assertIn('a flavor device cannot be unplugged', error.message)

    # -- refusal -----------------------------------------------------------
    def test_headroom_promised_to_another_instance_refuses(self) -> None:
        aliases = alias_mod.parse_aliases(self.env.conf.pci.alias)
        pools = pools_mod.HostPools.from_report(self.env.store.get(hf.HOST))
        claims.boot(self.env.ledger, pools, OTHER, PROJECT,
                    request_mod.RequestSet.from_extra_specs(
                        {'passthrough:hotplug_headroom': 'gpu:1'}, aliases))
        self.attach()  # one GPU is left for OTHER's headroom
        after_one = self.env.state()
        error = self.assertRaises(exception.HotplugRefused, self.attach, 2)
        self.assertIn('(hotplug_headroom)', error.message)
        self.assertIn('no room left for the hotplug headroom of 1 x gpu',
                      error.message)
        self.assertEqual(after_one, self.env.state())

    # -- a fault at each step, everything restored -------------------------
    def assert_failed_at(self, step: str, count: int = 1) -> str:
        error = self.assertRaises(exception.HotplugFailed, self.attach,
                                  count)
        self.assertIn('failed at step %s:' % step, error.message)
        self.assertIn('every step before it was undone', error.message)
        self.assertEqual(self.before, self.env.state())
        return error.message

    def test_fault_at_claim(self) -> None:
        self.env.store.fail_claim = True
        self.assertIn('injected fault', self.assert_failed_at('claim'))

    def test_fault_at_bind(self) -> None:
        # The 4th write: the second device of the group, mid-bind.
        self.env.host.kernel.fail_at(len(self.env.host.kernel.writes) + 3,
                                     errno.ENODEV)
        self.assertIn('injected', self.assert_failed_at('bind'))

    def test_fault_at_libvirt_second_device(self) -> None:
        self.env.faults.fail_attach_at = 2
        message = self.assert_failed_at('libvirt', count=2)
        self.assertIn('device_add (injected)', message)

    def test_fault_at_ledger(self) -> None:
        # A stale interval: the ledger says OTHER holds GPU0 already.
        with self.env.ledger.begin() as txn:
            txn.add_instance(OTHER, PROJECT, hf.HOST, {},
                             self.env.ledger.now())
            txn.start(txn.instance(OTHER), hf.HOST, GPU0,
                      resource_class='X', source='hotplug',
                      at=self.env.ledger.now())
        self.before = self.env.state()
        self.assertIn('already held by instance %s' % OTHER,
                      self.assert_failed_at('ledger'))

    # -- a crash between steps, then a re-run that converges ---------------
    def crash_then_rerun(self, arm: object, disarm: object) -> None:
        arm()  # type: ignore[operator]
        self.assertRaises(hf.Crash, self.attach)
        self.assertEqual(INSTANCE, next(iter(self.env.journal().pending)))
        disarm()  # type: ignore[operator]
        self.attach()
        self.assertEqual(ATTACHED, self.env.state())

    def test_crash_after_claim(self) -> None:
        store = self.env.store
        self.crash_then_rerun(
            lambda: setattr(store, 'crash_after_claim', True),
            lambda: setattr(store, 'crash_after_claim', False))

    def test_crash_mid_bind(self) -> None:
        kernel = self.env.host.kernel
        start = len(kernel.writes)

        def crash(index: int, path: str, value: str) -> None:
            if index == start + 3:
                raise hf.Crash('mid-bind')
        self.crash_then_rerun(lambda: kernel.hooks.append(crash),
                              kernel.hooks.clear)

    def test_crash_after_libvirt_attach(self) -> None:
        faults = self.env.faults
        self.crash_then_rerun(
            lambda: setattr(faults, 'crash_after_attach_at', 1),
            lambda: setattr(faults, 'crash_after_attach_at', None))
        self.assertEqual(1, faults.attach_calls)

    def test_crash_during_detach_then_rerun_finishes(self) -> None:
        self.attach()
        self.env.faults.crash_after_detach = True
        self.assertRaises(hf.Crash, self.env.hotplugger().detach, INSTANCE)
        self.env.faults.crash_after_detach = False
        self.assertEqual([GPU0], self.env.hotplugger().detach(INSTANCE))
        after = self.env.state()
        self.assertEqual([(GPU0, 'hotplug', 'detached')],
                         after.pop('intervals'))
        self.assertEqual({k: v for k, v in self.before.items()
                          if k != 'intervals'}, after)

    def test_device_the_host_lost_is_detached_cleanly(self) -> None:
        self.attach()
        self.env.agent.tick()
        for address in (GPU0, GPU0_AUDIO):
            self.env.host.tree.remove_device(address)
        self.env.agent.tick()  # run's scan: the loss is recorded
        self.assertEqual([(GPU0, 'hotplug', 'device_removed')],
                         self.env.state()['intervals'])
        self.assertEqual([GPU0], self.env.hotplugger().detach(INSTANCE))
        self.assertEqual(({}, []), (self.env.journal().pending,
                                    sorted(self.env.journal().attached)))

    # -- the guest does not release the device -----------------------------
    def test_detach_timeout_keeps_everything_then_rerun(self) -> None:
        self.attach()
        self.env.faults.hung_guest = True
        error = self.assertRaises(exception.HotplugFailed,
                                  self.env.hotplugger().detach, INSTANCE)
        self.assertIn('failed at step libvirt: Agent error: the guest has '
                      'not released %s: libvirt sent no device-removed '
                      'event for it within 0.3 s ([hotplug] detach_timeout)'
                      % GPU0, error.message)
        state = self.env.state()
        # Still the guest's: bound, claimed, billed; the detach is pending.
        self.assertEqual(ATTACHED['drivers'], state['drivers'])
        self.assertEqual(ATTACHED['claims'], state['claims'])
        self.assertEqual({GPU0: '0000:00:05.0'}, state['live'])
        self.assertEqual([(GPU0, 'hotplug', None)], state['intervals'])
        self.assertEqual('detach', state['pending'][INSTANCE]['action'])
        self.env.faults.hung_guest = False
        self.assertEqual([GPU0], self.env.hotplugger().detach(INSTANCE))
        self.assertEqual({}, self.env.state()['live'])


class LiveHotplugCommandTest(testtools.TestCase):
    """passthrough-agent attach / detach, as an operator runs them."""

    def setUp(self) -> None:
        super().setUp()
        self.env = self.useFixture(hf.HotplugHost())
        connection = self.env.connection
        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.cmd.agent_hotplug.CONNECT',
            lambda uri: connection))

    def run_cmd(self, *argv: str) -> tuple[int, str, str]:
        out = self.useFixture(fixtures.StringStream('stdout')).stream
        err = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err))
        host = self.env.host
        rc = cmd.main([argv[0], '--config-file', self.env.config,
                       '--sysfs-root', str(host.tree.sys),
                       '--proc-root', str(host.tree.proc),
                       '--state-path', host.state_path] + list(argv[1:]),
                      conf=cfg.ConfigOpts(), kernel=host.kernel)
        out.seek(0)
        err.seek(0)
        return rc, out.read(), err.read()

    def test_attach_detach_commands(self) -> None:
        rc, out, err = self.run_cmd(
            'attach', '--instance', INSTANCE, '--alias', 'gpu:1',
            '--guest-address', '00:07.0', '--project', PROJECT,
            '--format', 'json')
        self.assertEqual((0, ''), (rc, err))
        self.assertEqual(
            {'instance': INSTANCE, 'devices': [{
                'address': GPU0, 'alias': 'gpu',
                'guest_address': '0000:00:05.0',
                'iommu_group': [GPU0, GPU0_AUDIO]}]}, json.loads(out))
        self.assertEqual(ATTACHED, self.env.state())
        rc, out, err = self.run_cmd('attach', '--instance', INSTANCE,
                                    '--alias', 'gpu')
        self.assertEqual((0, ''), (rc, err))
        self.assertIn('holds 1 hot-plugged gpu device(s)', out)
        rc, out, err = self.run_cmd('detach', '--instance', INSTANCE)
        self.assertEqual((0, 'detached from %s: %s\n' % (INSTANCE, GPU0)),
                         (rc, out))
        rc, out, _err = self.run_cmd('detach', '--instance', INSTANCE)
        self.assertEqual('nothing to detach from %s\n' % INSTANCE, out)

    def test_errors_are_one_line(self) -> None:
        rc, _out, err = self.run_cmd('attach', '--instance', INSTANCE,
                                     '--alias', 'gpu:x')
        self.assertEqual(2, rc)
        self.assertIn("count 'x' of 'gpu' must be a whole number", err)
        self.assertEqual(1, len(err.splitlines()))
        rc, _out, err = self.run_cmd('attach', '--instance', INSTANCE,
                                     '--alias', 'nic')
        self.assertEqual(2, rc)
        self.assertIn('nic', err)
        rc, _out, err = self.run_cmd('attach', '--instance', INSTANCE,
                                     '--alias', 'gpu')
        self.assertEqual(
            (1, 'passthrough-agent: Agent error: instance %s is not in the '
             'ledger and its domain names no nova project; pass --project\n'
             % INSTANCE), (rc, err))
        rc, _out, err = self.run_cmd('attach', '--instance', OTHER, '--alias',
                                     'gpu:3', '--project', PROJECT)
        self.assertEqual(1, rc)
        self.assertIn('refused (insufficient)', err)
