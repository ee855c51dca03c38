"""A picture of the host: NUMA nodes, bridges, IOMMU groups, PFs and VFs.

The verdicts are the agent's own: the report ``discover`` builds, the
viability ``pci.pools`` computes from it (the scheduler's view) and the
host-use checks ``bind`` refuses on (:mod:`safety`); nothing is judged
again here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import safety
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pci_ids
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod

PCI_IDS_PATHS = ('/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids',
                 '/usr/share/pci.ids')
# Verdicts, as the JSON says them.
ASSIGNABLE, IN_USE, NOT_ASSIGNABLE, HOST = ('assignable', 'in use',
                                            'not assignable', 'host')
# Device states that make a device never assignable (the others are
# "busy for now": a claim, a PF/VF or group mate in use).
NEVER = frozenset((explain.UNAVAILABLE, explain.IOMMU_DISABLED,
                   explain.IOMMU_GROUP))
NOT_LISTED = 'not listed in [pci] device_spec or [hotplug] device_spec'
BRIDGE_WHY = 'a PCI bridge: stays with the host and does not count ' \
    'against its IOMMU group'


def load_pci_ids(path: str | None = None) -> pci_ids.PciIds:
    """``path``, else the first of :data:`PCI_IDS_PATHS` that exists;
    empty names (ids only) when there is none.

    :raises: OSError when an explicitly given ``path`` cannot be read.
    """
    for candidate in ([path] if path else PCI_IDS_PATHS):
        try:
            with open(candidate, encoding='utf-8', errors='replace') as f:
                return pci_ids.PciIds.parse(f.read(), candidate)
        except OSError:
            if path:
                raise
    return pci_ids.PciIds()


@dataclasses.dataclass(slots=True)
class Node:
    """One box of the picture: ``kind`` numa, bus, bridge, group or
    device; ``attrs`` what is known about it."""

    kind: str
    name: str
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    children: list[Node] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {'kind': self.kind, 'name': self.name}
        out.update(self.attrs)
        out['children'] = [c.to_dict() for c in self.children]
        return out

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclasses.dataclass(slots=True)
class Topology:
    host: str
    iommu: report_mod.IommuState
    pci_ids: str | None
    roots: list[Node]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {'host': self.host,
                'iommu': {'enabled': self.iommu.enabled,
                          'interrupt_remapping':
                              self.iommu.interrupt_remapping},
                'pci_ids': self.pci_ids, 'notes': list(self.notes),
                'numa_nodes': [r.to_dict() for r in self.roots]}

    def device(self, address: str) -> Node | None:
        for root in self.roots:
            for node in root.walk():
                if node.kind in ('device', 'bridge') and node.name == address:
                    return node
        return None


def merge_claims(report: report_mod.HostReport,
                 stored: report_mod.HostReport | None) -> None:
    """Carry the store's status and owner of each device into the report
    discovery built (a fresh scan knows no claims)."""
    if stored is None:
        return
    known = {d.address: d for d in stored.devices}
    for dev in report.devices:
        old = known.get(dev.address)
        if old is not None:
            dev.status, dev.owner, dev.source = (old.status, old.owner,
                                                 old.source)


def parent_of(fs: sysfs_mod.Sysfs, info: discovery.PciInfo) -> str:
    """The device's upstream bridge, or its root bus (``pci0000:00``);
    a VF's parent is its PF."""
    if info.physfn:
        return info.physfn
    path = fs.realpath(fs.dev_rel(info.address))
    parent = os.path.basename(os.path.dirname(path))
    return addr.normalize(parent) if addr.PciAddress.is_valid(parent) \
        else parent


