"""Hotplug: attach and detach, and the devices remembered for re-placement."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod

LOG = logging.getLogger(__name__)
Aliases = Mapping[str, alias_mod.Alias]


def extras(ledger: ledger_mod.Ledger, instance: str) -> dict[str, int]:
    """The instance's remembered hot-plugged devices: {alias: count}."""
    counts: dict[str, int] = collections.Counter(
        h.alias for h in ledger.hotplugs(instance))
    return dict(sorted(counts.items()))


def extra_requests(ledger: ledger_mod.Ledger, instance: str,
                   aliases: Aliases) -> list[request_mod.DeviceRequest]:
    """The remembered hotplugs as requests (source ``hotplug``).

    :raises: UnknownAlias when ``[pci] alias`` lost an alias still in use.
    """
    return [request_mod.hotplug_request(aliases, name, count)
            for name, count in extras(ledger, instance).items()]


def remaining_headroom(info: records.InstanceInfo,
                       used: Mapping[str, int]) -> dict[str, int]:
    """The flavor's headroom that hotplugs have not taken yet."""
    return {name: count - used.get(name, 0)
            for name, count in sorted(info.headroom.items())
            if count > used.get(name, 0)}


def requests_for_move(ledger: ledger_mod.Ledger, instance: str,
                      flavor: request_mod.RequestSet,
                      aliases: Aliases) -> request_mod.RequestSet:
    """What a resize, migration or re-placement asks of a destination.

    The (new) flavor's devices, plus the devices hot-plugged earlier; the
    flavor's ``passthrough:hotplug_headroom`` shrinks by what hotplugs
    already took, so the same device is not asked for twice.
    """
    used = extras(ledger, instance)
    extra = [request_mod.hotplug_request(aliases, name, count)
             for name, count in used.items()]
    left: list[request_mod.DeviceRequest] = []
    for request in flavor.headroom:
        take = min(used.get(request.alias_name, 0), request.count)
        used[request.alias_name] = used.get(request.alias_name, 0) - take
        if request.count > take:
            left.append(request_mod.DeviceRequest(
                request.alias_name, request.count - take, request.specs,
                request.numa_policy, request.source))
    return request_mod.RequestSet(flavor.requests + tuple(extra),
                                  tuple(left))


def reserved_by_others(ledger: ledger_mod.Ledger, host: str,
                       instance: str, aliases: Aliases
                       ) -> list[request_mod.DeviceRequest]:
    """Headroom other instances on ``host`` may still hot-plug into."""
    reserved = []
    for other in ledger.instances_on(host):
        if other.uuid == instance or not other.headroom:
            continue
        left = remaining_headroom(other, extras(ledger, other.uuid))
        for name, count in left.items():
            if name not in aliases:
                LOG.warning('instance %s reserves headroom of alias %s, '
                            'which [pci] alias no longer defines; ignored',
                            other.uuid, name)
                continue
            reserved.append(request_mod.hotplug_request(aliases, name,
                                                        count))
    return reserved


def attach(ledger: ledger_mod.Ledger, pools: pools_mod.HostPools,
           instance: str, alias: str, aliases: Aliases, *, count: int = 1,
           numa_cells: pools_mod.Cells = None,
           guest_addresses: Sequence[str] = ()) -> list[records.Interval]:
    """Hot-plug ``count`` devices of ``alias`` into a running instance.

    The devices must fit on the instance's host while the headroom other
    instances there were promised stays free. The caller then claims the
    returned addresses in the report store with source ``hotplug``.

    :raises: UnknownInstance, UnknownAlias, InvalidLedgerInput (wrong host),
        HotplugRefused with the core's reason and sentence.
    """
    info = ledger.instance(instance)
    if info.deleted_at is not None:
        raise ledger_mod.unknown_instance(instance, 'instance')
    if info.host != pools.host:
        raise exception.InvalidLedgerInput(
            field='host', value=pools.host,
            reason='instance %s runs on host %s' % (instance, info.host))
    request = request_mod.hotplug_request(aliases, alias, count)
    others = reserved_by_others(ledger, pools.host, instance, aliases)
    fit = pools.fit(request_mod.RequestSet((request,), tuple(others)),
                    numa_cells)
    if not fit.ok:
        raise exception.HotplugRefused(
            request=request.describe(), instance=instance, host=pools.host,
            reason=fit.reason, detail=fit.detail)
    opened = []
    with ledger.begin() as txn:
        at = ledger.now()
        row = txn.instance(instance)
        for position, address in enumerate(fit.devices[0]):
            hotplug_id = txn.add_hotplug(instance, alias, at)
            guest = guest_addresses[position] \
                if position < len(guest_addresses) else None
            opened.append(txn.start(
                row, pools.host, address,
                resource_class=claims.resource_class(pools, address),
                source=claims.SOURCE_HOTPLUG, at=at, alias=alias,
                hotplug_id=hotplug_id, guest_address=guest))
        txn.event(instance, 'hotplug', pools.host, at, '%s: %s' % (
            request.describe(), ', '.join(fit.devices[0])))
        pools.consume(fit, instance, claims.SOURCE_HOTPLUG)
    return opened


def detach(ledger: ledger_mod.Ledger, instance: str, host_address: str,
           pools: pools_mod.HostPools | None = None) -> records.Interval:
    """Hot-unplug one device: close its interval, forget the hotplug.

    :raises: UnknownInstance, InvalidLedgerInput (the instance does not
        hold that device, or it is a flavor device).
    """
    with ledger.begin() as txn:
        at = ledger.now()
        row = txn.instance(instance)
        held = txn.open_intervals(instance)
        match = [a for a in held if a.host_address == host_address]
        if not match:
            raise exception.InvalidLedgerInput(
                field='host address', value=host_address,
                reason='instance %s holds no device there; it holds %s' % (
                    instance, ', '.join(a.host_address for a in held)
                    or 'nothing'))
        assignment = match[0]
        if assignment.source != claims.SOURCE_HOTPLUG:
            raise exception.InvalidLedgerInput(
                field='host address', value=host_address,
                reason='a flavor device cannot be unplugged; resize to a '
                'flavor without it')
        closed = txn.end(assignment, at, 'detached')
        if assignment.hotplug_id is not None:
            txn.remove_hotplug(assignment.hotplug_id, at, 'detached')
        txn.event(instance, 'unplug', row.host, at, host_address)
    if pools is not None:
        _release_one(pools, instance, host_address)
    return closed


def _release_one(pools: pools_mod.HostPools, instance: str,
                 address: str) -> None:
    """Free one device of ``instance`` in ``pools``, keeping the others.

    HostPools releases a consumer as a whole, so release and consume the
    rest again, per source.
    """
    held = [(pools.devices[i].address, source or claims.SOURCE_FLAVOR)
            for i, source in pools.owners.get(instance, [])]
    pools.release(instance)
    for source in (claims.SOURCE_FLAVOR, claims.SOURCE_HOTPLUG):
        keep = tuple(a for a, s in held if s == source and a != address)
        if keep:
            pools.consume(pools_mod.Fit(True, (keep,)), instance, source)
