"""Per-host pool summaries, shared by hosts whose devices are alike.

A host's summary is its name, its report generation and a *shape*: the
report with the addresses taken out (device properties, PF links, IOMMU
group structure, status, NUMA sockets). The fit of a request, and every
figure the weigher uses, is a function of the shape alone, so hosts of one
hardware model in one state share a single :class:`Shape` (one HostPools,
one memo of decisions). That is what keeps the per-host memory small and a
request over thousands of hosts cheap; a host in a state no other host has
simply gets a shape of its own.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

TYPE_PF = 'type-PF'
# The weight terms: NUMA locality dominates the strategy's own figure.
LOCALITY = 1_000_000.0
BROKEN_PF = 1_000.0
# A device of a hot-plugged request: what it was matched on.
HotplugKey = tuple[str, str, str, str]


class Decision:
    """The answer of one shape to one request: fits or why not, and figures."""

    __slots__ = ('ok', 'reason', 'detail', 'host', 'pack', 'spread',
                 'free_before', 'free_after', 'local')

    def __init__(self, ok: bool, reason: str | None = None, detail: str = '',
                 host: str = '', *, free_before: int = 0, free_after: int = 0,
                 broken_pfs: int = 0, local: bool = False) -> None:
        self.ok = ok
        self.reason = reason
        self.detail = detail
        # The host the detail was worded for (a shape's first host).
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
        """The detail worded for ``host`` (decisions are shared by shape)."""
        if self.host and host != self.host and self.detail.startswith(
                self.host):
            return host + self.detail[len(self.host):]
        return self.detail


class Shape:
    """One device state shared by one or more hosts; memoises decisions."""

    __slots__ = ('key', 'pools', 'memo', 'free', 'cells')

    def __init__(self, key: bytes, pools: pools_mod.HostPools) -> None:
        self.key = key
        self.pools = pools
        self.memo: dict[int, Decision] = {}
        self.free = pools.free_count()
        self.cells = sorted(pools.sockets)

    def decide(self, token: int, requests: request_mod.RequestSet,
               cells: Sequence[int] | None, cell_count: int | None
               ) -> Decision:
        """The (memoised) decision for the request known as ``token``."""
        found = self.memo.get(token)
        if found is None:
            if len(self.memo) > 1024:
                self.memo.clear()
            found = self.memo[token] = self._decide(requests, cells,
                                                    cell_count)
        return found

    def _decide(self, requests: request_mod.RequestSet,
                cells: Sequence[int] | None, cell_count: int | None
                ) -> Decision:
        pools = self.pools
        if requests.empty:
            return Decision(True, host=pools.host, free_before=self.free,
                            free_after=self.free)
        candidates: list[Sequence[int] | None] = [cells]
        if cells is None and cell_count:
            # The guest's cells are not pinned to host cells yet: any
            # combination of host cells will do, as nova's NUMA fitting.
            candidates = [
                list(c) for c in itertools.combinations(self.cells,
                                                        cell_count)] or [None]
        first: pools_mod.Fit | None = None
        for option in candidates:
            fit = pools.fit(requests, option)
            if fit.ok:
                return self._figures(fit, option)
            first = first or fit
        assert first is not None
        return Decision(False, first.reason, first.detail, pools.host)

    def _figures(self, fit: pools_mod.Fit,
                 cells: Sequence[int] | None) -> Decision:
        """Free devices after the fit, PFs it breaks, NUMA locality."""
        pools = self.pools
        state = pools.state
        taken = [pools.by_address[a]
                 for a in fit.addresses + fit.companions]
        gone: set[int] = set(taken)
        broken = 0
        for i in taken:
            parent = pools.parent[i]
            if parent >= 0:
                if state[parent] is None and parent not in gone:
                    broken += 1  # a whole PF loses its first VF
                gone.add(parent)
            gone.update(pools.children.get(i, ()))
        free_after = self.free - sum(1 for i in gone if state[i] is None)
        local = bool(cells) and all(
            pools.devices[i].numa_node in set(cells or ())
            for i in taken)
        return Decision(True, host=pools.host, free_before=self.free,
                        free_after=free_after, broken_pfs=broken,
                        local=local)


class HostSummary:
    """What the scheduler keeps of one host between requests."""

    __slots__ = ('host', 'generation', 'shape', 'error', 'hotplug',
                 'owners')

    def __init__(self, host: str, generation: int, shape: Shape | None, *,
                 error: str | None = None,
                 hotplug: dict[str, tuple[HotplugKey, ...]] | None = None,
                 owners: frozenset[str] = frozenset()) -> None:
        self.host = host
        self.generation = generation
        self.shape = shape
        # Why the host's report could not be used (None: it can).
        self.error = error
        # Instances' hot-plugged devices here, to re-request on a move.
        self.hotplug = hotplug
        self.owners = owners


def shape_key(report: report_mod.HostReport) -> bytes:
    """A digest of the report without its addresses (see module doc)."""
    index = {d.address: i for i, d in enumerate(report.devices)}
    groups: dict[int, int] = {}
    rows = []
    for i, dev in enumerate(report.devices):
        group = (-1 - i if dev.iommu_group is None
                 else groups.setdefault(dev.iommu_group, i))
        rows.append((
            dev.vendor_id, dev.product_id, dev.dev_type,
            tuple(sorted(dev.tags.items())), dev.resource_class,
            tuple(sorted(dev.traits)), dev.numa_node,
            index.get(dev.parent_address or '', -1), group, dev.status))
    foreign = sorted(groups[g] for g, members in
                     report.iommu.foreign_members.items()
                     if members and g in groups)
    cells = [(c.id, c.socket) for c in report.numa_cells]
    text = repr((rows, foreign, cells, report.iommu.enabled))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def summarise(report: report_mod.HostReport,
              shapes: dict[bytes, Shape]) -> HostSummary:
    """Summarise ``report``, reusing (or adding to) ``shapes``."""
    key = shape_key(report)
    shape = shapes.get(key)
    if shape is None:
        shape = shapes[key] = Shape(key, pools_mod.HostPools.from_report(
            report))
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
        report.host, report.generation, shape,
        hotplug={k: tuple(v) for k, v in hotplug.items()} or None,
        owners=frozenset(owners))


def broken(host: str, generation: int, reason: str) -> HostSummary:
    """The summary of a host whose report cannot be used."""
    return HostSummary(host, generation, None, error=reason)


NO_SHAPE_REASON = explain.BAD_REPORT