def assess(info: discovery.PciInfo, dev: report_mod.Device | None,
           state: str | None, host_uses: list[str],
           foreign: Mapping[int, tuple[str, ...]]) -> tuple[str, list[str]]:
    """The verdict and the reasons behind it."""
    if info.is_bridge:
        return HOST, [BRIDGE_WHY]
    why: list[str] = []
    if dev is None:
        why.append(NOT_LISTED)
    # A chain (enp1s0 -> br0 -> default route) says what uses it; the
    # other reasons (boot VGA, VFs enabled) are sentences already.
    why.extend('the host uses it: %s' % use if ' -> ' in use else use
               for use in host_uses)
    if state in NEVER:
        text = explain.STATE_TEXT[state or '']
        members = foreign.get(info.iommu_group or -1) \
            if state == explain.IOMMU_GROUP else None
        why.append('%s (%s)' % (text, ', '.join(members)) if members
                   else text)
    if why:
        return NOT_ASSIGNABLE, why
    if state:
        return IN_USE, [explain.STATE_TEXT[state]]
    return ASSIGNABLE, (['kept for hot-plugging by the agent']
                        if dev is not None and dev.hotplug_pool else [])


def _device_node(info: discovery.PciInfo, kind: str, ids: pci_ids.PciIds,
                 verdict: tuple[str, list[str]], held: list[str],
                 dev: report_mod.Device | None, role: str) -> Node:
    attrs: dict[str, Any] = {
        'role': role,
        'vendor_id': info.vendor_id, 'product_id': info.product_id,
        'vendor': ids.vendor(info.vendor_id),
        'device': ids.device(info.vendor_id, info.product_id),
        'class': info.class_code, 'class_name': ids.class_name(
            info.class_code),
        'driver': info.driver, 'netdevs': list(info.netdevs),
        'numa_node': info.numa_node, 'iommu_group': info.iommu_group,
        'assignable': verdict[0], 'why': verdict[1], 'held_by': held,
        'resource_class': dev.resource_class if dev else None,
    }
    if info.total_vfs:
        attrs['vfs'] = {'enabled': info.num_vfs, 'total': info.total_vfs}
    return Node(kind, info.address, attrs)


def build(fs: sysfs_mod.Sysfs, scan: discovery.Scan,
          report: report_mod.HostReport, *,
          ids: pci_ids.PciIds | None = None,
          usage: safety.HostUsage | None = None,
          holders: Mapping[str, list[str]] | None = None,
          notes: Iterable[str] = ()) -> Topology:
    """The tree of ``scan``, judged by ``report`` (claims merged in)."""
    ids = ids or pci_ids.PciIds()
    usage = usage or safety.HostUsage(fs)
    holders = holders or {}
    host_pools = pools_mod.HostPools.from_report(report)
    listed = {d.address: (i, d) for i, d in enumerate(report.devices)}
    parents = {a: parent_of(fs, i) for a, i in scan.devices.items()}
    kids: dict[str, list[str]] = {}
    for address, parent in sorted(parents.items()):
        kids.setdefault(parent, []).append(address)

    def device(address: str, role: str) -> Node:
        info = scan.devices[address]
        index, dev = listed.get(address, (-1, None))
        state = host_pools.state[index] if index >= 0 else None
        verdict = assess(info, dev, state, safety.reasons(usage, info),
                         report.iommu.foreign_members)
        node = _device_node(info, 'bridge' if info.is_bridge else 'device',
                            ids, verdict, list(holders.get(address, ())),
                            dev, role)
        node.children = below(address, info.is_bridge)
        return node

    def below(parent: str, grouped: bool,
              only: list[str] | None = None) -> list[Node]:
        """A bus's or bridge's children (bridges, then endpoints by
        IOMMU group); a PF's VFs directly."""
        out: list[Node] = []
        groups: dict[int | None, list[Node]] = {}
        for child in kids.get(parent, ()) if only is None else only:
            info = scan.devices[child]
            role = ('VF' if info.physfn else 'PF' if info.total_vfs
                    else 'bridge' if info.is_bridge else 'PCI')
            # A bridge on the root bus itself (pci0000:00 -> bus 00).
            if info.is_bridge and parent.startswith('pci') and \
                    child[5:7] == parent[-2:]:
                role = 'root port'
            node = device(child, role)
            if info.is_bridge or not grouped:
                out.append(node)
            else:
                groups.setdefault(info.iommu_group, []).append(node)
        for group in sorted(groups, key=lambda g: -1 if g is None else g):
            out.append(_group_node(group, groups[group], scan, report))
        return out

    roots: dict[int | None, Node] = {}
    for cell in discovery.numa_cells(fs):
        roots[cell.id] = Node('numa', 'NUMA node %d' % cell.id,
                              {'id': cell.id, 'socket': cell.socket})
    buses = sorted(k for k in kids if not addr.PciAddress.is_valid(k))
    for bus in buses:
        per_node: dict[int | None, list[str]] = {}
        for child in kids[bus]:
            per_node.setdefault(scan.devices[child].numa_node,
                                []).append(child)
        for numa, members in per_node.items():
            if numa not in roots:
                roots[numa] = Node('numa', 'NUMA node %s' % (
                    '-' if numa is None else numa), {'id': numa,
                                                     'socket': None})
            roots[numa].children.append(Node('bus', bus, {},
                                             below(bus, True, members)))
    order = sorted(roots, key=lambda n: (n is None, n or 0))
    return Topology(report.host, report.iommu, ids.source,
                    [roots[n] for n in order], list(notes))


