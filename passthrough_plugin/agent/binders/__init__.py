"""Binder plugins (``passthrough_plugin.binders``) and their loader."""

from __future__ import annotations

import importlib
from importlib import metadata

import stevedore
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.agent.binders import base

LOG = logging.getLogger(__name__)
# The entry points setup.cfg declares, for running from a source tree that
# is not installed (a unit test checks the two lists agree).
BUILTIN = {
    'vfio-pci': 'passthrough_plugin.agent.binders.vfio:VfioPciBinder',
    'pci-stub': 'passthrough_plugin.agent.binders.stub:PciStubBinder',
}


def load(name: str, fs: sysfs_mod.Sysfs) -> base.Binder:
    """The binder called ``name``, from its entry point.

    :raises: InvalidConfig naming the valid binders.
    """
    installed = {ep.name for ep in metadata.entry_points(
        group=base.NAMESPACE)}
    if name in installed:
        manager: stevedore.DriverManager[base.Binder] = (
            stevedore.DriverManager(base.NAMESPACE, name, invoke_on_load=True,
                                    invoke_args=(fs,)))
        loaded = manager.driver
        if not isinstance(loaded, base.Binder):
            raise exception.InvalidConfig(
                group='agent', option='binder', value=name,
                reason='the entry point does not give a Binder')
        return loaded
    target = BUILTIN.get(name)
    if target is None:
        raise exception.InvalidConfig(
            group='agent', option='binder', value=name,
            reason='no such binder; choose one of %s' % ', '.join(
                sorted(installed | set(BUILTIN))))
    LOG.debug('binder %s: entry point not installed, using %s', name,
              target)
    module, _sep, cls = target.partition(':')
    binder: base.Binder = getattr(importlib.import_module(module), cls)(fs)
    return binder
