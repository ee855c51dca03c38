"""nova's scheduler-side PciDeviceStats built from the same pools as ours."""

from __future__ import annotations

import functools
from typing import Any

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

@functools.cache
def _objects() -> Any:
    from nova import objects
    objects.register_all()
    return objects


def pool_dicts(host_pools: pools_mod.HostPools) -> list[dict[str, Any]]:
    """Our pools as nova's pool dicts (what the compute node reports)."""
    out = []
    for pool in host_pools.pools:
        if not pool.free:
            continue
        entry: dict[str, Any] = {
            'vendor_id': '%04x' % pool.sig.vendor_id,
            'product_id': '%04x' % pool.sig.product_id,
            'numa_node': pool.numa_node,
            'dev_type': pool.sig.dev_type,
            'address': pool.address,
        }
        entry.update(dict(pool.sig.pool_tags))
        if pool.sig.dev_type in (pools_mod.TYPE_PF, pools_mod.TYPE_VF):
            entry.setdefault('remote_managed', 'false')
        entry['count'] = len(pool.free)
        out.append(entry)
    return out


def stats(host_pools: pools_mod.HostPools) -> Any:
    """A nova PciDeviceStats holding the host's free pools."""
    objects = _objects()
    from nova.pci import stats as nova_stats
    from nova.pci import whitelist
    pools = objects.PciDevicePoolList(objects=[
        objects.PciDevicePool.from_dict(d) for d in pool_dicts(host_pools)])
    topology = numa_topology(host_pools.report)
    return nova_stats.PciDeviceStats(topology, stats=pools,
                                     dev_filter=whitelist.Whitelist([]))


def numa_topology(report: report_mod.HostReport) -> Any:
    objects = _objects()
    return objects.NUMATopology(cells=[
        objects.NUMACell(id=c.id, socket=c.socket, cpuset=set(),
                         pcpuset=set(), memory=0, mempages=[],
                         siblings=[], pinned_cpus=set())
        for c in report.numa_cells])


def requests(request_set: request_mod.RequestSet) -> list[Any]:
    """nova InstancePCIRequests equal to our requests."""
    objects = _objects()
    out = []
    for index, request in enumerate(request_set.requests):
        specs = []
        for spec in request.specs:
            # nova's request specs say dev_type where the alias says
            # device_type.
            entry = spec.to_dict()
            if 'device_type' in entry:
                entry['dev_type'] = entry.pop('device_type')
            specs.append(entry)
        out.append(objects.InstancePCIRequest(
            count=request.count, spec=specs, alias_name=request.alias_name,
            numa_policy=request.numa_policy,
            request_id='00000000-0000-0000-0000-%012d' % index,
            ))
    return out


def cells(ids: list[int] | None) -> Any:
    if not ids:
        return None
    objects = _objects()
    return [objects.InstanceNUMACell(id=i, cpuset=set(), pcpuset=set(),
                                     memory=0) for i in ids]
