"""[pci]: the device whitelist and aliases, as nova names and writes them."""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import groups

pci_group = cfg.OptGroup(
    'pci',
    title='PCI passthrough options',
    help="""
The same options, in the same JSON forms, as nova's ``[pci]`` group, so an
operator's existing nova.conf works unchanged.
""")

pci_opts: list[cfg.Opt] = [
    cfg.MultiStrOpt(
        'device_spec',
        default=[],
        deprecated_name='passthrough_whitelist',
        help="""
Which host PCI devices may be given to guests, and their tags.

Each value is a JSON object, or a JSON list of objects, with the keys:

* ``vendor_id``, ``product_id``: 4 hex digits, or ``*``.
* ``address``: a glob string ``[[[[<domain>]:]<bus>]:][<slot>][.[<function>]]``
  where a missing or empty field means ``*``, or a dict of regular
  expressions ``{"domain": ..., "bus": ..., "slot": ..., "function": ...}``.
  Unlike nova, each regular expression must match the whole field.
  A fully specified address of an SR-IOV PF also matches all its VFs.
* ``devname``: a network interface name (not together with ``address``).
* tags: ``physical_network``, ``trusted``, ``remote_managed``,
  ``resource_class``, ``traits``, ``managed``, ``live_migratable``,
  ``one_time_use``; any other key is kept as a string tag.

The first matching entry wins. Example::

    device_spec = {"vendor_id": "8086", "product_id": "10ca",
                   "physical_network": "physnet1"}
    device_spec = {"address": "0000:3b:00.0", "resource_class": "CUSTOM_NVME"}

Related options:

* ``[pci] alias``
"""),
    cfg.MultiStrOpt(
        'alias',
        default=[],
        help="""
Named device requests that flavors ask for with ``pci_passthrough:alias``.

Each value is a JSON object (or list of objects) with the keys ``name``
(required), ``vendor_id``, ``product_id``, ``device_type`` (``type-PCI``,
``type-PF`` or ``type-VF``), ``numa_policy`` (``required``, ``legacy``,
``preferred`` or ``socket``; default ``legacy``), ``resource_class``,
``traits`` (comma separated) and ``live_migratable``. Entries that share a
name are alternatives and must agree on ``numa_policy`` and ``device_type``.
Example::

    alias = {"name": "igbvf", "vendor_id": "8086", "product_id": "10ca",
             "device_type": "type-VF"}

Related options:

* ``[pci] device_spec``
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, pci_group, pci_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {pci_group: pci_opts}
