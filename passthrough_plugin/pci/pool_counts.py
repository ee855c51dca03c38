"""Compact per-host summaries: fit decisions from pool counts alone.

A scheduler keeps one summary per host (well under 2 KiB for a host of
4 PFs x 64 VFs) instead of every device. The decision is the same as
:meth:`HostPools.fits` because, when every free device stands alone in its
IOMMU group, a device-level fit only ever depends on how many devices of a
pool are free and on which PF pools and VF pools share a PF. Hosts with
free devices in shared IOMMU groups decide device by device, on a frozen
snapshot of their free devices (``exact``, :mod:`pool_walk`) that the
hosts of one model in the same state share.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

from passthrough_plugin.pci import matching
from passthrough_plugin.pci import pool_walk
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod

TYPE_PF = pools_mod.TYPE_PF
TYPE_VF = pools_mod.TYPE_VF
K = TypeVar('K')
V = TypeVar('V')
SHARED_LIMIT = 1024


_CELL_SETS: dict[tuple[int, ...], frozenset[int]] = {}
# A snapshot's slots, total and shape: worked out once per snapshot.
_EXACT_SLOTS: weakref.WeakKeyDictionary[
    pool_walk.Snapshot, tuple[tuple[Slot, ...], int, int]] = \
    weakref.WeakKeyDictionary()
# Hosts' NUMA sockets, one dict per distinct content (read-only).
_SOCKETS: dict[tuple[tuple[int, int | None], ...],
               dict[int, int | None]] = {}
_SHAPES: dict[tuple[matching.Signature, ...], int] = {}
# (id(matcher), shape) -> (matcher, indices of the slots it may use); the
# matcher is kept and compared so that a reused id never hits.
_USABLE: dict[tuple[int, int],
              tuple[matching.Matcher, tuple[int, ...]]] = {}


def _shared(table: dict[K, V], key: K, make: Callable[[K], V]) -> V:
    """``make(key)``, one per distinct ``key`` for the hosts that have the
    same (read-only after); ``table`` is emptied when it outgrows
    SHARED_LIMIT (hosts keep theirs, later hosts make new ones)."""
    found = table.get(key)
    if found is None:
        if len(table) > SHARED_LIMIT:
            table.clear()
        found = table[key] = make(key)
    return found


@dataclasses.dataclass(frozen=True)
class PoolFacts:
    """What a pool-level source (Placement) says of one pool of a host."""

    vendor_id: str
    product_id: str
    dev_type: str
    address: str
    free: int
    total: int
    numa_node: int | None = None
    resource_class: str = ''
    traits: frozenset[str] = frozenset()
    # Tags that split pools, e.g. physical_network (not resource_class).
    pool_tags: dict[str, str] = dataclasses.field(default_factory=dict)
    # A [hotplug] device_spec pool: hotplug requests and headroom only.
    hotplug_pool: bool = False


class Slot:
    """One pool of a summary: its signature, NUMA node and free count."""

    __slots__ = ('sig', 'numa_node', 'address', 'free', 'dependents')

    def __init__(self, sig: matching.Signature, numa_node: int | None,
                 address: str, free: int) -> None:
        self.sig = sig
        self.numa_node = numa_node
        self.address = address
        self.free = free
        # Slots that become unusable once this one hands out a device:
        # the PF pool of a VF pool, the VF pools of a PF pool.
        self.dependents: tuple[Slot, ...] = ()


class Summary:
    """What a scheduler needs of a host to decide whether requests fit."""

    __slots__ = ('host', 'generation', 'slots', 'sockets', 'exact',
                 'total_free', 'pf_with_vfs_in_use', 'shape', '__weakref__')
    slots: tuple[Slot, ...]
    sockets: dict[int, int | None]
    exact: pool_walk.Snapshot | None
    total_free: int
    shape: int

    def __init__(self, host_pools: pools_mod.HostPools) -> None:
        self.host = host_pools.host
        self.generation = host_pools.report.generation
        groups, group_of = host_pools.groups, host_pools.group_of
        complex_groups = any(
            len(groups[group_of[i]]) > 1
            for pool in host_pools.pools for i in pool.free)
        # PFs that serve VFs already: what the "pack" strategy fills first.
        self.pf_with_vfs_in_use = sum(
            1 for p in host_pools.pools
            if p.sig.dev_type == TYPE_VF and len(p.free) < len(p.members))
        if complex_groups:
            # Shared IOMMU groups need the device-level answer: on the
            # host's frozen free devices, shared with the hosts in the
            # same state (never the host's devices themselves).
            exact = self.exact = pool_walk.snapshot(host_pools)
            self.sockets = exact.sockets
            known = _EXACT_SLOTS.get(exact)
            if known is None:
                self._link([Slot(p.sig, p.numa_node, p.address,
                                 len(p.free)) for p in exact.pools])
                _EXACT_SLOTS[exact] = (self.slots, self.total_free,
                                       self.shape)
            else:
                self.slots, self.total_free, self.shape = known
            return
        self.exact = None
        self.sockets = _shared(_SOCKETS, tuple(host_pools.sockets.items()),
                               dict)
        self._link([Slot(p.sig, p.numa_node, p.address, len(p.free))
                    for p in host_pools.pools if p.free])

    @classmethod
    def from_pools(cls, host: str, generation: int,
                   pools: Sequence[PoolFacts],
                   sockets: dict[int, int | None] | None = None
                   ) -> Summary:
        """A summary from pool-level facts, e.g. Placement providers.

        Each pool is what one provider holds (a PF's VFs, a PF, a device);
        IOMMU viability must already be folded into ``free``.
        """
        self = cls.__new__(cls)
        self.host = host
        self.generation = generation
        self.sockets = dict(sockets or {})
        self.exact = None
        slots = []
        for facts in pools:
            if facts.free <= 0:
                continue
            sig = matching.signature(
                int(facts.vendor_id, 16), int(facts.product_id, 16),
                facts.dev_type, tuple(sorted(facts.pool_tags.items())),
                facts.resource_class, frozenset(facts.traits),
                hotplug_pool=facts.hotplug_pool)
            slots.append(Slot(sig, facts.numa_node, facts.address,
                              facts.free))
        # nova's pool order, as HostPools has it.
        slots.sort(key=lambda slot: slot.sig.order)
        self._link(slots)
        self.pf_with_vfs_in_use = sum(
            1 for f in pools if f.dev_type == TYPE_VF and f.free < f.total)
        return self

    def _link(self, slots: list[Slot]) -> None:
        by_pf: dict[str, list[Slot]] = {}
        for slot in slots:
            if slot.sig.dev_type in (TYPE_PF, TYPE_VF):
                by_pf.setdefault(slot.address, []).append(slot)
        for slot in slots:
            if slot.sig.dev_type == TYPE_VF:
                slot.dependents = tuple(
                    s for s in by_pf.get(slot.address, ())
                    if s.sig.dev_type == TYPE_PF)
            elif slot.sig.dev_type == TYPE_PF:
                slot.dependents = tuple(
                    s for s in by_pf.get(slot.address, ())
                    if s.sig.dev_type == TYPE_VF)
        self.slots = tuple(slots)
        self.total_free = sum(s.free for s in slots)
        # The sequence of signatures, as a small int: hosts of one kind
        # share it, and a request's usable slots are memoised per shape.
        sigs = tuple(s.sig for s in slots)
        shape = _SHAPES.get(sigs)
        if shape is None:
            shape = _SHAPES[sigs] = len(_SHAPES)
        self.shape = shape

    def fits(self, requests: request_mod.RequestSet,
             numa_cells: Sequence[int] | None = None) -> bool:
        """Whether ``requests`` fit: the decision of HostPools.fit."""
        if requests.empty:
            return True
        if self.exact is not None:
            return self.exact.fits(requests, numa_cells)
        return self._walk(requests, numa_cells, spare=False) is not None

    def fit_slots(self, requests: request_mod.RequestSet,
                  numa_cells: Sequence[int] | None = None
                  ) -> tuple[dict[Slot, int], set[Slot]] | None:
        """The decision of :meth:`fits` and what the requests take.

        :returns: None if they do not fit, else (devices taken per slot,
            slots made unusable: the PF of a VF taken, the VFs of a PF),
            headroom not included. For ranking hosts in the same pass.
        """
        used: dict[Slot, int] = {}
        blocked: set[Slot] = set()
        if requests.empty:
            return used, blocked
        if self.exact is not None:
            found = self.exact.fit_indices(requests, numa_cells)
            if found is None:
                return None
            pool_of = self.exact.pool_of
            index = {(s.sig, s.numa_node, s.address): s for s in self.slots}
            for group in (*found[0], found[1]):
                for i in group:
                    pool = pool_of[i]
                    slot = index.get((pool.sig, pool.numa_node,
                                      pool.address))
                    if slot is not None:
                        used[slot] = used.get(slot, 0) + 1
                        blocked.update(slot.dependents)
            return used, blocked
        return self._walk(requests, numa_cells, spare=True)

    def _walk(self, requests: request_mod.RequestSet,
              cells: Sequence[int] | None, spare: bool
              ) -> tuple[dict[Slot, int], set[Slot]] | None:
        """Apply the requests, then check the headroom after them.

        ``spare``: check the headroom on a copy, so that what is returned
        is what the requests alone take.
        """
        used: dict[Slot, int] = {}
        blocked: set[Slot] = set()
        for request in requests.requests:
            if not self._apply(request, cells, used, blocked):
                return None
        if requests.headroom:
            room_used, room_blocked = ((dict(used), set(blocked)) if spare
                                       else (used, blocked))
            for request in requests.headroom:
                if not self._apply(request, cells, room_used, room_blocked):
                    return None
        return used, blocked

    def choose(self, requests: request_mod.RequestSet,
               numa_cells: Sequence[int] | None = None
               ) -> list[dict[tuple[str, str], int]] | None:
        """The pools each request takes, or None when they do not fit.

        One dict per request: (pool address, resource class) -> count. A
        pool-level store (Placement) turns it into allocations.
        """
        if self.exact is not None:
            found = self.exact.fit_indices(requests, numa_cells)
            if found is None:
                return None
            pool_of = self.exact.pool_of
            chosen = []
            for group in found[0]:
                counts: dict[tuple[str, str], int] = {}
                for i in group:
                    pool = pool_of[i]
                    key = (pool.address, pool.sig.resource_class)
                    counts[key] = counts.get(key, 0) + 1
                chosen.append(counts)
            return chosen
        used: dict[Slot, int] = {}
        blocked: set[Slot] = set()
        chosen = []
        for request in requests.requests:
            before = dict(used)
            if not self._apply(request, numa_cells, used, blocked):
                return None
            counts = {}
            for slot, count in used.items():
                taken = count - before.get(slot, 0)
                if taken:
                    key = (slot.address, slot.sig.resource_class)
                    counts[key] = counts.get(key, 0) + taken
            chosen.append(counts)
        for request in requests.headroom:
            if not self._apply(request, numa_cells, used, blocked):
                return None
        return chosen

    def _apply(self, request: request_mod.DeviceRequest,
               cells: Sequence[int] | None, used: dict[Slot, int],
               blocked: set[Slot]) -> bool:
        match = matching.matcher(request)
        need = request.count
        if need <= 0:
            return True
        if not used and not blocked:
            # The common case: one request on an untouched summary.
            if cells:
                spec = match.spec
                slots = [s for s in self.slots if spec(s.sig)]
                if sum(s.free for s in slots) < need:
                    return False
                wanted = _shared(_CELL_SETS, tuple(cells), frozenset)
                strict = [s for s in slots if s.numa_node in wanted]
                if (request.numa_policy == 'required'
                        or sum(s.free for s in strict) >= need):
                    slots = strict
                else:
                    slots = matching.numa_filter(
                        slots, {s: s.free for s in slots}, request, cells,
                        self.sockets)
                usable = match.usable
                slots = [s for s in slots if usable(s.sig)]
            else:
                key = (id(match), self.shape)
                entry = _USABLE.get(key)
                if entry is not None and entry[0] is match:
                    picked = entry[1]
                else:
                    if len(_USABLE) > 65536:
                        _USABLE.clear()
                    usable = match.usable
                    picked = tuple(i for i, s in enumerate(self.slots)
                                   if usable(s.sig))
                    _USABLE[key] = (match, picked)
                all_slots = self.slots
                slots = [all_slots[i] for i in picked]
            if not request.anti_affinity:
                if sum(s.free for s in slots) < need:
                    return False
            avail = {s: s.free for s in slots}
        else:
            def left(slot: Slot) -> int:
                return 0 if slot in blocked else slot.free - used.get(
                    slot, 0)
            found = matching.pools_for(self.slots, left, match, request,
                                       cells, self.sockets)
            if found is None:
                return False
            slots = found
            avail = {s: left(s) for s in slots}
        anti = request.anti_affinity
        if anti:
            total = len({s.address for s, n in avail.items()
                         if n > 0 and s.sig.dev_type == TYPE_VF}) + sum(
                n for s, n in avail.items() if s.sig.dev_type != TYPE_VF)
            if total < need:
                return False
        parents: set[str] = set()
        # Greedy consumption in pool order, as nova and HostPools do.
        for slot in slots:
            have = avail[slot]
            if have <= 0:
                continue
            take = min(have, need)
            if anti and slot.sig.dev_type == TYPE_VF:
                if slot.address in parents:
                    continue
                parents.add(slot.address)
                take = 1
            used[slot] = used.get(slot, 0) + take
            blocked.update(slot.dependents)
            need -= take
            if not need:
                return True
        return False
