"""The device-level walk of a fit, and frozen pools that share it.

:class:`Walk` applies requests device by device as nova does (greedy, in
pool order, the device that joined a pool last first), taking whole IOMMU
groups and keeping a PF and its VFs apart. :class:`pools.HostPools` walks
its live pools; a :class:`Snapshot` walks a host's assignable devices
frozen on its shared skeleton, for a scheduler that keeps thousands of
hosts: hosts of one model in the same state share one snapshot.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from passthrough_plugin.pci import matching
from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import request as request_mod

TYPE_VF = matching.TYPE_VF
Cells = Sequence[int] | None
# The snapshots hosts hold, by state; one no host holds any more goes.
_SNAPSHOTS: weakref.WeakValueDictionary[tuple[object, ...], Snapshot] = \
    weakref.WeakValueDictionary()
# The pool of the devices a snapshot has no free pool for: never usable.
NOWHERE = pool_layout.Pool(matching.signature(0, 0, '', (), '', frozenset()),
                           None, '')


class Walk:
    """Fitting requests on pools, PF/VF links and IOMMU groups.

    The class using it has ``pools`` (in nova's order, each with its
    ``free`` devices in join order), ``pool_of`` (per device, its pool:
    :data:`NOWHERE` for a device in no pool with a free device),
    ``sockets`` and
    the skeleton's links ``groups``, ``group_of``, ``parent``,
    ``children``.
    """

    __slots__ = ()
    pools: list[pool_layout.Pool]
    pool_of: list[pool_layout.Pool]
    sockets: dict[int, int | None]
    groups: dict[int, tuple[int, ...]]
    group_of: tuple[int, ...]
    parent: tuple[int, ...]
    children: dict[int, tuple[int, ...]]

    def _block(self, i: int, blocked: set[int]) -> None:
        """Mark device ``i`` taken or unusable, with its whole group."""
        blocked.update(self.groups[self.group_of[i]])

    def _take(self, i: int, blocked: set[int]) -> Sequence[int]:
        """Take device ``i`` (and its group); block its PF or VFs."""
        taken = self.groups[self.group_of[i]]
        for member in taken:
            self._block(member, blocked)
            parent = self.parent[member]
            if parent >= 0:
                self._block(parent, blocked)
            for child in self.children.get(member, ()):
                self._block(child, blocked)
        return taken

    @staticmethod
    def _count(pool: pool_layout.Pool, blocked: set[int]) -> int:
        if not blocked:
            return len(pool.free)
        return sum(1 for i in pool.free if i not in blocked)

    def _apply(self, request: request_mod.DeviceRequest, cells: Cells,
               blocked: set[int]) -> tuple[list[int], list[int]] | None:
        """Apply one request on top of ``blocked``; None if it cannot."""
        match = matching.matcher(request)
        need = request.count
        if need <= 0:
            return [], []
        pools = matching.pools_for(
            self.pools, lambda p: self._count(p, blocked), match, request,
            cells, self.sockets)
        if pools is None:
            return None
        anti = request.anti_affinity
        # Fast check before walking devices: enough free devices at all?
        total = 0
        parents: set[str] = set()
        for pool in pools:
            count = self._count(pool, blocked)
            if anti and pool.sig.dev_type == TYPE_VF:
                if count:
                    parents.add(pool.address)
            else:
                total += count
        if total + len(parents) < need:
            return None
        chosen: list[int] = []
        companions: list[int] = []
        used_parents: set[str] = set()
        usable = set(pools)
        for pool in pools:
            if anti and pool.sig.dev_type == TYPE_VF:
                if pool.address in used_parents:
                    continue
            # nova hands out the device that joined the pool last.
            for i in reversed(pool.free):
                if i in blocked:
                    continue
                for member in self._take(i, blocked):
                    member_pool = self.pool_of[member]
                    if len(chosen) < need and member_pool in usable and (
                            member == i or not anti):
                        chosen.append(member)
                    else:
                        companions.append(member)
                if anti and pool.sig.dev_type == TYPE_VF:
                    used_parents.add(pool.address)
                    break
                if len(chosen) >= need:
                    break
            if len(chosen) >= need:
                return chosen, companions
        return None

    def fits(self, requests: request_mod.RequestSet,
             numa_cells: Cells = None) -> bool:
        """Whether ``requests`` (and their headroom after them) fit."""
        if requests.empty:
            return True
        blocked: set[int] = set()
        for request in requests.requests:
            if self._apply(request, numa_cells, blocked) is None:
                return False
        for request in requests.headroom:
            if self._apply(request, numa_cells, blocked) is None:
                return False
        return True

    def fit_indices(self, requests: request_mod.RequestSet,
                    numa_cells: Cells = None
                    ) -> tuple[list[list[int]], list[int]] | None:
        """The devices each request takes and the companions (IOMMU group
        mates taken along), or None when they do not fit."""
        blocked: set[int] = set()
        chosen: list[list[int]] = []
        companions: list[int] = []
        for request in requests.requests:
            result = self._apply(request, numa_cells, blocked)
            if result is None:
                return None
            chosen.append(result[0])
            companions.extend(result[1])
        for request in requests.headroom:
            if self._apply(request, numa_cells, blocked) is None:
                return None
        return chosen, companions


class Snapshot(Walk):
    """A host's assignable devices frozen on its shared skeleton.

    Only the pools with a free device are kept, in nova's order; a device
    can be taken along (an IOMMU group mate) only if it is free itself, so
    the walk is the live pools' walk. Read-only: shared by the hosts whose
    pools are in the same state.
    """

    __slots__ = ('skeleton', 'pools', 'pool_of', 'sockets', 'groups',
                 'group_of', 'parent', 'children', 'addresses',
                 '__weakref__')

    def __init__(self, shape: pool_layout.Skeleton,
                 frozen: Sequence[tuple[int, tuple[int, ...]]],
                 sockets: dict[int, int | None]) -> None:
        self.skeleton = shape
        self.sockets = sockets
        self.groups = shape.groups
        self.group_of = shape.group_of
        self.parent = shape.parent
        self.children = shape.children
        self.addresses = shape.addresses
        pools = []
        pool_of = [NOWHERE] * len(shape.pool_index)
        for k, free in frozen:
            sig, node, address, members = shape.pool_keys[k]
            pool = pool_layout.Pool(sig, node, address, members)
            pool.free = free
            pools.append(pool)
            for i in members:
                pool_of[i] = pool
        self.pools = pools
        self.pool_of = pool_of


def snapshot(host: pool_layout.PoolLayout) -> Snapshot:
    """The shared snapshot of ``host``'s assignable devices now."""
    shape = host.skeleton
    where = shape.pool_index
    frozen = tuple((where[p.members[0]], tuple(p.free))
                   for p in host.pools if p.free)
    sockets = tuple(sorted(host.sockets.items(), key=str))
    key = (shape, frozen, sockets)
    found = _SNAPSHOTS.get(key)
    if found is None:
        found = _SNAPSHOTS[key] = Snapshot(shape, frozen, dict(sockets))
    return found


def forget() -> None:
    """Drop the shared snapshots (hosts keep theirs; later hosts build
    new ones): what a scheduler starting now would hold, for measuring."""
    _SNAPSHOTS.clear()
