"""The hotplug intent journal: live attaches and detaches in progress.

Each attach or detach writes its intent (instance, devices, the steps done
so far) before its first change and after each step, with an atomic
replace of one small JSON file; the devices it attached are remembered
(their IOMMU group and which members it bound) so that detach restores
exactly what attach changed. A crashed command leaves its entry pending;
the next command for that instance finishes it (same request) or undoes it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.agent import journal

VERSION = 1


class HotplugJournal:
    """State file at ``path``; hold :meth:`locked` while hot-plugging."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: dict[str, dict[str, Any]] = {}
        self.attached: dict[str, dict[str, Any]] = {}
        self.load()

    def load(self) -> None:
        try:
            with open(self.path, encoding='utf-8') as src:
                data = json.load(src)
        except FileNotFoundError:
            self.pending, self.attached = {}, {}
            return
        except (OSError, ValueError) as exc:
            raise exception.AgentError(
                reason='hotplug journal %s is unreadable (%s); move it away '
                'only after checking the guests by hand' % (self.path, exc)
            ) from None
        self.pending = dict(data.get('pending') or {})
        self.attached = dict(data.get('attached') or {})

    def save(self) -> None:
        data = {'version': VERSION, 'pending': self.pending,
                'attached': self.attached}
        journal.write_json(self.path, data, prefix='.hotplug-')

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One hotplug command at a time on this host."""
        with journal.exclusive(self.path):
            self.load()
            yield

    # -- operations ------------------------------------------------------
    def begin(self, instance: str, intent: dict[str, Any]) -> dict[str, Any]:
        intent = dict(intent, done=[])
        self.pending[instance] = intent
        self.save()
        return intent

    def step(self, instance: str, name: str, **data: Any) -> None:
        """Record that step ``name`` is done (with what it changed)."""
        intent = self.pending[instance]
        intent.update(data)
        if name not in intent['done']:
            intent['done'].append(name)
        self.save()

    def finish(self, instance: str) -> None:
        self.pending.pop(instance, None)
        self.save()

    def remember(self, address: str, record: dict[str, Any]) -> None:
        self.attached[address] = record
        self.save()

    def forget(self, address: str) -> None:
        if self.attached.pop(address, None) is not None:
            self.save()

    def held_by(self, instance: str) -> dict[str, dict[str, Any]]:
        return {a: r for a, r in sorted(self.attached.items())
                if r.get('instance') == instance}
