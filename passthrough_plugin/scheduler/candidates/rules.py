"""One allocation candidate judged against every rule of the plugin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler.candidates.view import DEVICE_SPEC_HINT
from passthrough_plugin.scheduler.candidates.view import Group
from passthrough_plugin.scheduler.candidates.view import HostView
from passthrough_plugin.scheduler.candidates.view import Provider
from passthrough_plugin.scheduler.candidates.view import TYPE_VF

REQUIRED = 'required'
LEGACY = 'legacy'
# A candidate as (request index, provider) pairs, sorted.
Key = tuple[tuple[int, str], ...]


class Verdict:
    """One candidate judged: obeys every rule or why not; its figures."""

    __slots__ = ('ok', 'reason', 'detail', 'broken', 'lost', 'left',
                 'taken', 'local')

    def __init__(self, ok: bool, reason: str | None = None,
                 detail: str = '', *, broken: int = 0, lost: int = 0,
                 left: int = 0, taken: int = 0, local: bool = False
                 ) -> None:
        self.ok = ok
        self.reason = reason
        self.detail = detail
        # PFs whose first VF this candidate takes (whole PFs broken).
        self.broken = broken
        # Other free devices the candidate makes unusable (IOMMU group
        # mates, a PF's VFs, a VF's PF).
        self.lost = lost
        # Free VFs left on the VF providers the candidate takes from.
        self.left = left
        self.taken = taken
        self.local = local

    def key(self, strategy: str) -> tuple[int, int, int]:
        """Sort key, smaller first: pack fills PFs already serving VFs and
        keeps whole PFs and IOMMU groups free; spread does the reverse."""
        if strategy == 'spread':
            return (-self.broken, self.lost, -self.left)
        return (self.broken, self.lost, self.left)


def keyed(groups: Sequence[Group]
          ) -> tuple[list[tuple[str, int]], list[request_mod.DeviceRequest]]:
    """Each group with the index of its request, and the requests."""
    index_of: dict[int, int] = {}
    requests: list[request_mod.DeviceRequest] = []
    found = []
    for group_id, request in groups:
        n = index_of.get(id(request))
        if n is None:
            n = index_of[id(request)] = len(requests)
            requests.append(request)
        found.append((group_id, n))
    return found, requests


def key_of(keyed: Sequence[tuple[str, int]],
           mapping: Mapping[str, Sequence[str]]) -> Key:
    """A candidate as (request index, provider) pairs, sorted: groups of
    one request are interchangeable."""
    return tuple(sorted([(n, mapping[g][0]) for g, n in keyed
                         if mapping.get(g)]))


def judge(view: HostView, groups: Sequence[Group],
          mapping: Mapping[str, Sequence[str]],
          extras: Sequence[request_mod.DeviceRequest] = (),
          numa_cell_count: int | None = None) -> Verdict:
    """Does the candidate with ``mapping`` (group id -> provider uuids)
    obey every rule? ``extras`` must still fit afterwards (hot-plugged
    devices re-requested on a move, ``passthrough:hotplug_headroom``)."""
    keyed_, requests = keyed(groups)
    return judge_key(view, key_of(keyed_, mapping), requests, extras,
                     numa_cell_count)


def judge_key(view: HostView, key: Key,
              requests: Sequence[request_mod.DeviceRequest],
              extras: Sequence[request_mod.DeviceRequest],
              numa_cell_count: int | None) -> Verdict:
    """The candidate ``key`` (see :func:`key_of`) judged."""
    providers = view.providers
    per_rp: dict[str, int] = {}
    for _n, rp in key:
        per_rp[rp] = per_rp.get(rp, 0) + 1
    for n, request in enumerate(requests):
        if request.anti_affinity:
            vf_rps = [rp for m, rp in key if m == n and rp in providers
                      and providers[rp].dev_type == TYPE_VF]
            if len(set(vf_rps)) < len(vf_rps):
                return Verdict(False, explain.ANTI_AFFINITY, '%s: %s with '
                               'passthrough:vf_anti_affinity: the candidate '
                               'takes two VFs of one PF' % (
                                   view.host, request.describe()))
    nodes: dict[int, set[int | None]] = {}
    if numa_cell_count:
        for m, rp in key:
            if rp in providers:
                nodes.setdefault(m, set()).add(providers[rp].numa_node)
        numa = _numa(view.host, requests, nodes, numa_cell_count)
        if numa is not None:
            return numa
    broken = 0
    left = 0
    for rp, count in per_rp.items():
        provider = view.providers.get(rp)
        if provider is None or provider.free < count:
            return Verdict(False, explain.INSUFFICIENT, '%s: provider %s has '
                           '%d free device(s) in nova\'s pools, the '
                           'candidate takes %d' % (
                               view.host, rp, provider.free if provider
                               else 0, count))
        if provider.dev_type == TYPE_VF:
            failed = _vf_provider(view, provider, count) if count > \
                view.fits.get(rp, -1) else None
            if failed is not None:
                return failed
            view.fits[rp] = max(count, view.fits.get(rp, 0))
            if view.in_use[rp] == 0:
                broken += 1
            left += min(view.viable[rp], provider.free) - count
        else:
            failed = _device_provider(view, provider)
            if failed is not None:
                return failed
    if not view.walks:
        # Every free device stands alone in its IOMMU group: the counts
        # above are the whole answer.
        return Verdict(True, broken=broken, left=left,
                       taken=sum(per_rp.values()),
                       local=_local(nodes, numa_cell_count))
    return _walk(view, per_rp, extras, broken, left,
                 _local(nodes, numa_cell_count))


def _vf_provider(view: HostView, provider: Provider, count: int
                 ) -> Verdict | None:
    viable = view.viable[provider.rp_uuid]
    if provider.free > viable:
        # nova may hand out any VF it counts free: one of them is not
        # assignable (IOMMU group, held by the agent, PF in use).
        return Verdict(False, explain.GROUP, '%s: nova counts %d free VF(s) '
                       'on PF %s, the agent knows %d assignable; nova could '
                       'assign one that is not: %s' % (
                           view.host, provider.free, provider.address,
                           viable, DEVICE_SPEC_HINT))
    if viable < count:
        return Verdict(False, explain.INSUFFICIENT, '%s: PF %s has %d '
                       'assignable free VF(s), the candidate takes %d' % (
                           view.host, provider.address, viable, count))
    return None


def _device_provider(view: HostView, provider: Provider) -> Verdict | None:
    known, why = view.facts.device(provider.address)
    if not known:
        return Verdict(False, explain.NO_MATCH, '%s: %s %s is not in '
                       'the agent\'s report; %s' % (
                           view.host, provider.dev_type, provider.address,
                           DEVICE_SPEC_HINT))
    if why is not None:
        return Verdict(False, _reason(why), '%s: %s %s is %s' % (
            view.host, provider.dev_type, provider.address,
            explain.STATE_TEXT[why]))
    return None


def _local(nodes: Mapping[int, set[int | None]],
           cell_count: int | None) -> bool:
    return bool(cell_count) and all(
        len(n) <= (cell_count or 0) for n in nodes.values())


def _walk(view: HostView, per_rp: Mapping[str, int],
          extras: Sequence[request_mod.DeviceRequest], broken: int,
          left: int, local: bool) -> Verdict:
    """The device-level walk: shared IOMMU groups, and what must still
    fit afterwards (``extras``: on the device-level pools the filter read
    for them)."""
    pools = view.pools
    if pools is None:
        return _walk_facts(view, per_rp, broken, left, local)
    state = pools.state
    blocked: set[int] = set()
    taken: set[int] = set()
    for rp, count in per_rp.items():
        provider = view.providers[rp]
        if provider.dev_type == TYPE_VF:
            got = 0
            for i in _vfs_of(pools, provider.address):
                if got < count and state[i] is None and i not in blocked:
                    # One VF takes its IOMMU group: its mates go too.
                    _take(pools, i, blocked)
                    taken.add(i)
                    got += 1
            if got < count:
                return _short(view, provider, got, count)
            continue
        i = pools.by_address[provider.address]
        if i in blocked:
            return _taken(view, provider)
        _take(pools, i, blocked)
        taken.add(i)
    for request in extras:
        if pools._apply(request, None, blocked) is None:
            return Verdict(False, explain.HEADROOM, '%s: no room left for '
                           '%s after the candidate' % (
                               view.host, request.describe()))
    lost = sum(1 for i in blocked if state[i] is None and i not in taken
               and i in view.offered)
    return Verdict(True, broken=broken, lost=lost, left=left,
                   taken=len(taken), local=local)


def _walk_facts(view: HostView, per_rp: Mapping[str, int], broken: int,
                left: int, local: bool) -> Verdict:
    """The walk on the host's compact facts (the same steps as on the
    pools): what taking each device takes is its layout's."""
    facts = view.facts
    shape = facts.layout
    free = facts.free
    take = shape.take_mask
    blocked = taken = 0
    count_taken = 0
    for rp, count in per_rp.items():
        provider = view.providers[rp]
        if provider.dev_type == TYPE_VF:
            got = 0
            for i in shape.vfs.get(provider.address, ()):
                if got < count and free >> i & 1 and not blocked >> i & 1:
                    blocked |= take[i]
                    taken |= 1 << i
                    got += 1
            if got < count:
                return _short(view, provider, got, count)
            count_taken += got
            continue
        i = shape.dev_at[shape.dev_pos[provider.address]]
        if blocked >> i & 1:
            return _taken(view, provider)
        blocked |= take[i]
        taken |= 1 << i
        count_taken += 1
    lost = (blocked & free & view.offered_mask & ~taken).bit_count()
    return Verdict(True, broken=broken, lost=lost, left=left,
                   taken=count_taken, local=local)


