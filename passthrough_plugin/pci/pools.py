"""Per-host device pools and the fit / consume / release state machine.

Devices are grouped into pools as nova groups them (vendor, product, type,
NUMA node, tags - null ones too -, the PF address and the PF's netdev
name), in nova's history-dependent pool order (pci/pool_order.py), and
requests are applied with nova's filter chain and greedy consumption (the
device that joined a pool last goes first), so on nova's feature set the
decisions and the devices are nova's. On top of that:

* a PF and its VFs are never both in use, within one fit too;
* an IOMMU group is the unit of assignment: a device is assignable only if
  every other member of its group is assignable with it (members that are
  not in the report make the group unusable; the agent leaves PCI bridges
  out of them), and taking one member takes the whole group;
* ``passthrough:vf_anti_affinity`` takes one request's VFs from distinct PFs;
* ``passthrough:hotplug_headroom`` devices must remain free after the fit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from passthrough_plugin import exception
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import matching
from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import pool_order
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

TYPE_PF = matching.TYPE_PF
TYPE_VF = matching.TYPE_VF


@dataclasses.dataclass(frozen=True, slots=True)
class Fit:
    """The answer to "do these requests fit this host?"."""

    ok: bool
    devices: tuple[tuple[str, ...], ...] = ()
    companions: tuple[str, ...] = ()
    reason: str | None = None
    detail: str = ''

    def __bool__(self) -> bool:
        return self.ok

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for group in self.devices for a in group)


Cells = Sequence[int] | None


class HostPools(pool_layout.PoolLayout):
    """The pools of one host, built from its HostReport."""

    __slots__ = ('owners',)

    def __init__(self, report: report_mod.HostReport) -> None:
        super().__init__(report)
        pool_order.restore(self)
        self.owners: dict[str, list[tuple[int, str | None]]] = {}
        for i, dev in enumerate(self.devices):
            if dev.status in report_mod.IN_USE and dev.owner:
                self.owners.setdefault(dev.owner, []).append(
                    (i, dev.source))
        self._refresh()

    @classmethod
    def from_report(cls, report: report_mod.HostReport) -> HostPools:
        return cls(report)

    # -- availability --------------------------------------------------

    def _in_use(self, i: int) -> bool:
        return self.devices[i].status in report_mod.IN_USE

    def _refresh(self) -> None:
        """Recompute why each device is (un)assignable, and the free lists."""
        devices = self.devices
        state: list[str | None] = [None] * len(devices)
        for i, dev in enumerate(devices):
            if dev.status in report_mod.IN_USE:
                state[i] = explain.IN_USE
            elif dev.status != 'available':
                state[i] = explain.UNAVAILABLE
        for i in range(len(devices)):
            if state[i] is not None:
                continue
            if not self.iommu_enabled:
                state[i] = explain.IOMMU_DISABLED
                continue
            parent = self.parent[i]
            if parent >= 0 and self._in_use(parent):
                state[i] = explain.PF_VF
                continue
            if any(self._in_use(c) for c in self.children.get(i, ())):
                state[i] = explain.PF_VF
                continue
            group = self.group_of[i]
            if group in self.blocked_groups:
                state[i] = explain.IOMMU_GROUP
                continue
            # A PF in one group with its own VFs: binding the group to
            # vfio-pci would unbind the PF driver and destroy the VFs.
            members = self.groups[group]
            if len(members) > 1 and any(
                    self.parent[m] >= 0 and self.group_of[self.parent[m]]
                    == group for m in members):
                state[i] = explain.IOMMU_GROUP
                continue
        # A group is assignable only if all its members are.
        for i in range(len(devices)):
            if state[i] is None:
                members = self.groups[self.group_of[i]]
                if len(members) > 1 and any(
                        state[m] is not None and state[m] != explain.
                        IOMMU_GROUP_MATE for m in members if m != i):
                    state[i] = explain.IOMMU_GROUP_MATE
        self.state = state
        # nova's order: by number of pool keys, then when listed.
        self.pools.sort(key=lambda p: (p.sig.order, p.stamp is None,
                                       p.stamp or 0))
        for pool in self.pools:
            pool.free = [i for i in pool.queue if state[i] is None]
            if len(pool.free) < len(pool.members):
                queued = set(pool.queue)
                pool.free.extend(i for i in pool.members
                                 if state[i] is None and i not in queued)

    def _block(self, i: int, blocked: set[int]) -> None:
        """Mark device ``i`` taken or unusable, with its whole group."""
        blocked.update(self.groups[self.group_of[i]])

    def _take(self, i: int, blocked: set[int]) -> list[int]:
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

    # -- fitting ---------------------------------------------------------

    def _apply(self, request: request_mod.DeviceRequest, cells: Cells,
               blocked: set[int]) -> tuple[list[int], list[int]] | None:
        """Apply one request on top of ``blocked``; None if it cannot."""
        match = matching.matcher(request)
        need = request.count
        if need <= 0:
            return [], []
        if cells:
            pools = [p for p in self.pools if match.spec(p.sig)]
            counts = {p: self._count(p, blocked) for p in pools}
            if sum(counts.values()) < need:
                return None
            pools = matching.numa_filter(pools, counts, request, cells,
                                self.sockets)
            pools = [p for p in pools if match.usable(p.sig)]
        else:
            pools = [p for p in self.pools if match.usable(p.sig)]
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
        """The decision of :meth:`fit`, without building the answer."""
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

    def fit(self, requests: request_mod.RequestSet | Iterable[
                request_mod.DeviceRequest],
            numa_cells: Cells = None) -> Fit:
        """Choose devices for ``requests`` or say why they do not fit."""
        if not isinstance(requests, request_mod.RequestSet):
            requests = request_mod.RequestSet(tuple(requests))
        blocked: set[int] = set()
        chosen: list[tuple[str, ...]] = []
        companions: list[str] = []
        for request in requests.requests:
            result = self._apply(request, numa_cells, blocked)
            if result is None:
                reason, detail = explain.why(self, request, numa_cells,
                                             blocked)
                return Fit(False, reason=reason, detail=detail)
            picked, extra = result
            chosen.append(tuple(self.devices[i].address for i in picked))
            companions.extend(self.devices[i].address for i in extra)
        for request in requests.headroom:
            if self._apply(request, numa_cells, blocked) is None:
                _reason, detail = explain.why(self, request, numa_cells,
                                              blocked)
                return Fit(False, reason=explain.HEADROOM,
                           detail='no room left for the hotplug headroom '
                           'of %s: %s' % (request.describe(), detail))
        return Fit(True, tuple(chosen), tuple(companions))

    # -- state changes -----------------------------------------------------

    def consume(self, fit: Fit, consumer: str,
                source: str = request_mod.SOURCE_FLAVOR) -> list[str]:
        """Mark a fit's devices (and companions) claimed by ``consumer``.

        :raises: ClaimFailed when a device is no longer assignable.
        """
        if not fit.ok:
            raise exception.ClaimFailed(
                consumer=consumer, host=self.host,
                reason='the requests do not fit: %s' % fit.detail)
        addresses = list(fit.addresses) + list(fit.companions)
        missing = [a for a in addresses if a not in self.by_address]
        if missing:
            raise exception.ClaimFailed(
                consumer=consumer, host=self.host,
                reason='device %s is not on the host any more (the fit is '
                'older than the report)' % ', '.join(missing))
        indices = [self.by_address[a] for a in addresses]
        self._check_whole(indices, consumer)
        for i in indices:
            if self.state[i] is not None:
                raise exception.ClaimFailed(
                    consumer=consumer, host=self.host,
                    reason='device %s is %s' % (
                        self.devices[i].address,
                        explain.STATE_TEXT[self.state[i] or '']))
        for i in indices:
            dev = self.devices[i]
            dev.status = 'claimed'
            dev.owner = consumer
            dev.source = source
            self.owners.setdefault(consumer, []).append((i, source))
            pool_order.take(self, i)
        pool_order.persist(self)
        self._refresh()
        return addresses

    def _check_whole(self, indices: list[int], consumer: str) -> None:
        """A fit takes whole IOMMU groups, never a PF with one of its VFs.

        A fit computed on another generation of the report may not.

        :raises: ClaimFailed
        """
        taken = set(indices)
        if len(taken) < len(indices):
            twice = sorted({self.devices[i].address for i in indices
                            if indices.count(i) > 1})
            raise exception.ClaimFailed(
                consumer=consumer, host=self.host,
                reason='the fit names %s more than once' % ', '.join(twice))
        for i in indices:
            group = self.group_of[i]
            left = [self.devices[m].address for m in self.groups[group]
                    if m not in taken]
            if left:
                raise exception.ClaimFailed(
                    consumer=consumer, host=self.host,
                    reason='IOMMU group %d also holds %s, which the fit does '
                    'not take' % (group, ', '.join(left)))
            if self.parent[i] in taken:
                raise exception.ClaimFailed(
                    consumer=consumer, host=self.host,
                    reason='the fit takes PF %s together with its VF %s' % (
                        self.devices[self.parent[i]].address,
                        self.devices[i].address))

    def release(self, consumer: str) -> list[str]:
        """Free every device held by ``consumer``; return their addresses."""
        held = self.owners.pop(consumer, [])
        for i in pool_order.release_order(self, [i for i, _s in held]):
            back = pool_order.freed(self, i)
            dev = self.devices[i]
            dev.status = 'available'
            dev.owner = None
            dev.source = None
            for j in back:
                pool_order.add(self, j)
        if held:
            pool_order.persist(self)
            self._refresh()
        return [self.devices[i].address for i, _s in held]

    # -- summaries ---------------------------------------------------------

    def free_count(self) -> int:
        return sum(len(p.free) for p in self.pools)

    def held_by(self, consumer: str) -> list[str]:
        return [self.devices[i].address for i, _s in
                self.owners.get(consumer, [])]
