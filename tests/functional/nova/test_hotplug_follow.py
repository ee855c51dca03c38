"""Hot-plugged devices follow their instance through nova's domain rewrites
(hard reboot, resize) and moves (cold migration, evacuation), driven by
libvirt's lifecycle events; detach waits for libvirt's device-removed event.
Fake sysfs trees, a shared file store and SQLite ledger, nova's fakelibvirt.
"""

from __future__ import annotations

import threading
from typing import Any

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import hotplug_follow
from passthrough_plugin.cmd import agent_hotplug
from passthrough_plugin.lifecycle import records
from tests.functional.nova import hotplug_fixtures as hf
from tests.functional.nova.hotplug_fixtures import DEST
from tests.functional.nova.hotplug_fixtures import GPU0
from tests.functional.nova.hotplug_fixtures import GPU0_AUDIO
from tests.functional.nova.hotplug_fixtures import GPU1
from tests.functional.nova.hotplug_fixtures import HOST
from tests.functional.nova.hotplug_fixtures import INSTANCE
from tests.functional.nova.hotplug_fixtures import OTHER
from tests.functional.nova.hotplug_fixtures import PROJECT

WAIT = 30.0  # seconds; every wait below is for an event, bounded by this
# What the guest holds after the attach, and again after each rewrite.
GPU0_HOSTDEV = (
    "<hostdev mode='subsystem' type='pci' managed='no'> <source> <address "
    "domain='0x0000' bus='0x5e' slot='0x00' function='0x0'/> </source> "
    "<alias name='hostdev0'/> <address type='pci' domain='0x0000' "
    "bus='0x00' slot='0x05' function='0x0'/></hostdev>")
HELD = {
    'drivers': {GPU0: ('vfio-pci', 'vfio-pci'),
                GPU0_AUDIO: ('vfio-pci', 'vfio-pci'),
                GPU1: ('nouveau', None)},
    'claims': {GPU0: ('claimed', INSTANCE, 'hotplug'),
               GPU0_AUDIO: ('claimed', INSTANCE, 'hotplug'),
               GPU1: ('available', None, None)},
}
FREE = {
    'drivers': {GPU0: ('nouveau', None), GPU0_AUDIO: ('snd_hda_intel', None),
                GPU1: ('nouveau', None)},
    'claims': {a: ('available', None, None) for a in hf.POOL},
}


def held(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in ('drivers', 'claims')}


def wait(follower: hotplug_follow.Follower, count: int) -> None:
    if not follower.wait_handled(count, WAIT):
        raise AssertionError(
            'the agent handled %d libvirt lifecycle events of %s within %.0f '
            's, expected %d' % (follower.handled, follower.host, WAIT, count))


