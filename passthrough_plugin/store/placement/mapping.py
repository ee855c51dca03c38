"""HostReport <-> Placement providers and traits: the pure mapping, no I/O.

One provider per type-PCI device and per PF, named
``<host>:passthrough:<address>``, nested under the compute node provider.
A PF whose VFs are in the report carries their inventory (the VFs have no
providers of their own: Placement counts them, it cannot name them); a PF
offered whole carries inventory 1 of its own resource class. Everything
the scheduler's core needs to decide (type, vendor, product, NUMA node,
NUMA topology, pool tags) rides on the provider as ``CUSTOM_PASSTHROUGH_*``
traits, so one allocation-candidates reply holds the whole decision input.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid as uuid_mod
from collections.abc import Iterable, Mapping
from typing import Any

import os_traits

from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import pool_counts as summary_mod

SEPARATOR = ':passthrough:'
PREFIX = 'CUSTOM_PASSTHROUGH_'
DEVICE = PREFIX + 'DEVICE'
VIABLE = PREFIX + 'IOMMU_VIABLE'
TRUSTED = PREFIX + 'TRUSTED'
# [hotplug] device_spec devices: only hotplug requests and their headroom
# may take them (the core reads the trait back into PoolFacts).
HOTPLUG_POOL = PREFIX + 'HOTPLUG_POOL'
TYPE = {'type-VF': PREFIX + 'TYPE_VF', 'type-PF': PREFIX + 'TYPE_PF',
        'type-PCI': PREFIX + 'TYPE_PCI'}
VENDOR = PREFIX + 'VENDOR_'
PRODUCT = PREFIX + 'PRODUCT_'
VF_PRODUCT = PREFIX + 'VF_PRODUCT_'
VF_RC = PREFIX + 'VFRC_'
NUMA = PREFIX + 'NUMA_'
CELL = PREFIX + 'CELL_'
TAG = PREFIX + 'TAG_'
PHYSNET = 'CUSTOM_PHYSNET_'
# nova's own [pci] report_in_placement providers carry this trait.
NOVA_MANAGED = os_traits.COMPUTE_MANAGED_PCI_DEVICE
# Stable provider uuids: two agents (or a restarted one) name the same uuid.
_NAMESPACE = uuid_mod.UUID('6f1e0c2a-8a7c-4d53-9b53-2f6b1f0a7c11')


def provider_name(host: str, address: str) -> str:
    return host + SEPARATOR + address


def provider_uuid(name: str) -> str:
    return str(uuid_mod.uuid5(_NAMESPACE, name))


def split_name(name: str) -> tuple[str, str] | None:
    """(host, address) of one of our provider names, else None."""
    host, sep, address = name.rpartition(SEPARATOR)
    return (host, address) if sep and host else None


def _tag_trait(key: str, value: str) -> str:
    text = base64.b32encode(('%s=%s' % (key, value)).encode()).decode()
    return TAG + text.rstrip('=')


def _tag_of(trait: str) -> tuple[str, str] | None:
    text = trait[len(TAG):]
    try:
        raw = base64.b32decode(text + '=' * (-len(text) % 8)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    key, sep, value = raw.partition('=')
    return (key, value) if sep else None


def _physnet(name: str) -> str:
    return str(os_traits.normalize_name(PHYSNET[len('CUSTOM_'):] + name))


@dataclasses.dataclass
class Desired:
    """What one of our providers should hold."""

    address: str
    name: str
    inventories: dict[str, dict[str, int]]
    traits: set[str]
    # Devices of the report behind it (for get()).
    devices: list[report_mod.Device]
    problems: list[str] = dataclasses.field(default_factory=list)


def _pool_tags(dev: report_mod.Device) -> dict[str, str]:
    return {k: v for k, v in dev.tags.items()
            if k not in device_spec.PLACEMENT_TAGS}


def _device_traits(dev: report_mod.Device, cells: str) -> set[str]:
    traits = set(dev.traits) | {DEVICE, VENDOR + dev.vendor_id.upper()}
    tags = _pool_tags(dev)
    traits.update(_tag_trait(k, v) for k, v in tags.items())
    if tags.get('physical_network'):
        traits.add(_physnet(tags['physical_network']))
    if device_spec.parse_bool(tags.get('trusted', 'false')):
        traits.add(TRUSTED)
    if dev.numa_node is not None:
        traits.add(NUMA + str(dev.numa_node))
    if dev.hotplug_pool:
        traits.add(HOTPLUG_POOL)
    traits.update(cells.split() if cells else ())
    return traits


def _cells(report: report_mod.HostReport) -> str:
    return ' '.join(CELL + '%d_SOCKET_%s' % (
        c.id, 'NONE' if c.socket is None else c.socket)
        for c in report.numa_cells)


def assignable(report: report_mod.HostReport) -> set[str]:
    """Addresses Placement may hand out: viable and available.

    Claims live in Placement, so the report's own in-use marks are ignored
    here. Taking one member of a shared IOMMU group takes the group, which
    Placement cannot express: only the first viable member of such a group
    is offered, its mates are reserved.
    """
    devices = [dataclasses.replace(
        d, status='available', owner=None, source=None)
        if d.status in report_mod.IN_USE else d for d in report.devices]
    pools = pools_mod.HostPools.from_report(dataclasses.replace(
        report, devices=devices))
    free = set()
    seen_groups: set[int] = set()
    for i, dev in enumerate(devices):
        if pools.state[i] is not None:
            continue
        group = pools.group_of[i]
        if len(pools.groups[group]) > 1:
            if group in seen_groups:
                continue
            seen_groups.add(group)
        free.add(dev.address)
    return free


def desired(report: report_mod.HostReport) -> dict[str, Desired]:
    """Our providers of ``report``, by address."""
    free = assignable(report)
    cells = _cells(report)
    by_address = {d.address: d for d in report.devices}
    vfs: dict[str, list[report_mod.Device]] = {}
    for dev in report.devices:
        if dev.dev_type == 'type-VF' and dev.parent_address:
            vfs.setdefault(dev.parent_address, []).append(dev)
    out: dict[str, Desired] = {}
    for dev in report.devices:
        if dev.dev_type == 'type-VF':
            continue
        name = provider_name(report.host, dev.address)
        own = _device_traits(dev, cells) | {
            TYPE[dev.dev_type], PRODUCT + dev.product_id.upper()}
        inv = {dev.resource_class: _inventory(
            1, 1 if dev.address in free else 0)}
        out[dev.address] = Desired(dev.address, name, inv, own, [dev])
    for pf_address, children in vfs.items():
        first = children[0]
        name = provider_name(report.host, pf_address)
        traits = _device_traits(first, cells) | {
            TYPE['type-VF'], VF_PRODUCT + first.product_id.upper(),
            VF_RC + first.resource_class}
        item = out.get(pf_address)
        odd = [v.address for v in children
               if (v.product_id, v.resource_class, v.tags, v.traits,
                   v.numa_node) != (first.product_id, first.resource_class,
                                    first.tags, first.traits,
                                    first.numa_node)]
        usable = [v for v in children
                  if v.address in free and v.address not in odd]
        vf_inv = _inventory(len(children), len(usable))
        problems = []
        if odd:
            problems.append(
                'VFs %s of PF %s differ from VF %s (product, resource '
                'class, tags, traits or NUMA node); one provider holds one '
                'kind of VF, so they are reserved' % (
                    ', '.join(odd), pf_address, first.address))
        if item is None:
            pf = by_address.get(pf_address)
            traits.add(PRODUCT + (pf.product_id.upper() if pf else '0000'))
            out[pf_address] = Desired(
                pf_address, name, {first.resource_class: vf_inv}, traits,
                list(children), problems)
            continue
        pf = item.devices[0]
        if (_device_traits(pf, cells) != _device_traits(first, cells)
                or pf.resource_class == first.resource_class):
            problems.append(
                'PF %s has other tags or traits than its VFs (or their '
                'resource class); it is only offered as VFs' % pf_address)
            item.inventories = {}
            item.traits = set()
        item.inventories[first.resource_class] = vf_inv
        item.traits |= traits
        item.devices.extend(children)
        item.problems.extend(problems)
    return out


def _inventory(total: int, usable: int) -> dict[str, int]:
    return {'total': total, 'reserved': total - usable, 'min_unit': 1,
            'max_unit': total, 'step_size': 1, 'allocation_ratio': 1}


def same_inventory(have: Mapping[str, Mapping[str, Any]],
                   want: Mapping[str, Mapping[str, int]]) -> bool:
    if set(have) != set(want):
        return False
    return all(int(have[rc].get(k, -1)) == v if k != 'allocation_ratio'
               else float(have[rc].get(k, 0)) == float(v)
               for rc, fields in want.items() for k, v in fields.items())


@dataclasses.dataclass(frozen=True)
class ProviderView:
    """One of our providers as an allocation-candidates summary shows it."""

    uuid: str
    address: str
    # rc -> (capacity, used)
    resources: dict[str, tuple[int, int]]
    traits: frozenset[str]

    def vf_rc(self) -> str | None:
        for trait in self.traits:
            if trait.startswith(VF_RC):
                return trait[len(VF_RC):]
        return None


def _value(traits: Iterable[str], prefix: str) -> str | None:
    for trait in traits:
        if trait.startswith(prefix):
            return trait[len(prefix):]
    return None


def sockets_of(traits: Iterable[str]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for trait in traits:
        if trait.startswith(CELL):
            cell, _, socket = trait[len(CELL):].partition('_SOCKET_')
            if cell.isdigit():
                out[int(cell)] = int(socket) if socket.isdigit() else None
    return out


def pool_facts(view: ProviderView) -> list[summary_mod.PoolFacts]:
    """The core's pool facts of one provider (one or two pools)."""
    traits = view.traits
    vendor = (_value(traits, VENDOR) or '0000').lower()
    numa = _value(traits, NUMA)
    node = int(numa) if numa and numa.isdigit() else None
    tags = dict(t for t in (_tag_of(x) for x in traits
                            if x.startswith(TAG)) if t)
    physnet = tags.get('physical_network')
    hidden = {_physnet(physnet)} if physnet else set()
    plain = frozenset(t for t in traits
                      if not t.startswith(PREFIX) and t not in hidden)
    vf_rc = view.vf_rc()
    vf_used = view.resources.get(vf_rc, (0, 0))[1] if vf_rc else 0
    out = []
    for rc, (capacity, used) in sorted(view.resources.items()):
        if rc == vf_rc:
            dev_type = 'type-VF'
            product = _value(traits, VF_PRODUCT) or '0000'
            free = capacity - used
        else:
            dev_type = ('type-PF' if TYPE['type-PF'] in traits
                        else 'type-PCI')
            product = _value(traits, PRODUCT) or '0000'
            # A PF serving VFs is not free as a whole device.
            free = 0 if vf_used else capacity - used
        out.append(summary_mod.PoolFacts(
            vendor_id=vendor, product_id=product.lower(), dev_type=dev_type,
            address=view.address, free=max(free, 0), total=capacity,
            numa_node=node, resource_class=rc, traits=plain,
            pool_tags=tags, hotplug_pool=HOTPLUG_POOL in traits))
    return out
