"""Load the configured report store through stevedore."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
from stevedore import driver as driver_mod
from stevedore import exception as stevedore_exc

from passthrough_plugin import exception
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.store import base

LOG = logging.getLogger(__name__)


def available() -> list[str]:
    """The entry-point names of the installed report stores."""
    from stevedore import extension

    manager: extension.ExtensionManager[Any] = extension.ExtensionManager(
        base.NAMESPACE, invoke_on_load=False)
    return sorted(manager.names())


def load_store(conf: cfg.ConfigOpts) -> base.ReportStore:
    """The store named by ``[report_store] driver``, built with ``conf``.

    A store class may offer ``for_conf(conf)``, which builds the store the
    options ask for (the placement driver: its ``[placement_store]
    inventory`` mode); else the class is called with ``conf``.

    :raises: InvalidConfig naming the driver and the installed ones.
    """
    store_conf.register_opts(conf)
    name = conf.report_store.driver
    try:
        manager: driver_mod.DriverManager[Any] = driver_mod.DriverManager(
            base.NAMESPACE, name, invoke_on_load=False)
    except stevedore_exc.NoMatches:
        raise exception.InvalidConfig(
            group='report_store', option='driver', value=name,
            reason='no such report store; installed: %s' % (
                ', '.join(available()) or '(none)')) from None
    plugin = manager.driver
    store = getattr(plugin, 'for_conf', plugin)(conf)
    if not isinstance(store, base.ReportStore):
        raise exception.InvalidConfig(
            group='report_store', option='driver', value=name,
            reason='%r is not a ReportStore' % type(store).__name__)
    LOG.debug('Loaded report store %s', name)
    return store