class Recorder:
    """A notifier that keeps what it was told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, records.Interval]] = []

    def attach(self, interval: records.Interval) -> None:
        self.sent.append(('attach', interval))

    def detach(self, interval: records.Interval) -> None:
        self.sent.append(('detach', interval))


class SameHostTest(testtools.TestCase):
    """nova rewrote the domain on this host: the device is given back."""

    def setUp(self) -> None:
        super().setUp()
        self.env = self.useFixture(hf.HotplugHost())
        self.env.hotplugger().attach(INSTANCE, 'gpu', project=PROJECT)
        self.assertEqual([GPU0_HOSTDEV], self.env.hostdev_xml())
        self.start = self.env.ledger.intervals(instance=INSTANCE)[0].start
        self.env.clock.advance(seconds=60)

    def assert_given_back(self) -> None:
        self.assertEqual([GPU0_HOSTDEV], self.env.hostdev_xml())
        self.assertEqual({GPU0: '0000:00:05.0'},
                         self.env.guest().hostdevs(False))
        self.assertEqual(HELD, held(self.env.state()))
        # The interval goes on: billing does not break.
        interval, = self.env.ledger.intervals(instance=INSTANCE)
        self.assertEqual((GPU0, self.start, None),
                         (interval.host_address, interval.start,
                          interval.end))
        self.assertEqual(['hotplug', 'reattach'], [
            e.action for e in self.env.ledger.events(INSTANCE)])

    def test_hard_reboot(self) -> None:
        follower = self.env.follower()
        self.env.nova_define()  # stopped, defined, started
        self.assertEqual({}, self.env.guest().hostdevs())
        wait(follower, 3)
        self.assertEqual([(INSTANCE, GPU0, 'reattach')], follower.rows)
        self.assert_given_back()

    def test_resize_on_the_same_host(self) -> None:
        follower = self.env.follower()
        # nova defines the resized domain, and starts it later.
        self.env.nova_define(start=False)
        wait(follower, 2)
        self.assertFalse(self.env.guest().active())
        self.assertEqual({GPU0: '0000:00:05.0'},
                         self.env.guest().hostdevs(False))
        self.env.guest().domain.create()
        wait(follower, 3)
        self.assert_given_back()

    def test_run_follows_events(self) -> None:
        connection = self.env.connection
        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.cmd.agent_hotplug.CONNECT',
            lambda uri: connection))
        follower = agent_hotplug.wire_run(self.env.agent)
        assert follower is not None
        self.addCleanup(follower.stop)
        found = follower.handled  # the domains found at start
        self.assertEqual(2, found)
        self.assertEqual([], follower.rows)
        self.env.nova_define()
        wait(follower, found + 3)
        self.assert_given_back()

    def test_why_it_could_not_is_recorded_once(self) -> None:
        logs = self.useFixture(fixtures.FakeLogger(
            name='passthrough_plugin', format='%(levelname)s %(message)s'))
        follower = hotplug_follow.Follower(self.env.hotplugger())
        self.env.nova_define()
        calls = self.env.faults.attach_calls
        self.env.faults.fail_attach_at = calls + 1
        self.assertEqual([(INSTANCE, GPU0, 'reattach_failed')],
                         follower.handle(INSTANCE))
        event = self.env.ledger.events(INSTANCE)[-1]
        self.assertEqual('reattach_failed', event.action)
        self.assertIn('device_add (injected)', event.detail)
        self.assertIn('ERROR cannot give %s back to instance %s'
                      % (GPU0, INSTANCE), logs.output)
        # Still failing at the next event: not recorded again.
        self.env.faults.fail_attach_at = calls + 2
        self.assertEqual([(INSTANCE, GPU0, 'reattach_failed')],
                         follower.handle(INSTANCE))
        self.env.faults.fail_attach_at = None
        self.assertEqual([(INSTANCE, GPU0, 'reattach')],
                         follower.handle(INSTANCE))
        self.assertEqual(['hotplug', 'reattach_failed', 'reattach'],
                         [e.action for e in self.env.ledger.events(INSTANCE)])
        self.assertEqual([GPU0_HOSTDEV], self.env.hostdev_xml())

    def test_vanished_device_is_not_given_back(self) -> None:
        self.env.nova_define()
        self.env.host.tree.remove_device(GPU0)
        follower = hotplug_follow.Follower(self.env.hotplugger())
        self.assertEqual([], follower.handle(INSTANCE))
        self.assertEqual([], self.env.hostdev_xml())


class MoveTest(testtools.TestCase):
    """The instance moves to another host: its hotplugs follow it."""

    def setUp(self) -> None:
        super().setUp()
        plane = self.useFixture(hf.ControlPlane())
        self.src = self.useFixture(hf.HotplugHost(HOST, plane))
        self.dst = self.useFixture(hf.HotplugHost(DEST, plane, guests=()))
        self.src.hotplugger().attach(INSTANCE, 'gpu', project=PROJECT)
        self.hotplug_id = self.src.ledger.hotplugs(INSTANCE)[0].id
        self.clock = plane.clock
        self.clock.advance(seconds=3600)

    def test_cold_migration(self) -> None:
        src, dst = self.src.follower(), self.dst.follower()
        self.src.nova_destroy(undefine=False)  # migrate: power off
        wait(src, 1)
        self.assertEqual([], src.rows)  # still held there until confirmed
        self.dst.nova_define()  # defined and started on the destination
        wait(dst, 2)
        self.assertEqual([(INSTANCE, GPU0, 'arrived')], dst.rows)
        self.assertEqual([GPU0_HOSTDEV], self.dst.hostdev_xml())
        self.assertEqual(HELD, held(self.dst.state()))
        old, new = self.dst.ledger.intervals(instance=INSTANCE)
        self.assertEqual(
            [(HOST, GPU0, 'moved to %s' % DEST, self.hotplug_id),
             (DEST, GPU0, None, self.hotplug_id)],
            [(i.host, i.host_address, i.end_reason, i.hotplug_id)
             for i in (old, new)])
        self.assertEqual(old.end, new.start)
        self.assertEqual(DEST, self.dst.ledger.instance(INSTANCE).host)
        event = self.dst.ledger.events(INSTANCE)[-1]
        self.assertEqual(('reattach', DEST, 'followed the instance from %s: '
                          'gpu: %s' % (HOST, GPU0)),
                         (event.action, event.host, event.detail))
        # Still the source's until nova confirms the resize.
        self.assertEqual(HELD, held(self.src.state()))
        self.src.nova_destroy()  # confirm: undefined on the source
        wait(src, 2)
        self.assertEqual([(INSTANCE, GPU0, 'released')], src.rows)
        self.assertEqual(FREE, held(self.src.state()))
        self.assertEqual([], self.src.state()['attached'])
        self.assertEqual(HELD, held(self.dst.state()))

    def test_evacuation_source_down(self) -> None:
        dst = self.dst.follower()  # the source's agent is down
        self.dst.nova_define()
        wait(dst, 2)
        self.assertEqual([GPU0_HOSTDEV], self.dst.hostdev_xml())
        self.assertEqual([(GPU0, 'hotplug', None)],
                         self.dst.state()['intervals'])
        # The source comes back; nova destroyed the evacuated domain
        # before its agent started: found at start, released.
        self.src.nova_destroy()
        self.assertEqual(HELD, held(self.src.state()))
        src = hotplug_follow.Follower(self.src.hotplugger())
        self.assertEqual([(INSTANCE, GPU0, 'released')], src.catch_up())
        self.assertEqual(FREE, held(self.src.state()))
        self.assertEqual([(GPU0, 'hotplug', 'moved to %s' % DEST)],
                         self.src.state()['intervals'])

    def test_store_outage_on_arrival_loses_nothing(self) -> None:
        dst = self.dst.follower()
        self.dst.store.fail_publish = True
        self.dst.nova_define()
        wait(dst, 2)
        self.assertEqual([(INSTANCE, 'gpu', 'retry')] * 2, dst.rows)
        self.assertEqual([], self.dst.hostdev_xml())
        interval, = self.dst.ledger.intervals(instance=INSTANCE, active=True)
        self.assertEqual(HOST, interval.host)
        self.assertEqual(1, len(self.dst.ledger.hotplugs(INSTANCE)))
        self.dst.store.fail_publish = False
        self.dst.nova_define()  # the next events of the instance
        wait(dst, 5)
        self.assertEqual((INSTANCE, GPU0, 'arrived'), dst.rows[2])
        self.assertEqual([GPU0_HOSTDEV], self.dst.hostdev_xml())

    def test_no_room_on_the_destination_is_recorded(self) -> None:
        logs = self.useFixture(fixtures.FakeLogger(
            name='passthrough_plugin', format='%(levelname)s %(message)s'))
        # Every GPU of the destination is held by another instance.
        self.dst.connection.defineXML(
            hf.domain_xml(OTHER, 'instance-2', 1)).create()
        self.dst.hotplugger().attach(OTHER, 'gpu', 2, project=PROJECT)
        notes = Recorder()
        self.dst.ledger.notifier = notes
        dst = self.dst.follower()
        self.dst.nova_define()
        wait(dst, 4)  # OTHER's defined and started, then INSTANCE's
        self.assertEqual([(INSTANCE, 'gpu', 'lost')], dst.rows)
        self.assertEqual([], self.dst.hostdev_xml())
        why = ('Hotplug of 1 x gpu into instance %s on host %s refused '
               '(insufficient)' % (INSTANCE, DEST))
        interval, = self.dst.ledger.intervals(instance=INSTANCE)
        self.assertEqual(HOST, interval.host)
        self.assertIn('lost on move to %s: %s' % (DEST, why),
                      interval.end_reason)
        self.assertEqual([], self.dst.ledger.hotplugs(INSTANCE))
        self.assertEqual([('detach', interval)], notes.sent)
        event = self.dst.ledger.events(INSTANCE)[-1]
        self.assertEqual('reattach_failed', event.action)
        self.assertIn('ERROR instance %s arrived on %s without its 1 '
                      'hot-plugged gpu device(s): %s' % (INSTANCE, DEST, why),
                      logs.output)
        # Nothing of the destination changed hands.
        self.assertEqual({a: ('claimed', OTHER, 'hotplug') for a in hf.POOL},
                         self.dst.state(OTHER)['claims'])


class DetachEventTest(testtools.TestCase):
    """detach waits for libvirt's device-removed event."""

    def setUp(self) -> None:
        super().setUp()
        self.env = self.useFixture(hf.HotplugHost())
        self.env.hotplugger().attach(INSTANCE, 'gpu', project=PROJECT)

    def test_detach_returns_on_the_device_removed_event(self) -> None:
        self.env.faults.slow_guest = True
        hotplugger = self.env.hotplugger()
        hotplugger.timeout = WAIT
        done: list[object] = []
        worker = threading.Thread(
            target=lambda: done.append(hotplugger.detach(INSTANCE)))
        worker.start()
        if not self.env.faults.asked.wait(WAIT):
            raise AssertionError('detach did not ask libvirt to detach %s '
                                 'within %.0f s' % (GPU0, WAIT))
        # Asked, not yet released: detach is waiting for the event.
        self.assertEqual([], done)
        self.assertEqual([GPU0_HOSTDEV], self.env.hostdev_xml())
        domain, xml = self.env.faults.unreleased.pop()
        hf.release(domain, xml)
        worker.join(WAIT)
        self.assertFalse(worker.is_alive(), 'detach still waits after the '
                         'device-removed event')
        self.assertEqual([[GPU0]], done)
        self.assertEqual([(INSTANCE, 'hostdev0')],
                         self.env.events.removed_aliases)
        self.assertEqual(FREE, held(self.env.state()))
        self.assertEqual([], self.env.hostdev_xml())

    def test_no_event_times_out_with_what_it_waited_for(self) -> None:
        self.env.faults.slow_guest = True
        error = self.assertRaises(exception.HotplugFailed,
                                  self.env.hotplugger().detach, INSTANCE)
        self.assertIn('the guest has not released %s: libvirt sent no '
                      'device-removed event for it within 0.3 s ([hotplug] '
                      'detach_timeout)' % GPU0, error.message)
        self.assertEqual(HELD, held(self.env.state()))
