"""Boot and delete, and turning a core Fit into ledger intervals."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from oslo_log import log as logging

from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import models
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod

LOG = logging.getLogger(__name__)
SOURCE_FLAVOR = request_mod.SOURCE_FLAVOR
SOURCE_HOTPLUG = request_mod.SOURCE_HOTPLUG


def resource_class(pools: pools_mod.HostPools, address: str) -> str:
    device = pools.report.device(address)
    return device.resource_class if device is not None else 'UNKNOWN'


def record_fit(txn: ledger_mod.Transaction, instance: models.Instance,
               pools: pools_mod.HostPools, fit: pools_mod.Fit,
               requests: Sequence[request_mod.DeviceRequest], *,
               at: datetime.datetime,
               hotplug_ids: Sequence[int | None] = ()
               ) -> list[records.Interval]:
    """Open one interval per chosen device, request by request.

    ``hotplug_ids[i]`` links the devices of ``requests[i]`` to a remembered
    hotplug (None for flavor devices). IOMMU group companions are held but
    not given to the guest, so they are not billed.
    """
    opened = []
    for index, (request, addresses) in enumerate(zip(
            requests, fit.devices, strict=True)):
        hotplug_id = hotplug_ids[index] if index < len(hotplug_ids) \
            else None
        for address in addresses:
            opened.append(txn.start(
                instance, pools.host, address,
                resource_class=resource_class(pools, address),
                source=request.source, at=at, alias=request.alias_name,
                hotplug_id=hotplug_id))
    return opened


def split_fit(fit: pools_mod.Fit, first: int
              ) -> tuple[pools_mod.Fit, pools_mod.Fit]:
    """The first ``first`` requests' devices (with the companions), the rest.

    HostPools.consume takes one source per call; flavor and hotplug devices
    are consumed apart so the host report tells them apart.
    """
    head = dataclasses.replace(fit, devices=fit.devices[:first])
    tail = dataclasses.replace(fit, devices=fit.devices[first:],
                               companions=())
    return head, tail


def boot(ledger: ledger_mod.Ledger, pools: pools_mod.HostPools,
         instance: str, project: str,
         request_set: request_mod.RequestSet, *,
         numa_cells: pools_mod.Cells = None) -> pools_mod.Fit:
    """Place the flavor's devices of a new instance and open its intervals.

    The caller then claims ``fit.addresses + fit.companions`` in the report
    store (source ``flavor``); ``pools`` is updated in memory.

    :raises: ClaimFailed when the requests do not fit, InvalidLedgerInput
        when the instance is already known.
    """
    fit = pools.fit(request_set, numa_cells)
    headroom: dict[str, int] = {}
    for request in request_set.headroom:
        headroom[request.alias_name] = headroom.get(
            request.alias_name, 0) + request.count
    if not fit.ok:
        pools.consume(fit, instance)  # raises ClaimFailed with the detail
    with ledger.begin() as txn:
        at = ledger.now()
        txn.add_instance(instance, project, pools.host, headroom, at)
        row = txn.instance(instance)
        opened = record_fit(txn, row, pools, fit, request_set.requests,
                            at=at)
        txn.event(instance, 'boot', pools.host, at,
                  '%d flavor device(s): %s' % (
                      len(opened), ', '.join(i.host_address
                                             for i in opened)))
        # Last: a device taken meanwhile rolls the ledger back.
        pools.consume(fit, instance, SOURCE_FLAVOR)
    return fit


def delete(ledger: ledger_mod.Ledger, instance: str,
           pools: pools_mod.HostPools | None = None
           ) -> list[records.Interval]:
    """Close every open interval of a deleted instance; forget its hotplugs.

    :raises: UnknownInstance
    """
    with ledger.begin() as txn:
        at = ledger.now()
        row = txn.instance(instance)
        closed = [txn.end(a, at, 'deleted')
                  for a in txn.open_intervals(instance)]
        for hotplug in txn.active_hotplugs(instance):
            txn.remove_hotplug(hotplug.id, at, 'instance deleted')
        row.deleted_at = at
        txn.event(instance, 'delete', row.host, at,
                  'released %d device(s)' % len(closed))
    if pools is not None:
        pools.release(instance)
    return closed
