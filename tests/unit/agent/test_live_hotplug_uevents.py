"""Kernel uevents wake the scan loop: parsing, and the sleeper on a socket."""

from __future__ import annotations

import socket
import threading

import testtools

from passthrough_plugin.agent import uevents

ADD = (b'add@/devices/pci0000:00/0000:00:09.0/0000:06:00.0\0ACTION=add\0'
       b'DEVPATH=/devices/pci0000:00/0000:00:09.0/0000:06:00.0\0'
       b'SUBSYSTEM=pci\0PCI_ID=8086:10D3\0PCI_SLOT_NAME=0000:06:00.0\0'
       b'SEQNUM=2011\0')
NET = (b'add@/devices/virtual/net/tap0\0ACTION=add\0SUBSYSTEM=net\0'
       b'INTERFACE=tap0\0')


class ParseTest(testtools.TestCase):

    def test_pci_add(self) -> None:
        fields = uevents.parse(ADD)
        self.assertEqual(('add', 'pci', '0000:06:00.0'),
                         (fields['ACTION'], fields['SUBSYSTEM'],
                          fields['PCI_SLOT_NAME']))
        self.assertTrue(uevents.is_pci_change(ADD))

    def test_other_subsystems_and_garbage_do_not_count(self) -> None:
        self.assertFalse(uevents.is_pci_change(NET))
        self.assertFalse(uevents.is_pci_change(b'\xff\0=\0SUBSYSTEM'))
        self.assertFalse(uevents.is_pci_change(b''))


class SleeperTest(testtools.TestCase):
    """The sleeper on a datagram socket pair standing in for netlink."""

    def setUp(self) -> None:
        super().setUp()
        ours, self.kernel = socket.socketpair(socket.AF_UNIX,
                                              socket.SOCK_DGRAM)
        ours.setblocking(False)
        self.addCleanup(ours.close)
        self.addCleanup(self.kernel.close)
        self.sleeper = uevents.UeventSleeper(ours)

    def send_later(self, *messages: bytes) -> threading.Event:
        sent = threading.Event()

        def send() -> None:
            for message in messages:
                self.kernel.send(message)
            sent.set()
        # The sleeper must already be waiting: start it from a timer that
        # the sleep itself outlives by far (the sleep is 60 s).
        timer = threading.Timer(0.05, send)
        timer.start()
        self.addCleanup(timer.cancel)
        return sent

    def test_pci_event_ends_the_sleep(self) -> None:
        sent = self.send_later(NET, ADD)
        self.sleeper(60)
        self.assertTrue(sent.is_set())
        self.assertEqual(1, self.sleeper.woken)

    def test_other_events_do_not(self) -> None:
        self.kernel.send(NET)
        self.sleeper(0.2)
        self.assertEqual(0, self.sleeper.woken)

    def test_an_event_queued_before_the_sleep_still_wakes_it(self) -> None:
        self.kernel.send(ADD)
        self.sleeper(60)
        self.assertEqual(1, self.sleeper.woken)

    def test_drain_discards_what_was_queued(self) -> None:
        self.kernel.send(NET)
        self.kernel.send(ADD)
        self.assertTrue(self.sleeper.drain())
        self.assertFalse(self.sleeper.drain())
        self.sleeper(0.2)
        self.assertEqual(0, self.sleeper.woken)
