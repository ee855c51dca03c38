"""nova's allocation candidates: keep those that obey the rules, best first.

With PCI in Placement every device nova asks for is its own request group
and nova-compute assigns devices only from the providers of the candidate
nova claims (``allocation_candidates[0]`` of the chosen host). Judging each
candidate against the agent's facts and ordering the survivors by the weigh
strategy makes nova's claim the plugin's choice.

A provider is what nova's pools on ``host_state.pci_stats`` say it is: a
type-PCI or type-PF device (one device, its own address) or a PF whose VFs
it offers (the PF's address). nova-compute picks *which* VF of a PF on its
own, so a VF provider is safe only if nova cannot see more free VFs there
than the agent knows to be assignable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import summary as summary_mod

TYPE_VF = pools_mod.TYPE_VF
REQUIRED = 'required'
LEGACY = 'legacy'
# The hint operators get when nova can see devices it must not assign.
DEVICE_SPEC_HINT = ('list only assignable devices in nova\'s [pci] '
                    'device_spec (passthrough-agent nova-device-spec)')


class Provider:
    """One PCI resource provider as nova's scheduler pools show it."""

    __slots__ = ('rp_uuid', 'address', 'dev_type', 'free', 'numa_node',
                 'vendor_id', 'product_id')

    def __init__(self, rp_uuid: str, address: str, dev_type: str,
                 free: int, numa_node: int | None = None,
                 vendor_id: int | None = None,
                 product_id: int | None = None) -> None:
        self.rp_uuid = rp_uuid
        self.address = address
        self.dev_type = dev_type
        # Devices nova counts free there (after its own claims).
        self.free = free
        self.numa_node = numa_node
        self.vendor_id = vendor_id
        self.product_id = product_id

    def serves(self, request: request_mod.DeviceRequest) -> bool:
        """Could nova hand this provider's devices out for ``request``?"""
        return any((s.vendor_id is None or s.vendor_id == self.vendor_id)
                   and (s.product_id is None or
                        s.product_id == self.product_id)
                   and (s.dev_type is None or s.dev_type == self.dev_type)
                   for s in request.specs)


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


class HostFacts:
    """The agent's facts of one host at one generation, compact.

    Per PF: how many of its VFs are assignable and how many are in use;
    per other device: whether it is assignable (None) or why not. The
    device-level pools are kept only for hosts whose free devices share
    IOMMU groups (taking one device takes others there).
    """

    __slots__ = ('vf_viable', 'vf_busy', 'dev_state', 'pools')

    def __init__(self, pools: pools_mod.HostPools) -> None:
        state = pools.state
        self.vf_viable: dict[str, int] = {}
        self.vf_busy: dict[str, int] = {}
        self.dev_state: dict[str, str | None] = {}
        for i, dev in enumerate(pools.devices):
            if dev.dev_type == TYPE_VF and dev.parent_address:
                pf = dev.parent_address
                self.vf_viable.setdefault(pf, 0)
                self.vf_busy.setdefault(pf, 0)
                if state[i] is None:
                    self.vf_viable[pf] += 1
                elif state[i] == explain.IN_USE:
                    self.vf_busy[pf] += 1
            else:
                self.dev_state[dev.address] = state[i]
        shared = any(len(pools.groups[pools.group_of[i]]) > 1
                     for pool in pools.pools for i in pool.free)
        self.pools = pools if shared else None


class HostView:
    """What one host's candidates are judged on, worked out once."""

    __slots__ = ('host', 'facts', 'pools', 'providers', 'viable', 'in_use',
                 'free_before', 'offered', 'fits')

    def __init__(self, host: str, facts: HostFacts,
                 providers: Mapping[str, Provider],
                 pools: pools_mod.HostPools | None = None) -> None:
        """``pools``: the device-level pools, needed when requests must
        still fit after a candidate (hot-plugged devices, headroom) on a
        host whose facts do not keep them."""
        self.host = host
        self.facts = facts
        self.pools = facts.pools or pools
        self.providers = providers
        # Per VF provider: VFs the agent knows assignable, and VFs in use
        # (the agent's, plus nova's claims the report has not caught up
        # with).
        self.viable: dict[str, int] = {}
        self.in_use: dict[str, int] = {}
        free = 0
        for rp, provider in providers.items():
            if provider.dev_type == TYPE_VF:
                viable = facts.vf_viable.get(provider.address, 0)
                self.viable[rp] = viable
                self.in_use[rp] = facts.vf_busy.get(provider.address, 0) + \
                    max(viable - provider.free, 0)
                free += min(viable, provider.free)
            elif provider.free and provider.address in facts.dev_state and \
                    facts.dev_state[provider.address] is None:
                free += 1
        self.free_before = free
        # VF provider -> the most VFs it was found able to give.
        self.fits: dict[str, int] = {}
        # The devices nova offers (device-level pools only): what a
        # candidate can make others lose.
        self.offered: set[int] = set()
        if self.pools is not None:
            addresses = {p.address for p in providers.values()}
            for i, dev in enumerate(self.pools.devices):
                if dev.address in addresses or (
                        dev.dev_type == TYPE_VF and
                        dev.parent_address in addresses):
                    self.offered.add(i)


Group = tuple[str, request_mod.DeviceRequest]


Key = tuple[tuple[int, str], ...]


def _keyed(groups: Sequence[Group]
           ) -> tuple[list[tuple[str, int]], list[request_mod.DeviceRequest]]:
    """Each group with the index of its request, and the requests."""
    index_of: dict[int, int] = {}
    requests: list[request_mod.DeviceRequest] = []
    keyed = []
    for group_id, request in groups:
        n = index_of.get(id(request))
        if n is None:
            n = index_of[id(request)] = len(requests)
            requests.append(request)
        keyed.append((group_id, n))
    return keyed, requests


