"""The scheduler's kept view of allocation candidates, no I/O.

A claim needs one Placement call (``PUT /allocations/{consumer}``) when
the scheduler already knows where there is room: the view keeps the
provider summaries of the last ``GET /allocation_candidates`` per query,
adds the scheduler's own claims and removes its own releases as it makes
them. Other schedulers' writes are invisible to it until Placement says
so: a PUT refused with HTTP 409 (no room any more) marks the providers
it named stale until a fresh answer covers them, a provider generation
that moved by more than our own writes drops the whole view, and so does
age (``[placement_store] candidates_max_age``). Placement's
PUT checks capacity atomically, so a stale view costs a retry, never an
overcommit.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Summaries = dict[str, dict[str, Any]]
Key = tuple[tuple[str, str], ...]


class CandidatesView:
    """Provider summaries kept current with our own writes, and per query
    the providers of its last answer.

    The summaries are shared by every query: a fresh answer to one query
    refreshes the usage every other query sees. A provider a claim was
    refused on is stale until a fresh answer includes it again; a query
    whose answer holds a stale provider is asked afresh.
    """

    def __init__(self, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._summaries: Summaries = {}
        # key -> (when, its providers in the answer's order: ties between
        # equal pools are broken by it)
        self._entries: dict[Key, tuple[float, tuple[str, ...]]] = {}
        self._stale: set[str] = set()
        # provider uuid -> generation last listed, and our writes since
        self._generations: dict[str, int] = {}
        self._own_writes: dict[str, int] = {}

    def get(self, key: Key) -> Summaries | None:
        """The summaries of ``key``'s providers; None when there is no
        answer for it, it is too old, or it holds a stale provider."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry[0] > self.max_age:
            del self._entries[key]
            return None
        if self._stale.intersection(entry[1]):
            return None
        return {uuid: self._summaries[uuid] for uuid in entry[1]
                if uuid in self._summaries}

    def put(self, key: Key, summaries: Mapping[str, Any]) -> None:
        """A fresh answer to ``key``."""
        if self.max_age <= 0:
            return
        for uuid, summary in summaries.items():
            self._summaries[uuid] = copy.deepcopy(summary)
        self._stale.difference_update(summaries)
        self._entries[key] = (self._clock(), tuple(summaries))

    def refused(self, providers: Iterable[str]) -> None:
        """Placement refused a claim on ``providers``: someone else wrote
        there; answers holding them are asked afresh."""
        self._stale.update(providers)

    def invalidate(self) -> None:
        """Forget everything kept."""
        self._entries.clear()
        self._summaries.clear()
        self._stale.clear()

    def wrote(self, allocations: Mapping[str, Mapping[str, int]],
              sign: int) -> None:
        """Our own claim (``sign`` 1) or release (-1) of ``allocations``
        (provider uuid -> class -> amount) went through."""
        for uuid, res in allocations.items():
            self._own_writes[uuid] = self._own_writes.get(uuid, 0) + 1
            resources = self._summaries.get(uuid, {}).get('resources', {})
            for rc, n in res.items():
                if rc in resources:
                    resources[rc]['used'] = max(
                        0, int(resources[rc]['used']) + sign * n)

    def listed(self, generations: Mapping[str, int]) -> bool:
        """Provider generations just listed; drop the view (True) when one
        moved by more than our own writes since the last listing."""
        moved = any(
            uuid in self._generations and generation !=
            self._generations[uuid] + self._own_writes.get(uuid, 0)
            for uuid, generation in generations.items())
        self._generations = dict(generations)
        self._own_writes.clear()
        if moved:
            self.invalidate()
        return moved
