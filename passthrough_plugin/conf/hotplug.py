"""[hotplug]: the pool of devices nova never sees, and live attach/detach."""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import groups

hotplug_group = cfg.OptGroup(
    'hotplug',
    title='Live PCI hotplug',
    help="""
Devices the agent keeps out of nova's hands so that ``passthrough-agent
attach`` can hot-plug them into running guests, and how it does so.
""")

hotplug_opts: list[cfg.Opt] = [
    cfg.MultiStrOpt(
        'device_spec',
        default=[],
        help="""
The hotplug pool: host PCI devices that only the plugin hands out, to
running guests, with ``passthrough-agent attach``. Same JSON forms as nova's
``[pci] device_spec`` (address glob or regex dict, ``vendor_id``,
``product_id``, ``devname``, tags such as ``resource_class``); the first
matching entry wins.

Keep these devices OUT of ``[pci] device_spec``: nova must never see them,
or it could give a device to a new guest while the plugin hands it to a
running one. A device in both is reported as nova's (``[pci]`` wins) and
``passthrough-agent doctor`` warns about it.

The agent reports pool devices marked ``hotplug_pool``; the scheduler
counts them for ``passthrough:hotplug_headroom`` and never for a flavor's
``pci_passthrough:alias``. Example::

    device_spec = {"address": "0000:5e:00.0", "resource_class": "CUSTOM_GPU"}

Related options:

* ``[pci] device_spec``, ``[pci] alias``
"""),
    cfg.FloatOpt(
        'detach_timeout',
        default=30.0,
        min=0.1,
        help="""
Seconds ``passthrough-agent detach`` waits for the guest to release a
device (libvirt's device-removed event, or the device gone from the live
domain) before it gives up. A guest that has not released the device keeps
it: its drivers, claim and ledger interval stay, and re-running
``detach`` waits again.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, hotplug_group, hotplug_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {hotplug_group: hotplug_opts}
