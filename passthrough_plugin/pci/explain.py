"""Why a request does not fit a host: short reason codes and a sentence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from passthrough_plugin.pci import matching
from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import request as request_mod

# Device states (why a device cannot be handed out now).
IN_USE = 'in_use'
UNAVAILABLE = 'unavailable'
IOMMU_DISABLED = 'iommu_disabled'
PF_VF = 'pf_vf'
IOMMU_GROUP = 'iommu_group'
IOMMU_GROUP_MATE = 'iommu_group_mate'
TAKEN = 'taken'

STATE_TEXT = {
    '': 'free',
    IN_USE: 'in use',
    UNAVAILABLE: 'reported unavailable',
    IOMMU_DISABLED: 'unusable because the host IOMMU is off',
    PF_VF: 'blocked because its PF or a VF of it is in use',
    IOMMU_GROUP: 'in an IOMMU group with devices that cannot be assigned',
    IOMMU_GROUP_MATE: 'in an IOMMU group whose other members are busy',
    TAKEN: 'taken by an earlier request of the same instance',
}

# Reason codes of a failed fit (machine readable).
NO_MATCH = 'no_match'
INSUFFICIENT = 'insufficient'
NUMA = 'numa_affinity'
ANTI_AFFINITY = 'vf_anti_affinity'
HEADROOM = 'hotplug_headroom'
GROUP = 'iommu_group'
NO_IOMMU = 'iommu_disabled'
NO_REPORT = 'no_report'
BAD_REPORT = 'bad_report'
BAD_REQUEST = 'bad_request'
STORE_DOWN = 'store_unavailable'


def describe_request(request: request_mod.DeviceRequest) -> str:
    kinds = []
    for spec in request.specs:
        ids = '%s:%s' % (
            '%04x' % spec.vendor_id if spec.vendor_id is not None else '*',
            '%04x' % spec.product_id if spec.product_id is not None
            else '*')
        if spec.resource_class:
            ids = spec.resource_class if ids == '*:*' else '%s %s' % (
                ids, spec.resource_class)
        if spec.dev_type:
            ids += ' ' + spec.dev_type
        kinds.append(ids)
    return '%d x %s (%s)' % (request.count, request.alias_name,
                             ' or '.join(kinds))


def why(host: pool_layout.PoolLayout, request: request_mod.DeviceRequest,
        cells: Sequence[int] | None, blocked: set[int]) -> tuple[str, str]:
    """Explain why ``request`` cannot be applied on top of ``blocked``."""
    match = matching.matcher(request)
    wanted = describe_request(request)
    prefix = '%s needs %s' % (host.host, wanted)
    spec_pools = [p for p in host.pools if match.spec(p.sig)]
    if not spec_pools:
        return NO_MATCH, '%s: no device on the host matches' % prefix
    usable = [p for p in spec_pools if match.usable(p.sig)]
    if not usable:
        return NO_MATCH, ('%s: only PFs that were not asked for or '
                          'remote-managed devices match' % prefix)
    states: Counter[str] = Counter()
    free_by_node: Counter[int | None] = Counter()
    free_parents: set[str] = set()
    for pool in usable:
        for i in pool.members:
            state = host.state[i] or ''
            if not state and i in blocked:
                state = TAKEN
            states[state] += 1
            if not state:
                free_by_node[pool.numa_node] += 1
                if pool.sig.dev_type == matching.TYPE_VF:
                    free_parents.add(pool.address)
    free = states.pop('', 0)
    parts = ['%d free' % free] + [
        '%d %s' % (n, STATE_TEXT[s]) for s, n in sorted(states.items())]
    blockers = _group_blockers(host, usable)
    if blockers:
        parts.append('the IOMMU group(s) also hold %s' % blockers)
    summary = ', '.join(parts)
    if free < request.count:
        if states.get(IOMMU_DISABLED):
            return NO_IOMMU, '%s: the host IOMMU is off (%s)' % (
                prefix, summary)
        if states.get(IOMMU_GROUP) or states.get(IOMMU_GROUP_MATE):
            code = GROUP if free == 0 else INSUFFICIENT
            return code, '%s: %s' % (prefix, summary)
        return INSUFFICIENT, '%s: %s' % (prefix, summary)
    if request.anti_affinity and len(free_parents) < request.count:
        return ANTI_AFFINITY, (
            '%s from distinct PFs: only %d PF(s) have a free VF (%s)' % (
                prefix, len(free_parents), summary))
    if cells:
        nodes = ', '.join(
            '%s on node %s' % (n, 'unknown' if k is None else k)
            for k, n in sorted(free_by_node.items(),
                               key=lambda kv: (kv[0] is None, kv[0] or 0)))
        return NUMA, ('%s with numa_policy %s on NUMA node(s) %s: free '
                      'devices are %s' % (
                          prefix, request.numa_policy,
                          ','.join(str(c) for c in cells), nodes))
    return INSUFFICIENT, '%s: %s' % (prefix, summary)


def _group_blockers(host: pool_layout.PoolLayout,
                    usable: list[pool_layout.Pool]) -> str:
    """Name what makes the matching devices' IOMMU groups unusable."""
    named: list[str] = []
    for pool in usable:
        for i in pool.members:
            if host.state[i] != IOMMU_GROUP:
                continue
            group = host.group_of[i]
            foreign = host.report.iommu.foreign_members.get(group, ())
            mates = [host.devices[m].address for m in host.groups[group]
                     if m != i]
            for address in (*foreign, *mates):
                if address not in named:
                    named.append(address)
    if len(named) > 3:
        return '%s and %d more' % (', '.join(named[:3]), len(named) - 3)
    return ', '.join(named)
