"""What the scheduler keeps per host, and decisions memoised across hosts.

Each host keeps the core's compact :class:`pci.pool_counts.Summary` (pool
counts and PF links, not devices). Its decisions depend only on that
summary's *state*: the pools' signatures, NUMA nodes, free counts and PF
links, without addresses. Hosts in the same state (one hardware model,
same usage) therefore share one memo entry per request: the fit is worked
out once per distinct state, not once per host. Hosts whose free devices
share IOMMU groups decide on their frozen free devices and share a memo
entry with the hosts that share that snapshot.
"""

from __future__ import annotations

import hashlib
import itertools
import weakref
from collections.abc import Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import matching
from passthrough_plugin.pci import pool_walk
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as core_summary

# The weight terms: NUMA locality dominates the strategy's own figure.
LOCALITY = 1_000_000.0
BROKEN_PF = 1_000.0
# A device of a hot-plugged request: what it was matched on.
HotplugKey = tuple[str, str, str, str]


class Decision:
    """One state's answer to one request: fits or why not, and figures."""

    __slots__ = ('ok', 'reason', 'detail', 'host', 'pack', 'spread',
                 'free_before', 'free_after', 'local')

    def __init__(self, ok: bool, reason: str | None = None, detail: str = '',
                 host: str = '', *, free_before: int = 0, free_after: int = 0,
                 broken_pfs: int = 0, local: bool = False) -> None:
        self.ok = ok
        self.reason = reason
        self.detail = detail
        # The host the detail was worded for (the first of its state).
        self.host = host
        self.free_before = free_before
        self.free_after = free_after
        self.local = local
        bonus = LOCALITY if local else 0.0
        # pack: fill PFs already in use, keep whole PFs free, best fit.
        self.pack = bonus - BROKEN_PF * broken_pfs - free_after
        # spread: the most free devices left.
        self.spread = bonus + free_after

    def detail_for(self, host: str) -> str:
        """The detail worded for ``host`` (decisions are shared by state)."""
        if self.host and host != self.host and self.detail.startswith(
                self.host):
            return host + self.detail[len(self.host):]
        return self.detail


class HostSummary:
    """One host: its generation, compact summary and memo key."""

    __slots__ = ('host', 'generation', 'summary', 'state', 'error',
                 'hotplug')

    def __init__(self, host: str, generation: int,
                 summary: core_summary.Summary | None, state: int = 0, *,
                 error: str | None = None,
                 hotplug: dict[str, tuple[HotplugKey, ...]] | None = None
                 ) -> None:
        self.host = host
        self.generation = generation
        self.summary = summary
        # Memo key: equal for hosts whose summaries decide alike.
        self.state = state
        # Why the host's report could not be used (None: it can).
        self.error = error
        # Instances' hot-plugged devices here, to re-request on a move.
        self.hotplug = hotplug


