"""Per-host device pools and the fit / consume / release state machine.

Devices are grouped into pools as nova groups them (vendor, product, type,
NUMA node, tags and the PF address), in nova's pool order, and requests are
applied with nova's filter chain and greedy consumption, so on nova's
feature set the decisions are nova's. On top of that:

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
from typing import Protocol, TypeVar

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

TYPE_PF = alias_mod.TYPE_PF
TYPE_VF = alias_mod.TYPE_VF


class Signature:
    """The properties of a pool that requests match on, interned.

    Interning makes a signature an identity-hashed key, so a request's
    match results are memoised per signature across all hosts.
    """

    __slots__ = ('vendor_id', 'product_id', 'dev_type', 'pool_tags',
                 'resource_class', 'traits', 'remote_managed',
                 'live_migratable', 'order', '__weakref__')

    def __init__(self, vendor_id: int, product_id: int, dev_type: str,
                 pool_tags: tuple[tuple[str, str], ...],
                 resource_class: str, traits: frozenset[str]) -> None:
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.dev_type = dev_type
        self.pool_tags = pool_tags
        self.resource_class = resource_class
        self.traits = traits
        tags = dict(pool_tags)
        self.remote_managed = bool(device_spec.parse_bool(
            tags.get('remote_managed', 'false')))
        self.live_migratable = tags.get('live_migratable')
        # nova sorts pools by the number of keys in the pool dict; VF and PF
        # pools get an implicit remote_managed key.
        self.order = len(pool_tags) + (
            1 if dev_type in (TYPE_PF, TYPE_VF)
            and 'remote_managed' not in tags else 0)


_SIGNATURES: dict[tuple[object, ...], Signature] = {}


def signature(vendor_id: int, product_id: int, dev_type: str,
              pool_tags: tuple[tuple[str, str], ...], resource_class: str,
              traits: frozenset[str]) -> Signature:
    key = (vendor_id, product_id, dev_type, pool_tags, resource_class,
           traits)
    sig = _SIGNATURES.get(key)
    if sig is None:
        sig = _SIGNATURES[key] = Signature(
            vendor_id, product_id, dev_type, pool_tags, resource_class,
            traits)
    return sig


def spec_matches(spec: alias_mod.AliasSpec, sig: Signature) -> bool:
    """nova's pci_device_prop_match of one alias spec, plus RC and traits."""
    return ((spec.vendor_id is None or spec.vendor_id == sig.vendor_id)
            and (spec.product_id is None
                 or spec.product_id == sig.product_id)
            and (spec.dev_type is None or spec.dev_type == sig.dev_type)
            and (spec.live_migratable is None
                 or spec.live_migratable == sig.live_migratable)
            and (spec.resource_class is None
                 or spec.resource_class == sig.resource_class)
            and spec.traits <= sig.traits)


class Matcher:
    """A request's match tests, memoised per signature."""

    __slots__ = ('request', 'spec_memo', 'usable_memo')

    def __init__(self, request: request_mod.DeviceRequest) -> None:
        self.request = request
        self.spec_memo: dict[Signature, bool] = {}
        self.usable_memo: dict[Signature, bool] = {}

    def spec(self, sig: Signature) -> bool:
        hit = self.spec_memo.get(sig)
        if hit is None:
            hit = self.spec_memo[sig] = any(
                spec_matches(s, sig) for s in self.request.specs)
        return hit

    def usable(self, sig: Signature) -> bool:
        """Spec match and nova's later filters (PFs, remote-managed, LM)."""
        hit = self.usable_memo.get(sig)
        if hit is None:
            hit = self.usable_memo[sig] = self._usable(sig)
        return hit

    def _usable(self, sig: Signature) -> bool:
        if not self.spec(sig):
            return False
        request = self.request
        if sig.dev_type == TYPE_PF and not request.wants_pf:
            return False
        if sig.remote_managed:
            return False
        lm = [s.live_migratable for s in request.specs]
        if all(v == 'true' for v in lm):
            return sig.live_migratable == 'true'
        if all(v == 'false' for v in lm):
            return sig.live_migratable == 'false'
        return True


class _PoolLike(Protocol):
    @property
    def numa_node(self) -> int | None: ...


_P = TypeVar('_P', bound=_PoolLike)

_MATCHERS: dict[request_mod.DeviceRequest, Matcher] = {}


# id(request) -> (request, matcher); holding the request keeps its id from
# being reused while the entry lives.
_BY_ID: dict[int, tuple[request_mod.DeviceRequest, Matcher]] = {}


def matcher(request: request_mod.DeviceRequest) -> Matcher:
    """The memoising matcher of ``request``.

    Looked up by identity first: a scheduler asks with the same request
    object on every host, and hashing a frozen request costs more than the
    rest of a host's decision.
    """
    entry = _BY_ID.get(id(request))
    if entry is not None and entry[0] is request:
        return entry[1]
    found = _MATCHERS.get(request)
    if found is None:
        found = _MATCHERS[request] = Matcher(request)
    if len(_BY_ID) > 4096:
        _BY_ID.clear()
        _MATCHERS.clear()
        _MATCHERS[request] = found
    _BY_ID[id(request)] = (request, found)
    return found


