"""libvirt's domain events for the agent: lifecycle changes, device removal.

libvirt calls back on its event-loop thread; the callbacks only queue and
notify, the agent's own thread does the work (libvirt must not be called
back into from its event loop).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_log import log as logging

LOG = logging.getLogger(__name__)
# libvirt's stable ABI values (virDomainEventID, virDomainEventType).
EVENT_ID_LIFECYCLE = 0
EVENT_ID_DEVICE_REMOVED = 15
DEFINED, UNDEFINED, STARTED, SUSPENDED, RESUMED, STOPPED = range(6)
NAMES = {DEFINED: 'defined', UNDEFINED: 'undefined', STARTED: 'started',
         SUSPENDED: 'suspended', RESUMED: 'resumed', STOPPED: 'stopped'}
# The lifecycle events after which nova may have rewritten the domain, or
# the instance arrived on or left this host.
FOLLOWED = frozenset((DEFINED, UNDEFINED, STARTED, RESUMED, STOPPED))



class _Loop:
    lock = threading.Lock()
    started = False


def start_default_loop(libvirt: Any) -> None:
    """Run libvirt's default event loop on a daemon thread (once).

    libvirt delivers events only to connections opened after the loop
    implementation is registered, so call this before ``libvirt.open``.
    """
    with _Loop.lock:
        if _Loop.started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name='libvirt-events',
                         daemon=True).start()
        _Loop.started = True


Check = Callable[[], bool]


class DomainEvents:
    """The lifecycle and device-removed events of one connection."""

    def __init__(self, connection: Any) -> None:
        self._cond = threading.Condition()
        self._lifecycle: collections.deque[tuple[str, int, int]] = \
            collections.deque()
        self._removed = 0
        self.removed_aliases: list[tuple[str, str]] = []
        self._closed = False
        self._connection = connection
        self._callbacks = [
            connection.domainEventRegisterAny(
                None, EVENT_ID_LIFECYCLE, self._on_lifecycle, None),
            connection.domainEventRegisterAny(
                None, EVENT_ID_DEVICE_REMOVED, self._on_removed, None)]

    # -- libvirt's side (its event-loop thread) ----------------------------
    def _on_lifecycle(self, _conn: Any, domain: Any, event: int,
                      detail: int, _opaque: Any) -> None:
        if event not in FOLLOWED:
            return
        uuid = domain.UUIDString()
        LOG.debug('domain %s of instance %s: %s', domain.name(), uuid,
                  NAMES.get(event, event))
        with self._cond:
            self._lifecycle.append((uuid, event, detail))
            self._cond.notify_all()

    def _on_removed(self, _conn: Any, domain: Any, alias: str,
                    _opaque: Any) -> None:
        with self._cond:
            self._removed += 1
            self.removed_aliases.append((domain.UUIDString(), alias))
            self._cond.notify_all()

    # -- the agent's side --------------------------------------------------
    def next_lifecycle(self, timeout: float | None = None
                       ) -> tuple[str, int, int] | None:
        """The next followed lifecycle event: (instance, event, detail).

        :returns: None on timeout or once closed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._lifecycle:
                if self._closed:
                    return None
                left = None if deadline is None else \
                    deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            return self._lifecycle.popleft()

    def wait_removed(self, check: Check, timeout: float) -> bool:
        """Wait until ``check()`` holds, looking again at each
        device-removed event (libvirt sends one when QEMU reports the
        guest released a device). :returns: False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = self._removed
            # libvirt is asked outside the lock: its loop thread takes it.
            if check():
                return True
            with self._cond:
                while self._removed == seen:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        return False
                    self._cond.wait(left)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop delivering; wake every waiter."""
        deregister = getattr(self._connection, 'domainEventDeregisterAny',
                             None)
        callbacks, self._callbacks = self._callbacks, []
        for callback_id in callbacks:
            if deregister is not None and isinstance(callback_id, int):
                try:
                    deregister(callback_id)
                except Exception as exc:  # noqa: BLE001 - closing anyway
                    LOG.debug('cannot deregister a libvirt callback: %s',
                              exc)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
