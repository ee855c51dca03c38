"""Publishing a HostReport to Placement, and reading a host back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement.client import PlacementClient
from passthrough_plugin.store.placement.types import ResourceProvider

LOG = logging.getLogger(__name__)
# On a provider whose device vanished while allocated: kept, reserved.
VANISHED = mapping.PREFIX + 'VANISHED'
INVENTORY_IN_USE = 'placement.inventory.inuse'


def with_trait(client: PlacementClient, trait: str,
               in_tree: str | None = None) -> list[ResourceProvider]:
    """Providers with ``trait``; none when Placement does not know the
    trait yet (it answers 400 rather than an empty list)."""
    try:
        return client.list_providers(required=[trait], in_tree=in_tree)
    except exception.PlacementError as exc:
        if exc.kwargs.get('status') == 400 and 'No such trait' in str(
                exc.kwargs.get('detail')):
            return []
        raise


def _root(client: PlacementClient, host: str, create: bool
          ) -> ResourceProvider | None:
    """The compute node provider: nova's (found by name) or ours."""
    found = client.find_provider(host)
    if found is None and create:
        found = client.ensure_provider(host)
    return found


def _ours(client: PlacementClient, root: ResourceProvider
          ) -> dict[str, ResourceProvider]:
    return {rp.name: rp for rp in client.list_providers(in_tree=root.uuid)
            if mapping.split_name(rp.name) and rp.uuid != root.uuid}


def publish(client: PlacementClient, report: report_mod.HostReport,
            create_root: bool = True) -> int:
    """Bring the host's providers to ``report``; return the generation.

    :raises: NovaPciInPlacement, NoComputeNodeProvider,
        PlacementUnavailable, PlacementError
    """
    host = report.host
    root = _root(client, host, create=create_root)
    if root is None:
        raise exception.NoComputeNodeProvider(host=host,
                                               endpoint=client.endpoint)
    nova = with_trait(client, mapping.NOVA_MANAGED, in_tree=root.uuid)
    if nova:
        raise exception.NovaPciInPlacement(
            host=host, providers=', '.join(sorted(rp.name for rp in nova)))
    existing = _ours(client, root)
    for _address, want in sorted(mapping.desired(report).items()):
        for problem in want.problems:
            LOG.warning('%s: %s', host, problem)
        rp = existing.pop(want.name, None) or client.ensure_provider(
            want.name, uuid=mapping.provider_uuid(want.name),
            parent_provider_uuid=root.uuid)
        traits = set(want.traits)
        if any(inv['reserved'] < inv['total']
               for inv in want.inventories.values()):
            traits.add(mapping.VIABLE)
        _write(client, rp, want.inventories, traits)
    for name, rp in sorted(existing.items()):
        _vanished(client, host, name, rp)
    return sum(rp.generation for rp in _ours(client, root).values())


def _write(client: PlacementClient, rp: ResourceProvider,
           inventories: Mapping[str, Mapping[str, int]],
           traits: set[str]) -> None:
    gen, have = client.get_inventories(rp.uuid)
    if not mapping.same_inventory(have, inventories):
        try:
            client.set_inventories(rp.uuid, inventories, generation=gen)
        except exception.PlacementConflict as exc:
            if exc.kwargs.get('code') != INVENTORY_IN_USE:
                raise
            # A class with allocations would go away: keep it, reserved.
            kept = _keep_allocated(client, rp, have, inventories)
            LOG.warning('provider %s: %s still allocated while the device '
                        'no longer offers it; kept, reserved', rp.name,
                        ', '.join(sorted(set(kept) - set(inventories))))
            client.set_inventories(rp.uuid, kept)
            traits = traits | {VANISHED}
    _gen, have_traits = client.get_traits(rp.uuid)
    if have_traits != traits:
        client.set_traits(rp.uuid, traits)


def _keep_allocated(client: PlacementClient, rp: ResourceProvider,
                    have: Mapping[str, Any],
                    want: Mapping[str, Mapping[str, int]]
                    ) -> dict[str, dict[str, int]]:
    usages = client.get_provider_usages(rp.uuid)
    kept = {rc: dict(fields) for rc, fields in want.items()}
    for rc, used in usages.items():
        if used and rc not in kept and rc in have:
            total = int(have[rc]['total'])
            kept[rc] = {'total': total, 'reserved': total, 'min_unit': 1,
                        'max_unit': total, 'step_size': 1,
                        'allocation_ratio': 1}
    return kept


