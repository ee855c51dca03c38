"""The edge with nova (CONF, HostState, RequestSpec), imported lazily."""

from __future__ import annotations

import functools
from typing import Any

from oslo_config import cfg

from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf


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
    return str(host_state.host)


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
            base: type = nova_filters.BaseHostFilter
        else:
            from nova.scheduler import weights as nova_weights
            base = nova_weights.BaseHostWeigher
        adapted = _ADAPTED[key] = type(cls.__name__, (cls, base), {
            '__module__': cls.__module__, '__doc__': cls.__doc__})
    return adapted
