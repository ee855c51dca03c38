"""``all_filters()`` for nova's ``[filter_scheduler] available_filters``."""

from __future__ import annotations

from typing import Any

from stevedore import extension

from passthrough_plugin.scheduler import nova_adapter

NAMESPACE = 'passthrough_plugin.scheduler.filters'


def all_filters() -> list[type]:
    """The filter classes installed under our namespace.

    Inside nova they come back as nova BaseHostFilter subclasses, so
    ``available_filters = passthrough_plugin.scheduler.filters.all_filters``
    and ``enabled_filters = ...,PciPoolFilter`` is all nova needs.
    """
    manager: extension.ExtensionManager[Any] = extension.ExtensionManager(
        NAMESPACE, invoke_on_load=False)
    classes = [ext.plugin for ext in sorted(manager, key=lambda e: e.name)]
    if nova_adapter.available():
        return [nova_adapter.novaize(c, 'filter') for c in classes]
    return classes
