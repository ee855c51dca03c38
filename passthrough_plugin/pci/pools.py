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
from collections.abc import Iterable

from passthrough_plugin import exception
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import matching
from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import pool_order
from passthrough_plugin.pci import pool_walk
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


Cells = pool_walk.Cells


class HostPools(pool_layout.PoolLayout, pool_walk.Walk):
    """The pools of one host, built from its HostReport."""

    __slots__ = ('owners',)

    def __init__(self, report: report_mod.HostReport) -> None:
        super().__init__(report)
        pool_order.restore(self)
        self.owners: dict[str, list[tuple[int, str | None]]] = {}
        in_use = report_mod.IN_USE
        for i, dev in enumerate(self.devices):
            if dev.owner and dev.status in in_use:
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
        """Recompute why each device is (un)assignable, and the free lists.

        One reason per device, the first that holds: in use, not
        available, IOMMU off, its PF or one of its VFs in use, its IOMMU
        group blocked (foreign members, or a PF grouped with its own VFs),
        then a mate in its group that cannot be assigned.
        """
        devices = self.devices
        in_use_codes = report_mod.IN_USE
        state: list[str | None] = [
            explain.IN_USE if dev.status in in_use_codes else None
            if dev.status == 'available' else explain.UNAVAILABLE
            for dev in devices]
        busy = [s is explain.IN_USE for s in state]
        shape = self.skeleton
        if not self.iommu_enabled:
            state = [explain.IOMMU_DISABLED if s is None else s
                     for s in state]
        else:
            # PF/VF dependency: a VF whose PF is in use, a PF with a VF
            # in use.
            parent = self.parent
            for i in shape.linked:
                if busy[parent[i]] and state[i] is None:
                    state[i] = explain.PF_VF
            for up, kids in shape.children.items():
                if state[up] is None and any(busy[c] for c in kids):
                    state[up] = explain.PF_VF
            groups = self.groups
            for group in self.blocked_groups:
                for m in groups.get(group, ()):
                    if state[m] is None:
                        state[m] = explain.IOMMU_GROUP
            # A PF in one group with its own VFs: binding the group to
            # vfio-pci would unbind the PF driver and destroy the VFs.
            for members in shape.pf_vf_groups:
                for m in members:
                    if state[m] is None:
                        state[m] = explain.IOMMU_GROUP
        # A group is assignable only if all its members are.
        for members in shape.multi:
            if any(state[m] is not None for m in members):
                for m in members:
                    if state[m] is None:
                        state[m] = explain.IOMMU_GROUP_MATE
        self.state = state
        # nova's order: by number of pool keys, then when listed.
        self.pools.sort(key=lambda p: (p.sig.order, p.stamp is None,
                                       p.stamp or 0))
        for pool in self.pools:
            own = pool.members
            if len(own) == 1:
                # A device of its own (type-PCI, a PF): queued or not, it
                # is free exactly when it is assignable.
                pool.free = () if state[own[0]] is not None else own
                continue
            free = [i for i in pool.queue if state[i] is None]
            if len(free) < len(pool.members):
                # Assignable devices nova has not pooled (yet) go last.
                usable = [i for i in pool.members if state[i] is None]
                if len(usable) > len(free):
                    queued = set(pool.queue)
                    free.extend([i for i in usable if i not in queued])
            pool.free = free

    # -- fitting (the walk itself is pool_walk.Walk's) -------------------

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
