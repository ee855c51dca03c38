"""Kernel uevents (what udev hears): wake ``run`` when a PCI device changes.

``run`` sleeps ``[agent] scan_interval`` seconds between two scans; with
the kernel's uevent socket open it rescans as soon as a PCI device is
added, removed, bound or unbound, so a hot-added or vanished device is
published within seconds. Where the socket cannot be opened (no netlink,
a sandbox) the plain interval stays.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

from oslo_log import log as logging

LOG = logging.getLogger(__name__)
NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1  # the kernel's own broadcast (udev re-sends on group 2)
ACTIONS = frozenset(('add', 'remove', 'bind', 'unbind', 'change'))
# A hot-add comes as a burst (add, then bind of the driver...): wait this
# long after the first event so that one scan sees the whole of it.
SETTLE = 0.5
Sleep = Callable[[float], None]


def parse(data: bytes) -> dict[str, str]:
    """One kernel uevent: ``ACTION@DEVPATH\\0KEY=VALUE\\0...``."""
    fields: dict[str, str] = {}
    for part in data.split(b'\0')[1:]:
        key, sep, value = part.partition(b'=')
        if sep:
            fields[key.decode('ascii', 'replace')] = value.decode(
                'utf-8', 'replace')
    return fields


def is_pci_change(data: bytes) -> bool:
    fields = parse(data)
    return (fields.get('SUBSYSTEM') == 'pci'
            and fields.get('ACTION') in ACTIONS)


class UeventSleeper:
    """A ``sleep(seconds)`` that returns early on a PCI uevent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.woken = 0

    @classmethod
    def open(cls) -> UeventSleeper | None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                 NETLINK_KOBJECT_UEVENT)
            sock.bind((0, KERNEL_GROUP))
        except (OSError, AttributeError) as exc:
            LOG.info('no kernel uevents (%s): rescanning every [agent] '
                     'scan_interval seconds', exc)
            return None
        sock.setblocking(False)
        return cls(sock)

    def _pci_event(self, timeout: float) -> bool:
        ready, _w, _x = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return False
        found = False
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return found
            except OSError as exc:  # ENOBUFS: events were lost: rescan
                LOG.debug('uevent socket: %s', exc)
                return True
            found = found or is_pci_change(data)

    def __call__(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._pci_event(left):
                self.woken += 1
                settle = time.monotonic() + min(SETTLE, left)
                while time.monotonic() < settle:
                    self._pci_event(settle - time.monotonic())
                return

    def drain(self) -> bool:
        """Discard the events queued so far; True when one was a PCI change."""
        return self._pci_event(0)

    def close(self) -> None:
        self.sock.close()


def sleeper() -> Sleep:
    """The uevent-aware sleep, or ``time.sleep`` without uevents."""
    found = UeventSleeper.open()
    return found if found is not None else time.sleep
