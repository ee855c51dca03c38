"""The edge with nova (CONF, HostState, RequestSpec), imported lazily."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import candidates

LOG = logging.getLogger(__name__)
# Migration types whose destination nova-compute claims with a move claim.
MOVE_CLAIMS = ('resize', 'migration', 'evacuation')


@functools.cache
def available() -> bool:
    """Whether nova's scheduler can be imported here."""
    try:
        import nova.scheduler.filters  # noqa: F401
        import nova.weights  # noqa: F401
    except ImportError:
        return False
    return True


def nova_conf() -> cfg.ConfigOpts:
    """nova's global CONF with our groups on it (``[pci]`` is nova's own).

    Called when the filter or weigher first runs inside nova-scheduler,
    never at import: nova hands filters no ConfigOpts.
    """
    import nova.conf

    conf: cfg.ConfigOpts = nova.conf.CONF
    scheduler_conf.register_opts(conf)
    store_conf.register_opts(conf)
    return conf


def host_name(host_state: Any) -> str:
    """The compute host name of a nova HostState (or a plain name)."""
    if isinstance(host_state, str):
        return host_state
    host = host_state.host
    # Asked per host per pass: nova's is a str already.
    return host if host.__class__ is str else str(host)


def is_request_spec(obj: Any) -> bool:
    return hasattr(obj, 'flavor') and hasattr(obj, 'obj_attr_is_set')


def _field(spec: Any, name: str) -> Any:
    if spec.obj_attr_is_set(name):
        return getattr(spec, name)
    return None


def extra_specs(spec: Any) -> dict[str, str]:
    flavor = _field(spec, 'flavor')
    if flavor is None or not flavor.obj_attr_is_set('extra_specs'):
        return {}
    return dict(flavor.extra_specs or {})


def numa_cell_count(spec: Any) -> int | None:
    """How many NUMA cells the guest has (None: no NUMA topology)."""
    topology = _field(spec, 'numa_topology')
    if topology is None or not topology.cells:
        return None
    return len(topology.cells)


def instance_uuid(spec: Any) -> str | None:
    value = _field(spec, 'instance_uuid')
    return str(value) if value else None


def is_rebuild(spec: Any) -> bool:
    """nova's ``request_is_rebuild``: a rebuild keeps the instance's host."""
    hints = _field(spec, 'scheduler_hints') or {}
    return bool(hints.get('_nova_check_type') == ['rebuild'])


def pci_in_placement(conf: cfg.ConfigOpts) -> bool | None:
    """nova's ``[filter_scheduler] pci_in_placement`` (None: not nova's
    CONF, the standalone scheduler)."""
    try:
        return bool(conf.filter_scheduler.pci_in_placement)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, AttributeError):
        return None


def decision_key(spec: Any) -> tuple[object, ...]:
    """One scheduling pass of one instance: what the filter decided for
    a host, the weigher reads back under this key."""
    return (id(spec), instance_uuid(spec))


def host_view(host: str, facts: candidates.HostFacts, host_state: Any,
              pools: Any = None) -> candidates.HostView:
    """The host's candidate view: nova's providers beside the agent's
    facts (``pools``: the device-level pools, when requests must still fit
    after a candidate)."""
    found = _pools(host_state)
    if pools is None:
        # Asked for every host of every request: one pass over nova's
        # pools, the Provider objects only if something asks for them.
        view = candidates.HostView.of_nova_pools(host, facts, found,
                                                 providers_of)
        if view is not None:
            return view
    return candidates.HostView(host, facts, providers_of(found), pools)


def _pools(host_state: Any) -> Sequence[Mapping[str, Any]]:
    stats = getattr(host_state, 'pci_stats', None)
    return getattr(stats, 'pools', None) or ()


def providers_of(pools: Sequence[Mapping[str, Any]]
                 ) -> dict[str, candidates.Provider]:
    """nova's PCI providers of a host, from the pools on its pci_stats.

    Each pool of a provider carries ``rp_uuid`` and ``address`` (the
    device's, or the PF's for VFs); ``count`` is what nova counts free
    after the claims of this scheduling pass.
    """
    try:
        return _providers(pools)
    except (KeyError, AttributeError, TypeError):
        # Pools not as nova 34 makes them: read field by field.
        return _providers_lenient(pools)


def _providers(pools: Sequence[Mapping[str, Any]]
               ) -> dict[str, candidates.Provider]:
    """providers() on pools as nova makes them (every pool has its
    vendor and product ids, dev_type, numa_node, address and count):
    asked for every host of every request, so read plainly."""
    found: dict[str, candidates.Provider] = {}
    make = candidates.Provider
    hexed = _IDS
    for pool in pools:
        rp = pool.get('rp_uuid')
        if not rp:
            continue  # not in Placement (e.g. physical_network devices)
        count = pool['count']
        if count.__class__ is not int:
            raise TypeError('count %r' % (count,))
        provider = found.get(rp)
        if provider is not None:
            provider.free += count
            continue
        vendor, product = pool['vendor_id'], pool['product_id']
        try:
            vendor_id, product_id = hexed[vendor], hexed[product]
        except KeyError:
            vendor_id, product_id = _hex(vendor), _hex(product)
        found[rp] = make(rp, pool['address'].lower(), pool['dev_type'],
                         count, pool['numa_node'], vendor_id, product_id)
    return found