def _group_node(group: int | None, members: list[Node],
                scan: discovery.Scan,
                report: report_mod.HostReport) -> Node:
    if group is None:
        return Node('group', 'no IOMMU group', {
            'id': None, 'viable': False,
            'why': ['the IOMMU is off: nothing can be assigned']}, members)
    foreign = report.iommu.foreign_members.get(group)
    listed = {d.address for d in report.devices}
    everyone = scan.members(group)
    why = []
    if foreign:
        why.append('%s cannot be assigned with the rest' % ', '.join(
            foreign))
    elif not listed & set(everyone):
        why.append('no member is listed in [pci] device_spec')
    return Node('group', 'IOMMU group %d' % group, {
        'id': group, 'viable': not why, 'why': why,
        'members': everyone}, members)


def _add(found: dict[str, list[str]], address: str, text: str) -> None:
    found.setdefault(address, [])
    if text not in found[address]:
        found[address].append(text)


def journal_holders(state_path: str, found: dict[str, list[str]],
                    notes: list[str]) -> None:
    """What the agent's intent journal says it bound."""
    if not os.path.exists(state_path):
        return
    try:
        journal = journal_mod.Journal(state_path)
    except exception.PassthroughException as exc:
        notes.append('journal not read: %s' % exc.message)
        return
    for address, record in journal.bound.items():
        _add(found, address, 'the agent (bound with %s; %s restores it)' % (
            record.binder, record.original_driver or 'no driver'))
    for address, (_record, error) in journal.failed.items():
        _add(found, address, 'the agent (a restore failed: %s)' % error)


def store_holders(stored: report_mod.HostReport | None,
                  found: dict[str, list[str]]) -> None:
    """Claims and allocations the report store records."""
    for dev in stored.devices if stored is not None else ():
        if dev.status in report_mod.IN_USE and dev.owner:
            _add(found, dev.address, 'instance %s (%s%s)' % (
                dev.owner, dev.status,
                ', %s' % dev.source if dev.source else ''))


def ledger_holders(url: str, host: str, found: dict[str, list[str]],
                   notes: list[str]) -> None:
    """Open ledger intervals of this host; an SQLite ledger that does not
    exist yet is not created."""
    if url.startswith('sqlite:///') and not os.path.exists(url[10:]):
        notes.append('no ledger at %s' % url[10:])
        return
    try:
        ledger = ledger_mod.Ledger(url)
    except exception.PassthroughException as exc:
        notes.append('ledger not read: %s' % exc.message)
        return
    try:
        for item in ledger.intervals(host=host, active=True):
            _add(found, item.host_address, 'instance %s since %s (ledger, '
                 '%s)' % (item.instance, item.start.isoformat(
                     timespec='seconds'), item.source))
    except exception.PassthroughException as exc:
        notes.append('ledger not read: %s' % exc.message)
    finally:
        ledger.close()
