"""The agent's libvirt event plumbing against real libvirt (libvirt-python
and libvirt's own ``test:///default`` driver): the default event loop on its
thread, lifecycle events queued for the agent's thread."""

from __future__ import annotations

import uuid

import libvirt
import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import libvirt_events
from passthrough_plugin.agent import libvirt_guest

WAIT = 30.0
DOMAIN = """<domain type='test'><name>%s</name><uuid>%s</uuid>
<memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<devices/></domain>"""


class RealLibvirtEventsTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        # What passthrough-agent does: the loop first, then the connection.
        self.connection = libvirt_guest.default_connect('test:///default')
        self.addCleanup(self.connection.close)
        self.events = libvirt_events.DomainEvents(self.connection)
        self.addCleanup(self.events.close)
        self.uuid = str(uuid.uuid4())

    def next_event(self) -> tuple[str, str]:
        item = self.events.next_lifecycle(WAIT)
        if item is None:
            raise AssertionError('libvirt sent no lifecycle event within '
                                 '%.0f s' % WAIT)
        return item[0], libvirt_events.NAMES[item[1]]

    def test_lifecycle_events_reach_the_agent(self) -> None:
        domain = self.connection.defineXML(
            DOMAIN % ('pt-%s' % self.uuid[:8], self.uuid))
        domain.create()
        domain.destroy()
        domain.undefine()
        self.assertEqual([(self.uuid, 'defined'), (self.uuid, 'started'),
                          (self.uuid, 'stopped'), (self.uuid, 'undefined')],
                         [self.next_event() for _ in range(4)])

    def test_close_wakes_a_waiter(self) -> None:
        self.events.close()
        self.assertIsNone(self.events.next_lifecycle(WAIT))
        self.assertFalse(self.events.wait_removed(lambda: False, WAIT))

    def test_missing_domain_is_one_line(self) -> None:
        error = self.assertRaises(exception.AgentError, libvirt_guest.Guest,
                                  self.connection, self.uuid)
        self.assertIn('no libvirt domain for instance %s' % self.uuid,
                      error.message)
        self.assertIsInstance(self.connection, libvirt.virConnect)