def _vanished(client: PlacementClient, host: str, name: str,
              rp: ResourceProvider) -> None:
    """Delete a provider whose device is gone, unless it is allocated:
    then keep it with reserved = total, marked, and say so."""
    usages = {rc: n for rc, n in client.get_provider_usages(rp.uuid).items()
              if n}
    if not usages:
        client.delete_provider(rp.uuid)
        LOG.info('%s: removed provider %s (device gone)', host, name)
        return
    _gen, have = client.get_inventories(rp.uuid)
    reserved = {rc: {'total': int(f['total']), 'reserved': int(f['total']),
                     'min_unit': 1, 'max_unit': int(f['total']),
                     'step_size': 1, 'allocation_ratio': 1}
                for rc, f in have.items()}
    if not mapping.same_inventory(have, reserved):
        client.set_inventories(rp.uuid, reserved)
    _gen, traits = client.get_traits(rp.uuid)
    if VANISHED not in traits:
        client.set_traits(rp.uuid, (traits - {mapping.VIABLE}) | {VANISHED})
    LOG.warning('%s: device of provider %s vanished but is still allocated '
                '(%s); kept with everything reserved until the consumers '
                'release it', host, name, ', '.join(
                    '%s x%d' % item for item in sorted(usages.items())))


def remove(client: PlacementClient, host: str) -> None:
    root = _root(client, host, create=False)
    if root is None:
        raise exception.HostReportNotFound(host=host, store='placement')
    for name, rp in sorted(_ours(client, root).items()):
        try:
            client.delete_provider(rp.uuid)
        except exception.PlacementConflict as exc:
            raise exception.ClaimFailed(
                consumer='-', host=host, reason=(
                    'cannot forget %s: its device is still allocated (%s)'
                    % (name, exc.kwargs.get('detail')))) from exc


def _view(client: PlacementClient, rp: ResourceProvider, address: str
          ) -> mapping.ProviderView:
    _gen, inventories = client.get_inventories(rp.uuid)
    usages = client.get_provider_usages(rp.uuid)
    _gen, traits = client.get_traits(rp.uuid)
    return mapping.ProviderView(
        rp.uuid, address,
        {rc: (int(f['total']) - int(f['reserved']), int(usages.get(rc, 0)))
         for rc, f in inventories.items()}, frozenset(traits))


def host_facts(client: PlacementClient, host: str) -> base.HostFacts:
    """One host's facts, read provider by provider (not the hot path).

    :raises: HostReportNotFound, PlacementUnavailable
    """
    from passthrough_plugin.store.placement import claims

    root = _root(client, host, create=False)
    ours = _ours(client, root) if root is not None else {}
    if not ours:
        raise exception.HostReportNotFound(host=host, store='placement')
    views = []
    for name, rp in sorted(ours.items()):
        parts = mapping.split_name(name)
        assert parts is not None
        views.append(_view(client, rp, parts[1]))
    facts = claims.facts_of(host, views)
    facts.generation = sum(rp.generation for rp in ours.values())
    return facts


def read_report(client: PlacementClient, host: str
                ) -> report_mod.HostReport:
    """PFs and type-PCI devices with addresses, owners and status."""
    facts = host_facts(client, host)
    views: dict[str, mapping.ProviderView] = dict(
        facts.handle) if isinstance(facts.handle, dict) else {}
    devices = []
    for pool in facts.pools:
        if pool.dev_type == 'type-VF':
            continue
        view = views[pool.address]
        capacity, used = view.resources.get(pool.resource_class, (0, 0))
        owners = sorted(client._call(  # noqa: SLF001 - one read
            'GET', '/resource_providers/%s/allocations' % view.uuid
        ).get('allocations', {})) if used else []
        status = 'allocated' if used else (
            'available' if capacity else 'unavailable')
        devices.append(report_mod.Device(
            pool.address, pool.vendor_id, pool.product_id, pool.dev_type,
            numa_node=pool.numa_node, tags=dict(pool.pool_tags),
            resource_class=pool.resource_class,
            traits=tuple(sorted(pool.traits)), status=status,
            owner=owners[0] if owners else None,
            source='flavor' if owners else None))
    return report_mod.HostReport(
        host, facts.generation, devices,
        [report_mod.NumaCell(c, s) for c, s in sorted(facts.sockets.items())],
        reported_at=None)


def problems(client: PlacementClient, host: str | None = None
             ) -> dict[str, list[str]]:
    """Per host, the devices that vanished while allocated (one listing
    call, plus one usage read per such device)."""
    out: dict[str, list[str]] = {}
    for rp in with_trait(client, VANISHED):
        parts = mapping.split_name(rp.name)
        if parts is None or (host is not None and parts[0] != host):
            continue
        usages = {rc: n for rc, n in
                  client.get_provider_usages(rp.uuid).items() if n}
        out.setdefault(parts[0], []).append(
            '%s: device vanished but still allocated (%s); reserved until '
            'released' % (rp.name, ', '.join(
                '%s x%d' % i for i in sorted(usages.items()))
                or 'released now; the next publish removes it'))
    return out