def numa_filter(pools: list[_P], counts: dict[_P, int],
                request: request_mod.DeviceRequest, cells: Sequence[int],
                sockets: dict[int, int | None]) -> list[_P]:
    """nova's NUMA policy cascade (required, socket, legacy, preferred)."""
    policy = request.numa_policy
    wanted: set[int | None] = set(cells)
    strict = [p for p in pools if p.numa_node in wanted]
    if policy == 'required' or sum(
            counts[p] for p in strict) >= request.count:
        return strict
    if policy == 'socket':
        if not sockets or any(s is None for s in sockets.values()):
            return []
        chosen = {sockets[c] for c in cells if c in sockets}
        nodes = {n for n, s in sockets.items() if s in chosen}
        return [p for p in pools if p.numa_node in nodes]
    wanted.add(None)
    legacy = [p for p in pools if p.numa_node in wanted]
    if policy == 'legacy' or sum(
            counts[p] for p in legacy) >= request.count:
        return legacy
    return sorted(pools, key=lambda p: p.numa_node not in wanted)


class Pool:
    """Devices of one signature, NUMA node and PF (or own) address."""

    __slots__ = ('sig', 'numa_node', 'address', 'members', 'free')

    def __init__(self, sig: Signature, numa_node: int | None,
                 address: str) -> None:
        self.sig = sig
        self.numa_node = numa_node
        self.address = address
        self.members: list[int] = []
        self.free: list[int] = []


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


class HostPools:
    """The pools of one host, built from its HostReport."""

    __slots__ = ('host', 'report', 'devices', 'pools', 'by_address',
                 'parent', 'children', 'group_of', 'groups', 'sockets',
                 'owners', 'state', 'iommu_enabled', 'blocked_groups',
                 'pool_of')

    def __init__(self, report: report_mod.HostReport) -> None:
        self.host = report.host
        self.report = report
        self.devices = report.devices
        self.iommu_enabled = report.iommu.enabled
        self.sockets = {c.id: c.socket for c in report.numa_cells}
        self.by_address = {d.address: i for i, d in enumerate(self.devices)}
        n = len(self.devices)
        self.parent: list[int] = [-1] * n
        self.children: dict[int, list[int]] = {}
        self.group_of: list[int] = [0] * n
        self.groups: dict[int, list[int]] = {}
        self.blocked_groups = {
            g for g, members in report.iommu.foreign_members.items()
            if members}
        pools: dict[tuple[object, ...], Pool] = {}
        for i, dev in enumerate(self.devices):
            parent = self.by_address.get(dev.parent_address or '', -1)
            self.parent[i] = parent
            if parent >= 0:
                self.children.setdefault(parent, []).append(i)
            # Devices with no IOMMU group stand alone (negative keys).
            group = dev.iommu_group if dev.iommu_group is not None \
                else -1 - i
            self.group_of[i] = group
            self.groups.setdefault(group, []).append(i)
            try:
                vendor = int(dev.vendor_id, 16)
                product = int(dev.product_id, 16)
            except ValueError:
                raise exception.InvalidHostReport(
                    host=report.host, path='$.devices[%d]' % i,
                    reason='vendor_id/product_id are not hex') from None
            sig = signature(
                vendor, product, dev.dev_type,
                tuple(sorted((k, v) for k, v in dev.tags.items()
                             if k not in device_spec.PLACEMENT_TAGS)),
                dev.resource_class, frozenset(dev.traits))
            pool_address = dev.parent_address or dev.address
            key = (sig, dev.numa_node, pool_address)
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = Pool(sig, dev.numa_node, pool_address)
            pool.members.append(i)
        # nova's order: by number of pool keys, then first appearance.
        self.pools = sorted(pools.values(), key=lambda p: p.sig.order)
        self.pool_of: list[Pool] = [self.pools[0]] * n if n else []
        for pool in self.pools:
            for i in pool.members:
                self.pool_of[i] = pool
        self.owners: dict[str, list[tuple[int, str | None]]] = {}
        for i, dev in enumerate(self.devices):
            if dev.status in report_mod.IN_USE and dev.owner:
                self.owners.setdefault(dev.owner, []).append(
                    (i, dev.source))
        self.state: list[str | None] = [None] * n
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
        for pool in self.pools:
            pool.free = [i for i in pool.members if state[i] is None]

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
    def _count(pool: Pool, blocked: set[int]) -> int:
        if not blocked:
            return len(pool.free)
        return sum(1 for i in pool.free if i not in blocked)

    # -- fitting ---------------------------------------------------------

    def _apply(self, request: request_mod.DeviceRequest, cells: Cells,
               blocked: set[int]) -> tuple[list[int], list[int]] | None:
        """Apply one request on top of ``blocked``; None if it cannot."""
        match = matcher(request)
        need = request.count
        if need <= 0:
            return [], []
        if cells:
            pools = [p for p in self.pools if match.spec(p.sig)]
            counts = {p: self._count(p, blocked) for p in pools}
            if sum(counts.values()) < need:
                return None
            pools = numa_filter(pools, counts, request, cells,
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
            for i in pool.free:
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
        for i, _source in held:
            dev = self.devices[i]
            dev.status = 'available'
            dev.owner = None
            dev.source = None
        if held:
            self._refresh()
        return [self.devices[i].address for i, _s in held]

    # -- summaries ---------------------------------------------------------

    def free_count(self) -> int:
        return sum(len(p.free) for p in self.pools)

    def held_by(self, consumer: str) -> list[str]:
        return [self.devices[i].address for i, _s in
                self.owners.get(consumer, [])]
