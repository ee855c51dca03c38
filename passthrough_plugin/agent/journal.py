"""The agent's intent journal: what it bound, and what it was in the middle of.

A bind or unbind is recorded (devices, original drivers, what we are about to
set) before the first write, and updated as it goes, with an atomic replace
of one small JSON file. If the agent dies mid-way, the next run finds the
pending operation and rolls a bind back or finishes an unbind; ``run`` then
re-applies the desired state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent.binders import base
from passthrough_plugin.pci import address as addr

LOG = logging.getLogger(__name__)
VERSION = 1


class Journal:
    """State file at ``path``; hold :meth:`locked` while changing devices.

    ``bound``: devices the agent bound, with what to restore. ``failed``:
    devices whose restore (a rollback, an unbind) failed, with the error;
    they stay until a later ``unbind`` or ``run`` restores them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.bound: dict[str, base.DeviceRecord] = {}
        self.failed: dict[str, tuple[base.DeviceRecord, str]] = {}
        self.pending: dict[str, Any] | None = None
        self.load()

    def _bad(self, why: str) -> exception.AgentError:
        return exception.AgentError(
            reason='state file %s is not an agent journal (%s); move it '
            'away to start afresh' % (self.path, why))

    def load(self) -> None:
        """:raises: AgentError, one line, for an unreadable or misshapen
            file."""
        try:
            with open(self.path, encoding='utf-8') as src:
                data = json.load(src)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise exception.AgentError(
                reason='state file %s is unreadable (%s); move it away to '
                'start afresh' % (self.path, str(exc)[:200])) from None
        if not isinstance(data, dict):
            raise self._bad('expected a JSON object, got %s'
                            % type(data).__name__)
        bound = self._records(data.get('bound'), 'bound')
        failed = {}
        for address, entry in self._mapping(data.get('restore_failed'),
                                            'restore_failed').items():
            if not isinstance(entry, dict):
                raise self._bad('restore_failed.%s: expected an object'
                                % address[:40])
            record = self._records({address: entry.get('record')},
                                   'restore_failed')[address]
            failed[address] = (record, str(entry.get('error', ''))[:500])
        pending = data.get('pending')
        if pending is not None:
            if (not isinstance(pending, dict)
                    or pending.get('action') not in ('bind', 'unbind')
                    or not isinstance(pending.get('binder'), str)):
                raise self._bad('pending: expected {"action": "bind" or '
                                '"unbind", "binder": ..., "devices": ...}')
            self._records(pending.get('devices'), 'pending.devices')
        self.bound, self.failed, self.pending = bound, failed, pending

    def _mapping(self, value: Any, field: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._bad('%s: expected an object of devices, got %s' % (
                field, type(value).__name__))
        return value

    def _records(self, value: Any,
                 field: str) -> dict[str, base.DeviceRecord]:
        out = {}
        for address, data in self._mapping(value, field).items():
            try:
                if not isinstance(data, dict):
                    raise TypeError('not an object')
                record = base.DeviceRecord.from_dict(data)
                for name in ('original_driver', 'original_override'):
                    if not isinstance(getattr(record, name),
                                      (str, type(None))):
                        raise TypeError('%s is not a string' % name)
            except (KeyError, TypeError) as exc:
                raise self._bad('%s.%s: %s' % (
                    field, str(address)[:40], str(exc)[:100])) from None
            if not addr.PciAddress.is_valid(address):
                raise self._bad('%s: %r is not a PCI address' % (
                    field, address[:40]))
            if record.address != address:
                raise self._bad('%s.%s: its address is %s' % (
                    field, address[:40], record.address[:40]))
            out[address] = record
        return out

    def save(self) -> None:
        data = {'version': VERSION, 'pending': self.pending,
                'bound': {a: r.to_dict()
                          for a, r in sorted(self.bound.items())},
                'restore_failed': {
                    a: {'record': r.to_dict(), 'error': error}
                    for a, (r, error) in sorted(self.failed.items())}}
        write_json(self.path, data, prefix='.state-')

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One agent process changes devices at a time."""
        with exclusive(self.path):
            self.load()
            yield

    # -- pending operation ---------------------------------------------------
    def begin(self, action: str, binder: str,
              records: list[base.DeviceRecord]) -> None:
        self.pending = {'action': action, 'binder': binder,
                        'devices': {r.address: r.to_dict() for r in records}}
        self.save()

    def update(self, record: base.DeviceRecord) -> None:
        if self.pending is not None:
            self.pending['devices'][record.address] = record.to_dict()
        self.save()

    def pending_records(self) -> list[base.DeviceRecord]:
        if self.pending is None:
            return []
        return [base.DeviceRecord.from_dict(r)
                for r in self.pending['devices'].values()]

    def finish(self, bound: Sequence[base.DeviceRecord] = (),
               released: Sequence[str] = (),
               failed: Sequence[tuple[base.DeviceRecord, str]] = ()
               ) -> None:
        """End the pending operation: ``released`` devices are restored,
        ``failed`` ones (record, error) are kept until a restore works."""
        for record in bound:
            self.bound[record.address] = record
            self.failed.pop(record.address, None)
        for address in released:
            self.bound.pop(address, None)
            self.failed.pop(address, None)
        for record, error in failed:
            self.bound.pop(record.address, None)
            self.failed[record.address] = (record, error)
        self.pending = None
        self.save()


def write_json(path: str, data: Any, prefix: str) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def exclusive(path: str) -> Iterator[None]:
    """Hold ``path``.lock exclusively (one writer of ``path`` per host)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + '.lock', 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
