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

LOG = logging.getLogger(__name__)
VERSION = 1


class Journal:
    """State file at ``path``; hold :meth:`locked` while changing devices."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.bound: dict[str, base.DeviceRecord] = {}
        self.pending: dict[str, Any] | None = None
        self.load()

    def load(self) -> None:
        try:
            with open(self.path, encoding='utf-8') as src:
                data = json.load(src)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise exception.AgentError(
                reason='state file %s is unreadable (%s); move it away to '
                'start afresh' % (self.path, exc)) from None
        self.bound = {a: base.DeviceRecord.from_dict(r)
                      for a, r in (data.get('bound') or {}).items()}
        self.pending = data.get('pending')

    def save(self) -> None:
        data = {'version': VERSION, 'pending': self.pending,
                'bound': {a: r.to_dict()
                          for a, r in sorted(self.bound.items())}}
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.state-', dir=directory)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One agent process changes devices at a time."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with open(self.path + '.lock', 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.load()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
               released: Sequence[str] = ()) -> None:
        for record in bound:
            self.bound[record.address] = record
        for address in released:
            self.bound.pop(address, None)
        self.pending = None
        self.save()
