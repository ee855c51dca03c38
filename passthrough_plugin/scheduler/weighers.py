"""``all_weighers()`` for nova's ``[filter_scheduler] weight_classes``."""

from __future__ import annotations

from typing import Any

from stevedore import extension

from passthrough_plugin.scheduler import nova_adapter

NAMESPACE = 'passthrough_plugin.scheduler.weighers'


def all_weighers() -> list[type]:
    """The weigher classes installed under our namespace.

    Inside nova they come back as nova BaseHostWeigher subclasses:
    ``weight_classes = passthrough_plugin.scheduler.weighers.all_weighers``
    (add nova's own, e.g. ``nova.scheduler.weights.all_weighers``, as more
    values).
    """
    manager: extension.ExtensionManager[Any] = extension.ExtensionManager(
        NAMESPACE, invoke_on_load=False)
    classes = [ext.plugin for ext in sorted(manager, key=lambda e: e.name)]
    if nova_adapter.available():
        return [nova_adapter.novaize(c, 'weigher') for c in classes]
    return classes
