"""Resize and cold migration: a live source, the new flavor plus the extras."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import hotplug
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import models
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    fit: pools_mod.Fit
    source_host: str
    kept: tuple[records.Interval, ...]     # same host, same device: go on
    opened: tuple[records.Interval, ...]
    closed: tuple[records.Interval, ...]


def _restore(pools: pools_mod.HostPools, instance: str,
             held: list[tuple[str, str]]) -> None:
    for source in (claims.SOURCE_FLAVOR, claims.SOURCE_HOTPLUG):
        addresses = tuple(a for a, s in held if s == source)
        if addresses:
            pools.consume(pools_mod.Fit(True, (addresses,)), instance,
                          source)


def resize(ledger: ledger_mod.Ledger, instance: str,
           source: pools_mod.HostPools, destination: pools_mod.HostPools,
           flavor: request_mod.RequestSet,
           aliases: Mapping[str, alias_mod.Alias], *,
           numa_cells: pools_mod.Cells = None) -> Move:
    """Move an instance to ``flavor`` on ``destination`` (may be its host).

    The destination must give the new flavor's devices, every hot-plugged
    device and what is left of the new flavor's hotplug headroom; nothing
    is dropped (the source is alive, so a refusal leaves the instance as it
    was). On the same host a device that is asked for again stays with the
    instance and its interval goes on. The source's claims are released in
    ``source`` at once; the caller does the same in the report store.

    :raises: UnknownInstance, InvalidLedgerInput (wrong source host),
        ResizeRefused with the core's reason.
    """
    info = ledger.instance(instance)
    if info.deleted_at is not None:
        raise ledger_mod.unknown_instance(instance, 'instance')
    if info.host != source.host:
        raise exception.InvalidLedgerInput(
            field='source host', value=source.host,
            reason='instance %s runs on host %s' % (instance, info.host))
    wanted = hotplug.requests_for_move(ledger, instance, flavor, aliases)
    same_host = destination is source
    held = [(source.devices[i].address, s or claims.SOURCE_FLAVOR)
            for i, s in source.owners.get(instance, [])]
    if same_host:
        source.release(instance)
    fit = destination.fit(wanted, numa_cells)
    if not fit.ok:
        if same_host:
            _restore(source, instance, held)
        raise exception.ResizeRefused(
            instance=instance, host=destination.host, reason=fit.reason,
            detail=fit.detail)
    kept: list[records.Interval] = []
    opened: list[records.Interval] = []
    closed: list[records.Interval] = []
    with ledger.begin() as txn:
        at = ledger.now()
        row = txn.instance(instance)
        remembered: dict[str, list[int]] = {}
        for hotplug_row in txn.active_hotplugs(instance):
            remembered.setdefault(hotplug_row.alias, []).append(
                hotplug_row.id)
        still: dict[str, models.Assignment] = {}
        if same_host:
            still = {a.host_address: a for a in txn.open_intervals(instance)}
        for assignment in txn.open_intervals(instance):
            if not same_host:
                closed.append(txn.end(assignment, at, 'resized to %s' %
                                      destination.host))
        for request, addresses in zip(wanted.requests, fit.devices,
                                      strict=True):
            ids = remembered.get(request.alias_name, []) \
                if request.source == claims.SOURCE_HOTPLUG else []
            for address in addresses:
                hotplug_id = ids.pop(0) if ids else None
                current = still.pop(address, None)
                if current is not None and current.source == request.source:
                    kept.append(records.Interval.from_row(current))
                    continue
                if current is not None:
                    closed.append(txn.end(current, at, 'resized'))
                opened.append(txn.start(
                    row, destination.host, address,
                    resource_class=claims.resource_class(destination,
                                                         address),
                    source=request.source, at=at, alias=request.alias_name,
                    hotplug_id=hotplug_id))
        for leftover in still.values():
            closed.append(txn.end(leftover, at, 'resized'))
        headroom: dict[str, int] = {}
        for request in flavor.headroom:
            headroom[request.alias_name] = headroom.get(
                request.alias_name, 0) + request.count
        row.headroom = json.dumps(headroom, sort_keys=True)
        row.host = destination.host
        txn.event(instance, 'resize', destination.host, at,
                  'from %s: %d kept, %d new, %d ended' % (
                      source.host, len(kept), len(opened), len(closed)))
        n_flavor = len(flavor.requests)
        flavor_fit, hotplug_fit = claims.split_fit(fit, n_flavor)
        if not same_host:
            source.release(instance)
        destination.consume(flavor_fit, instance, claims.SOURCE_FLAVOR)
        if hotplug_fit.devices:
            destination.consume(hotplug_fit, instance,
                                claims.SOURCE_HOTPLUG)
    return Move(fit, source.host, tuple(kept), tuple(opened), tuple(closed))