def _key(keyed: Sequence[tuple[str, int]],
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
    keyed, requests = _keyed(groups)
    return _judge(view, _key(keyed, mapping), requests, extras,
                  numa_cell_count)


def _judge(view: HostView, key: Key,
           requests: Sequence[request_mod.DeviceRequest],
           extras: Sequence[request_mod.DeviceRequest],
           numa_cell_count: int | None) -> Verdict:
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
    if view.pools is None:
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
    states = view.facts.dev_state
    if provider.address not in states:
        return Verdict(False, explain.NO_MATCH, '%s: %s %s is not in '
                       'the agent\'s report; %s' % (
                           view.host, provider.dev_type, provider.address,
                           DEVICE_SPEC_HINT))
    why = states[provider.address]
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
    fit afterwards."""
    pools = view.pools
    assert pools is not None
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
                return Verdict(False, explain.GROUP, '%s: PF %s has %d '
                               'VF(s) to give once IOMMU groups are taken '
                               'whole, the candidate takes %d' % (
                                   view.host, provider.address, got, count))
            continue
        i = pools.by_address[provider.address]
        if i in blocked:
            return Verdict(False, explain.GROUP, '%s: %s %s is %s' % (
                view.host, provider.dev_type, provider.address,
                explain.STATE_TEXT[explain.TAKEN]))
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


def move_claim_breaks(host: str, groups: Sequence[Group],
                      providers: Sequence[Provider]) -> Verdict | None:
    """What nova 34's move claim (resize, cold migration, evacuation)
    would take.

    That claim rebuilds the PCI requests from the flavor without the
    scheduler's providers and takes, request by request, the first free
    devices of nova's pools in their order. When that breaks
    ``passthrough:vf_anti_affinity`` on this host, say so.
    """
    counts: dict[int, int] = {}
    requests: dict[int, request_mod.DeviceRequest] = {}
    for _group, request in groups:
        counts[id(request)] = counts.get(id(request), 0) + 1
        requests[id(request)] = request
    free = {p.rp_uuid: p.free for p in providers}
    for key, need in counts.items():
        request = requests[key]
        for provider in providers:
            if need <= 0:
                break
            if not provider.serves(request):
                continue
            take = min(need, free[provider.rp_uuid])
            free[provider.rp_uuid] -= take
            need -= take
            if take > 1 and request.anti_affinity and \
                    provider.dev_type == TYPE_VF:
                return Verdict(False, explain.ANTI_AFFINITY, '%s: %s with '
                               'passthrough:vf_anti_affinity: on a resize, '
                               'cold migration or evacuation nova 34 picks '
                               'the devices itself, ignoring the '
                               'scheduler\'s choice, and would take %d VFs '
                               'of PF %s' % (
                                   host, request.describe(), take,
                                   provider.address))
    return None


class Choice:
    """A host's candidates judged: the survivors in order, or why none."""

    __slots__ = ('order', 'first', 'reason', 'detail', 'total')

    def __init__(self, order: list[int], first: Verdict | None,
                 reason: str | None, detail: str, total: int) -> None:
        self.order = order
        self.first = first
        self.reason = reason
        self.detail = detail
        self.total = total

    @property
    def ok(self) -> bool:
        return bool(self.order)


def choose(view: HostView, groups: Sequence[Group],
           mappings: Sequence[Mapping[str, Sequence[str]]],
           strategy: str,
           extras: Sequence[request_mod.DeviceRequest] = (),
           numa_cell_count: int | None = None) -> Choice:
    """Judge every candidate; keep the good ones, best first (ties keep
    Placement's order)."""
    good: list[tuple[tuple[int, int, int], int, Verdict]] = []
    first_bad: Verdict | None = None
    cache: dict[Key, Verdict] = {}
    # Candidates that differ only in which group of a request took which
    # provider are judged once.
    keyed, requests = _keyed(groups)
    single = len(requests) == 1
    group_ids = [g for g, _n in keyed]
    for index, mapping in enumerate(mappings):
        if single:
            # One request (the usual case): its providers, sorted.
            try:
                key = tuple([(0, rp) for rp in sorted(
                    [mapping[g][0] for g in group_ids])])
            except (KeyError, IndexError):
                key = _key(keyed, mapping)
        else:
            key = _key(keyed, mapping)
        verdict = cache.get(key)
        if verdict is None:
            verdict = cache[key] = _judge(view, key, requests, extras,
                                          numa_cell_count)
        if verdict.ok:
            good.append((verdict.key(strategy), index, verdict))
        elif first_bad is None:
            first_bad = verdict
    good.sort(key=lambda item: (item[0], item[1]))
    if not good:
        detail = first_bad.detail if first_bad is not None else \
            '%s: no allocation candidate' % view.host
        if len(mappings) > 1:
            detail = '%s (and every other of its %d allocation candidates ' \
                'breaks a rule)' % (detail, len(mappings))
        return Choice([], None, first_bad.reason if first_bad else
                      explain.INSUFFICIENT, detail, len(mappings))
    return Choice([i for _k, i, _v in good], good[0][2], None, '',
                  len(mappings))


def decision(view: HostView, choice: Choice) -> summary_mod.Decision:
    """The weigher's figures of the candidate nova will claim."""
    if not choice.ok or choice.first is None:
        return summary_mod.Decision(False, choice.reason, choice.detail,
                                    view.host)
    first = choice.first
    return summary_mod.Decision(
        True, host=view.host, free_before=view.free_before,
        free_after=max(view.free_before - first.taken - first.lost, 0),
        broken_pfs=first.broken, local=first.local)
