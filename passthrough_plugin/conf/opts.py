"""Gathers the option groups for oslo-config-generator."""

from __future__ import annotations

import types

from oslo_config import cfg

from passthrough_plugin.conf import agent
from passthrough_plugin.conf import hotplug
from passthrough_plugin.conf import lifecycle
from passthrough_plugin.conf import pci
from passthrough_plugin.conf import placement
from passthrough_plugin.conf import placement_store
from passthrough_plugin.conf import scheduler
from passthrough_plugin.conf import store

GROUP_MODULES: tuple[types.ModuleType, ...] = (
    pci, scheduler, store, placement, placement_store, agent, lifecycle,
    hotplug)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Return (group, options) pairs for every group, for the generator."""
    result: list[tuple[cfg.OptGroup, list[cfg.Opt]]] = []
    for module in GROUP_MODULES:
        result.extend(module.list_opts().items())
    return result