class Memo:
    """Decisions per (state, request), bounded; states interned to ints."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        # Keyed by a digest of the state: a few bytes per distinct state.
        self.states: dict[bytes, int] = {}
        self.decisions: dict[tuple[int, int], Decision] = {}
        self.exact_states: weakref.WeakKeyDictionary[
            pool_walk.Snapshot, int] = weakref.WeakKeyDictionary()
        self._ids = itertools.count(1)

    def state_of(self, summary: core_summary.Summary) -> int:
        if summary.exact is not None:
            # Decides on its devices: shared with the hosts that share
            # its snapshot (the same model in the same state).
            found = self.exact_states.get(summary.exact)
            if found is None:
                found = self.exact_states[summary.exact] = -next(self._ids)
            return found
        index = {s: n for n, s in enumerate(summary.slots)}
        addresses: dict[str, int] = {}
        key = (tuple(
            (id(s.sig), s.numa_node,
             addresses.setdefault(s.address, len(addresses)), s.free,
             tuple(index[d] for d in s.dependents))
            for s in summary.slots), tuple(sorted(summary.sockets.items(),
                                                  key=str)))
        digest = hashlib.blake2b(repr(key).encode(),
                                 digest_size=16).digest()
        found = self.states.get(digest)
        if found is None:
            if len(self.states) > self.size:
                self.states.clear()
                self.decisions.clear()
            found = self.states[digest] = next(self._ids)
        return found

    def decide(self, host: HostSummary, token: int,
               requests: request_mod.RequestSet,
               cells: Sequence[int] | None,
               cell_count: int | None) -> Decision:
        key = (host.state, token)
        found = self.decisions.get(key)
        if found is None:
            if len(self.decisions) > self.size:
                self.decisions.clear()
            assert host.summary is not None
            found = self.decisions[key] = decide(
                host.host, host.summary, requests, cells, cell_count)
        return found


def decide(host: str, summary: core_summary.Summary,
           requests: request_mod.RequestSet, cells: Sequence[int] | None,
           cell_count: int | None) -> Decision:
    """Fit ``requests`` on ``summary``; the figures of the weigher too."""
    free = summary.total_free
    if requests.empty:
        return Decision(True, host=host, free_before=free, free_after=free)
    options: list[Sequence[int] | None] = [cells]
    if cells is None and cell_count:
        # The guest's cells are not pinned to host cells yet: any
        # combination of host cells will do, as in nova's NUMA fitting.
        options = [list(c) for c in itertools.combinations(
            sorted(summary.sockets), cell_count)] or [None]
    for option in options:
        # One pass decides and says what it takes, for the weigher.
        taken = summary.fit_slots(requests, option)
        if taken is not None:
            return _figures(host, summary, taken, option)
    return _why(host, summary, requests, options[0])


def _figures(host: str, summary: core_summary.Summary,
             taken: tuple[dict[core_summary.Slot, int],
                          set[core_summary.Slot]],
             cells: Sequence[int] | None) -> Decision:
    """Free devices left, whole PFs broken and NUMA locality of a fit.

    From what the core's decision took: it ranks hosts and never decides
    one.
    """
    used, blocked = taken
    wanted = set(cells or ())
    vf = pools_mod.TYPE_VF
    # The first VF taken from a PF that was whole breaks that PF.
    broken = sum(1 for slot in used
                 if slot.sig.dev_type == vf and slot.dependents)
    local = bool(cells) and all(slot.numa_node in wanted for slot in used)
    lost = sum(s.free for s in blocked if s not in used)
    return Decision(True, host=host, free_before=summary.total_free,
                    free_after=max(summary.total_free - sum(used.values())
                                   - lost, 0),
                    broken_pfs=broken, local=local)


def _why(host: str, summary: core_summary.Summary,
         requests: request_mod.RequestSet,
         cells: Sequence[int] | None) -> Decision:
    """A one-line reason from the summary (the CLI's explain reads the
    report for the device-level answer)."""
    for request in requests.requests + requests.headroom:
        wanted = explain.describe_request(request)
        match = matching.matcher(request)
        usable = [s for s in summary.slots if match.usable(s.sig)]
        total = sum(s.free for s in usable)
        prefix = '%s needs %s' % (host, wanted)
        if not usable:
            return Decision(False, explain.NO_MATCH, '%s: no free device on '
                            'the host matches' % prefix, host)
        if total < request.count:
            return Decision(False, explain.INSUFFICIENT, '%s: %d usable '
                            'free' % (prefix, total), host)
        if cells:
            near = sum(s.free for s in usable if s.numa_node in cells)
            if near < request.count:
                return Decision(False, explain.NUMA, '%s with numa_policy '
                                '%s on NUMA node(s) %s: %d free there, %d '
                                'in all' % (prefix, request.numa_policy,
                                            ','.join(map(str, cells)),
                                            near, total), host)
        if request.anti_affinity:
            parents = {s.address for s in usable
                       if s.sig.dev_type == pools_mod.TYPE_VF}
            if len(parents) < request.count:
                return Decision(False, explain.ANTI_AFFINITY, '%s from '
                                'distinct PFs: %d PF(s) have a free VF' % (
                                    prefix, len(parents)), host)
    return Decision(False, explain.INSUFFICIENT, '%s needs %s: not enough '
                    'free devices for all of it together (%d free)' % (
                        host, requests.describe(), summary.total_free),
                    host)


def summarise(report: report_mod.HostReport, memo: Memo,
              pools: pools_mod.HostPools | None = None
              ) -> tuple[HostSummary, set[str]]:
    """The compact summary of ``report`` (the report itself is dropped),
    and the instances holding devices there. ``pools``: the report's,
    when the caller has parsed it already."""
    if pools is None:
        pools = pools_mod.HostPools.from_report(report)
    summary = core_summary.Summary(pools)
    hotplug: dict[str, list[HotplugKey]] = {}
    owners = set()
    for dev in report.devices:
        if dev.owner and dev.status in report_mod.IN_USE:
            owners.add(dev.owner)
            if dev.source == request_mod.SOURCE_HOTPLUG:
                hotplug.setdefault(dev.owner, []).append(
                    (dev.vendor_id, dev.product_id, dev.dev_type,
                     dev.resource_class))
    return HostSummary(
        report.host, report.generation, summary, memo.state_of(summary),
        hotplug={k: tuple(v) for k, v in hotplug.items()} or None), owners


def broken(host: str, generation: int, reason: str) -> HostSummary:
    """The summary of a host whose report cannot be used."""
    return HostSummary(host, generation, None, error=reason)
