"""A host's devices laid out as pools, PF/VF links and IOMMU groups.

This is the data the pool state machine (:mod:`pools`), nova's pool order
(:mod:`pool_order`) and the explanations (:mod:`explain`) all read; it
sits below the three so that their imports form a DAG.
"""

from __future__ import annotations

from passthrough_plugin import exception
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import matching
from passthrough_plugin.pci import report as report_mod


class Pool:
    """Devices of one signature, NUMA node and PF (or own) address."""

    __slots__ = ('sig', 'numa_node', 'address', 'members', 'free',
                 'stamp', 'queue')

    def __init__(self, sig: matching.Signature, numa_node: int | None,
                 address: str) -> None:
        self.sig = sig
        self.numa_node = numa_node
        self.address = address
        self.members: list[int] = []
        # Assignable devices, in the order they joined the pool.
        self.free: list[int] = []
        # nova's view: when the pool was listed (None: not listed) and
        # the devices in it, in join order.
        self.stamp: int | None = None
        self.queue: list[int] = []


class PoolLayout:
    """The pools, PF/VF links and IOMMU groups of one host's report.

    ``state[i]`` says why device ``i`` cannot be handed out now (one of
    :mod:`explain`'s state codes, None: assignable); ``join`` and
    ``clock`` are nova's pool order (:mod:`pool_order`). Both are filled
    in by :class:`pools.HostPools`.
    """

    __slots__ = ('host', 'report', 'devices', 'pools', 'by_address',
                 'parent', 'children', 'group_of', 'groups', 'sockets',
                 'state', 'iommu_enabled', 'blocked_groups', 'pool_of',
                 'join', 'clock')

    def __init__(self, report: report_mod.HostReport) -> None:
        self.host = report.host
        self.report = report
        self.devices = report.devices
        self.iommu_enabled = report.iommu.enabled
        self.sockets = {c.id: c.socket for c in report.numa_cells}
        self.by_address = {d.address: i for i, d in enumerate(self.devices)}
        n = len(self.devices)
        self.parent: list[int] = [-1] * n
        self.children: dict[int, list[int]] = {}
        self.group_of: list[int] = [0] * n
        self.groups: dict[int, list[int]] = {}
        self.blocked_groups = {
            g for g, members in report.iommu.foreign_members.items()
            if members}
        pools: dict[tuple[object, ...], Pool] = {}
        for i, dev in enumerate(self.devices):
            parent = self.by_address.get(dev.parent_address or '', -1)
            self.parent[i] = parent
            if parent >= 0:
                self.children.setdefault(parent, []).append(i)
            # Devices with no IOMMU group stand alone (negative keys).
            group = dev.iommu_group if dev.iommu_group is not None \
                else -1 - i
            self.group_of[i] = group
            self.groups.setdefault(group, []).append(i)
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
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = Pool(sig, dev.numa_node, pool_address)
            pool.members.append(i)
        self.pools = list(pools.values())
        self.pool_of: list[Pool] = [self.pools[0]] * n if n else []
        for pool in self.pools:
            for i in pool.members:
                self.pool_of[i] = pool
        self.join: list[int | None] = [None] * n
        self.clock = 0
        self.state: list[str | None] = [None] * n
