"""A host's devices laid out as pools, PF/VF links and IOMMU groups.

This is the data the pool state machine (:mod:`pools`), nova's pool order
(:mod:`pool_order`) and the explanations (:mod:`explain`) all read; it
sits below the three so that their imports form a DAG.

What depends only on the hardware (addresses, PF/VF links, IOMMU groups,
which pool each device joins) is a :class:`Skeleton`, built once per
hardware model and shared, read-only, by every host with the same devices:
rebuilding a host whose usage changed only reads the devices' states.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from passthrough_plugin import exception
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import matching
from passthrough_plugin.pci import report as report_mod

# Skeletons kept; past this many distinct models the cache starts over.
SKELETON_CACHE_SIZE = 256
# What of a device decides its place in the skeleton (tags apart: a dict).
_HARDWARE = operator.attrgetter(
    'address', 'parent_address', 'iommu_group', 'vendor_id', 'product_id',
    'dev_type', 'resource_class', 'traits', 'null_tags', 'parent_ifname',
    'hotplug_pool', 'numa_node')
_SKELETONS: dict[tuple[object, ...], Skeleton] = {}


class Pool:
    """Devices of one signature, NUMA node and PF (or own) address."""

    __slots__ = ('sig', 'numa_node', 'address', 'members', 'free',
                 'stamp', 'queue')

    def __init__(self, sig: matching.Signature, numa_node: int | None,
                 address: str, members: Sequence[int] = ()) -> None:
        self.sig = sig
        self.numa_node = numa_node
        self.address = address
        # Shared with the skeleton: never changed after it is built.
        self.members: Sequence[int] = members
        # Assignable devices, in the order they joined the pool.
        self.free: Sequence[int] = ()
        # nova's view: when the pool was listed (None: not listed) and
        # the devices in it, in join order.
        self.stamp: int | None = None
        self.queue: list[int] = []


class Skeleton:
    """What the pools of a report depend on besides the devices' states.

    ``addresses``: per device, its address; ``pool_keys``: per pool
    (signature, NUMA node, address, members);
    ``pool_index``: per device, its pool's position there; ``by_address``,
    ``parent``, ``children``, ``group_of``, ``groups``: the devices' links;
    ``by_address_order``: device indices in address order; ``multi``: the
    IOMMU groups of several devices; ``pf_vf_groups``: groups that hold a
    VF and its PF (binding them would destroy the VFs); ``linked``: the
    devices whose PF is in the report. Read-only: hosts of one model share
    it.
    """

    __slots__ = ('addresses', 'by_address', 'parent', 'children',
                 'group_of', 'groups',
                 'pool_keys', 'pool_index', 'by_address_order', 'multi',
                 'pf_vf_groups', 'linked', '__weakref__')

    def __init__(self, report: report_mod.HostReport) -> None:
        devices = report.devices
        self.addresses = tuple([d.address for d in devices])
        self.by_address = {d.address: i for i, d in enumerate(devices)}
        n = len(devices)
        parent: list[int] = [-1] * n
        children: dict[int, list[int]] = {}
        group_of: list[int] = [0] * n
        groups: dict[int, list[int]] = {}
        keys: dict[tuple[object, ...], int] = {}
        pool_keys: list[tuple[matching.Signature, int | None, str,
                              list[int]]] = []
        pool_index: list[int] = [0] * n
        for i, dev in enumerate(devices):
            up = self.by_address.get(dev.parent_address or '', -1)
            parent[i] = up
            if up >= 0:
                children.setdefault(up, []).append(i)
            # Devices with no IOMMU group stand alone (negative keys).
            group = dev.iommu_group if dev.iommu_group is not None \
                else -1 - i
            group_of[i] = group
            groups.setdefault(group, []).append(i)
            try:
                vendor = int(dev.vendor_id, 16)
                product = int(dev.product_id, 16)
            except ValueError:
                raise exception.InvalidHostReport(
                    host=report.host, path='$.devices[%d]' % i,
                    reason='vendor_id/product_id are not hex') from None
            sig = matching.signature(
                vendor, product, dev.dev_type,
                tuple(sorted((k, v) for k, v in dev.tags.items()
                             if k not in device_spec.PLACEMENT_TAGS)),
                dev.resource_class, frozenset(dev.traits),
                tuple(sorted(dev.null_tags)), dev.parent_ifname,
                dev.hotplug_pool)
            pool_address = dev.parent_address or dev.address
            key = (sig, dev.numa_node, pool_address)
            k = keys.get(key)
            if k is None:
                k = keys[key] = len(pool_keys)
                pool_keys.append((sig, dev.numa_node, pool_address, []))
            pool_keys[k][3].append(i)
            pool_index[i] = k
        self.parent = tuple(parent)
        self.children = {up: tuple(kids) for up, kids in children.items()}
        self.group_of = tuple(group_of)
        self.groups = {g: tuple(members) for g, members in groups.items()}
        self.pool_keys = tuple((sig, node, address, tuple(members))
                               for sig, node, address, members in pool_keys)
        self.pool_index = tuple(pool_index)
        self.by_address_order = tuple(sorted(
            range(n), key=lambda i: devices[i].address))
        self.multi = tuple(members for members in self.groups.values()
                           if len(members) > 1)
        self.pf_vf_groups = tuple(
            members for members in self.multi
            if any(parent[m] >= 0 and group_of[parent[m]] == group_of[m]
                   for m in members))
        # The devices with a PF in the report (ints: no pair per device).
        self.linked = tuple(i for i, up in enumerate(parent) if up >= 0)


def skeleton(report: report_mod.HostReport) -> Skeleton:
    """The shared skeleton of ``report``'s hardware.

    :raises: InvalidHostReport
    """
    devices = report.devices
    try:
        key = (tuple(map(_HARDWARE, devices)),
               tuple([(i, tuple(d.tags.items()))
                      for i, d in enumerate(devices) if d.tags]))
        found = _SKELETONS.get(key)
    except TypeError:  # something unhashable: build it, do not keep it
        return Skeleton(report)
    if found is None:
        found = Skeleton(report)
        if len(_SKELETONS) >= SKELETON_CACHE_SIZE:
            _SKELETONS.clear()
        _SKELETONS[key] = found
    return found


def forget() -> None:
    """Drop the shared skeletons (hosts keep theirs; later hosts build
    new ones): what a process starting now would hold, for measuring."""
    _SKELETONS.clear()


class PoolLayout:
    """The pools, PF/VF links and IOMMU groups of one host's report.

    ``state[i]`` says why device ``i`` cannot be handed out now (one of
    :mod:`explain`'s state codes, None: assignable); ``join`` and
    ``clock`` are nova's pool order (:mod:`pool_order`). Both are filled
    in by :class:`pools.HostPools`. The links (``parent``, ``children``,
    ``group_of``, ``groups``, ``by_address``) are the shared skeleton's:
    read them, never change them.
    """

    __slots__ = ('host', 'report', 'devices', 'pools', 'by_address',
                 'parent', 'children', 'group_of', 'groups', 'sockets',
                 'state', 'iommu_enabled', 'blocked_groups', 'pool_of',
                 'join', 'clock', 'skeleton')

    def __init__(self, report: report_mod.HostReport) -> None:
        self.host = report.host
        self.report = report
        self.devices = report.devices
        self.iommu_enabled = report.iommu.enabled
        self.sockets = {c.id: c.socket for c in report.numa_cells}
        shape = self.skeleton = skeleton(report)
        self.by_address = shape.by_address
        self.parent = shape.parent
        self.children = shape.children
        self.group_of = shape.group_of
        self.groups = shape.groups
        foreign = report.iommu.foreign_members
        self.blocked_groups = {g for g, members in foreign.items()
                               if members} if foreign else set()
        self.pools = pools = [Pool(sig, node, address, members)
                              for sig, node, address, members
                              in shape.pool_keys]
        self.pool_of: list[Pool] = [pools[k] for k in shape.pool_index]
        n = len(self.devices)
        self.join: list[int | None] = [None] * n
        self.clock = 0
        self.state: list[str | None] = [None] * n