def _providers_lenient(pools: Sequence[Mapping[str, Any]]
                       ) -> dict[str, candidates.Provider]:
    found: dict[str, candidates.Provider] = {}
    for pool in pools:
        rp = pool.get('rp_uuid')
        if not rp:
            continue
        try:
            count = int(pool.get('count', 0))
        except (TypeError, ValueError):
            count = 0  # nova cannot hand out what it cannot count
        provider = found.get(rp)
        if provider is not None:
            provider.free += count
            continue
        found[rp] = candidates.Provider(
            str(rp), str(pool.get('address', '')).lower(),
            str(pool.get('dev_type', '')), count, pool.get('numa_node'),
            _hex(pool.get('vendor_id')), _hex(pool.get('product_id')))
    return found


# Parsed vendor and product ids by their string: a cloud has a handful.
IDS_CACHE_SIZE = 4096
_IDS: dict[Any, int | None] = {}


def _hex(value: Any) -> int | None:
    """``value`` (a hex id string) parsed; remembered by its string."""
    try:
        parsed: int | None = int(str(value), 16)
    except ValueError:
        parsed = None
    if isinstance(value, str):
        if len(_IDS) >= IDS_CACHE_SIZE:
            _IDS.clear()
        _IDS[value] = parsed
    return parsed


def is_move_claim(spec: Any) -> bool:
    """The instance is being moved by a resize, cold migration or
    evacuation: nova-compute's move claim will pick its PCI devices. Its
    migration record says so (written before the scheduler is asked); one
    look-up in the instance's cell database per request.
    """
    uuid = instance_uuid(spec)
    if not uuid or not _field(spec, 'ignore_hosts') and \
            _field(spec, 'requested_destination') is None:
        return False  # a first boot: no move
    from nova import context as nova_context
    from nova import objects

    ctxt = nova_context.get_admin_context()
    try:
        mapping = objects.InstanceMapping.get_by_instance_uuid(ctxt, uuid)
        if mapping.cell_mapping is None:
            return False
        with nova_context.target_cell(ctxt, mapping.cell_mapping) as cctxt:
            found = objects.MigrationList.get_by_filters(
                cctxt, {'instance_uuid': uuid,
                        'status': ['pre-migrating', 'accepted']})
    except Exception as exc:  # noqa: BLE001 - the probe is optional
        # No database here (or no record): decide as for any move.
        LOG.debug('No migration look-up for %s: %s', uuid, exc)
        return False
    return any(m.migration_type in MOVE_CLAIMS for m in found)


def candidate_mappings(host_state: Any
                       ) -> list[Mapping[str, Sequence[str]]]:
    """The request group -> providers mapping of each allocation
    candidate nova still holds for the host."""
    found = getattr(host_state, 'allocation_candidates', None) or ()
    try:
        # As nova makes them (asked per host: read plainly).
        mappings = [c['mappings'] for c in found]
        if None not in mappings:
            return mappings
    except (KeyError, TypeError):
        pass
    return [(c.get('mappings') if isinstance(c, Mapping) else None) or {}
            for c in found]


def device_groups(spec: Any, requests: request_mod.RequestSet
                  ) -> list[candidates.Group] | None:
    """Each requested device's request group id (``{request_id}-{i}``, as
    nova names them with PCI in Placement) with the plugin's request it
    belongs to; None when a flavor request has no such groups."""
    pci_requests = _field(spec, 'pci_requests')
    nova_requests = list(getattr(pci_requests, 'requests', None) or ())
    groups: list[candidates.Group] = []
    used: set[int] = set()
    for ours in requests.requests:
        if ours.source != request_mod.SOURCE_FLAVOR:
            continue
        match = next((n for n, r in enumerate(nova_requests)
                      if n not in used and r.obj_attr_is_set('alias_name')
                      and r.alias_name == ours.alias_name
                      and r.obj_attr_is_set('request_id') and
                      r.request_id), None)
        if match is None:
            return None
        used.add(match)
        nova_request = nova_requests[match]
        groups.extend(('%s-%d' % (nova_request.request_id, i), ours)
                      for i in range(nova_request.count))
    return groups


def request_key(spec: Any) -> tuple[object, ...]:
    """What identifies a RequestSpec's PCI ask, to parse it once."""
    return (id(spec), tuple(sorted(extra_specs(spec).items())),
            instance_uuid(spec), numa_cell_count(spec), is_rebuild(spec))


_ADAPTED: dict[tuple[type, str], type] = {}


def novaize(cls: type, kind: str) -> type:
    """``cls`` as a subclass of nova's BaseHostFilter or BaseHostWeigher.

    nova only loads classes of its own base types; the plugin's classes
    stay importable without nova, so the nova flavour is made here.
    """
    key = (cls, kind)
    adapted = _ADAPTED.get(key)
    if adapted is None:
        if kind == 'filter':
            from nova.scheduler import filters as nova_filters
            # A candidate filter: it prunes and orders the host's
            # allocation candidates (nova claims the first).
            bases: tuple[type, ...] = (
                cls, nova_filters.BaseHostFilter,
                nova_filters.CandidateFilterMixin)
        else:
            from nova.scheduler import weights as nova_weights
            bases = (cls, nova_weights.BaseHostWeigher)
        adapted = _ADAPTED[key] = type(cls.__name__, bases, {
            '__module__': cls.__module__, '__doc__': cls.__doc__})
    return adapted