def _short(view: HostView, provider: Provider, got: int, count: int
           ) -> Verdict:
    return Verdict(False, explain.GROUP, '%s: PF %s has %d VF(s) to give '
                   'once IOMMU groups are taken whole, the candidate takes '
                   '%d' % (view.host, provider.address, got, count))


def _taken(view: HostView, provider: Provider) -> Verdict:
    return Verdict(False, explain.GROUP, '%s: %s %s is %s' % (
        view.host, provider.dev_type, provider.address,
        explain.STATE_TEXT[explain.TAKEN]))


def _vfs_of(pools: pools_mod.HostPools, pf: str) -> list[int]:
    return [i for i, dev in enumerate(pools.devices)
            if dev.dev_type == TYPE_VF and dev.parent_address == pf]


def _take(pools: pools_mod.HostPools, i: int, blocked: set[int]) -> None:
    """Device ``i`` takes its IOMMU group; its PF and VFs become unusable."""
    for member in pools.groups[pools.group_of[i]]:
        blocked.add(member)
        parent = pools.parent[member]
        if parent >= 0:
            blocked.update(pools.groups[pools.group_of[parent]])
        for child in pools.children.get(member, ()):
            blocked.update(pools.groups[pools.group_of[child]])


def _reason(state: str) -> str:
    if state in (explain.IOMMU_GROUP, explain.IOMMU_GROUP_MATE):
        return explain.GROUP
    if state == explain.IOMMU_DISABLED:
        return explain.NO_IOMMU
    return explain.INSUFFICIENT


def _numa(host: str, requests: Sequence[request_mod.DeviceRequest],
          nodes: Mapping[int, set[int | None]],
          cell_count: int | None) -> Verdict | None:
    """``required`` and ``legacy`` keep a request's devices within as many
    NUMA nodes as the guest has cells (nova's NUMATopologyFilter checks
    which ones)."""
    if not cell_count:
        return None
    for key, request in enumerate(requests):
        policy = request.numa_policy
        found = nodes.get(key, set())
        if policy == REQUIRED and None in found:
            return Verdict(False, explain.NUMA, '%s: %s with numa_policy '
                           'required: the candidate takes a device with no '
                           'NUMA node' % (host, request.describe()))
        if policy in (REQUIRED, LEGACY) and \
                len(found - {None}) > cell_count:
            return Verdict(False, explain.NUMA, '%s: %s with numa_policy %s:'
                           ' the candidate spans %d NUMA nodes, the guest '
                           'has %d cell(s)' % (
                               host, request.describe(), policy,
                               len(found - {None}), cell_count))
    return None
