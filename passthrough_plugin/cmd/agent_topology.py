"""``passthrough-agent topology``: the host's PCI tree as text, dot or JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import hotplug_pool
from passthrough_plugin.agent import service
from passthrough_plugin.agent import topology
from passthrough_plugin.pci import report as report_mod

LOG = logging.getLogger(__name__)
FORMATS = ('text', 'dot', 'json')
COLOURS = {topology.ASSIGNABLE: 'palegreen', topology.IN_USE: 'gold',
           topology.NOT_ASSIGNABLE: 'lightpink', topology.HOST: 'lightgrey'}


def add_parser(sub: Any, parents: Sequence[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        'topology', parents=list(parents),
        help='draw NUMA nodes, PCIe ports and bridges, IOMMU groups, PFs '
        'and VFs, with what can be assigned and who holds it',
        description='The host\'s PCI tree: each device with its driver, '
        'names (from pci.ids when present), whether it can be assigned '
        'and why not, and who holds it (the agent\'s journal, the report '
        'store\'s claims, the ledger).')
    parser.add_argument('--format', choices=FORMATS, default='text',
                        help='text (a tree, default), dot (graphviz) or '
                        'json')
    parser.add_argument('--pci-ids', metavar='PATH', default=None,
                        help='a pci.ids file (default: the first of %s; '
                        'ids only without one)' % ', '.join(
                            topology.PCI_IDS_PATHS))
    parser.add_argument('--offline', action='store_true',
                        help='do not ask the report store or the ledger '
                        'who holds devices (the journal is still read)')
    return parser


def gather(agent: service.Agent, pci_ids_path: str | None,
           offline: bool = False) -> topology.Topology:
    """Scan, build the report, ask who holds what, draw.

    :raises: OSError when ``pci_ids_path`` cannot be read.
    """
    scan = discovery.scan(agent.fs)
    host = agent.conf.agent.host
    report = hotplug_pool.build_report(agent.fs, agent.specs,
                                       agent.hotplug_specs, host, scan)
    notes: list[str] = []
    holders: dict[str, list[str]] = {}
    topology.journal_holders(agent.state_path, holders, notes)
    stored: report_mod.HostReport | None = None
    if not offline:
        try:
            stored = agent.store.get(host)
        except exception.HostReportNotFound:
            notes.append('the report store has no report of %s yet: no '
                         'claims known' % host)
        except exception.PassthroughException as exc:
            notes.append('claims not read: %s' % exc.message)
        topology.merge_claims(report, stored)
        topology.store_holders(stored, holders)
        if 'lifecycle' in agent.conf:
            topology.ledger_holders(agent.conf.lifecycle.connection, host,
                                    holders, notes)
    return topology.build(agent.fs, scan, report,
                          ids=topology.load_pci_ids(pci_ids_path),
                          holders=holders, notes=notes)


# -- text ---------------------------------------------------------------------
def _names(attrs: dict[str, Any]) -> str:
    names = ' '.join(n for n in (attrs.get('vendor'), attrs.get('device'))
                     if n)
    return (' ' + names) if names else (
        ' (%s)' % attrs['class_name'] if attrs.get('class_name') else '')


def device_line(node: topology.Node) -> str:
    a = node.attrs
    parts = ['%s %s %s:%s%s' % (node.name, a['role'], a['vendor_id'],
                               a['product_id'], _names(a))]
    parts.append('driver %s' % (a['driver'] or 'none'))
    if a['netdevs']:
        parts.append(','.join(a['netdevs']))
    if 'vfs' in a:
        parts.append('VFs %d/%d' % (a['vfs']['enabled'], a['vfs']['total']))
    if a['role'] in ('VF', 'bridge', 'root port'):
        parts.append('group %s' % ('-' if a['iommu_group'] is None
                                   else a['iommu_group']))
    verdict = a['assignable']
    if verdict == topology.HOST:
        parts.append('stays with the host')
    else:
        parts.append(verdict + (': ' + '; '.join(a['why'])
                                if a['why'] else ''))
    if a['held_by']:
        parts.append('held by ' + '; '.join(a['held_by']))
    return ' | '.join(parts)


def node_line(node: topology.Node) -> str:
    if node.kind in ('device', 'bridge'):
        return device_line(node)
    if node.kind == 'numa':
        socket = node.attrs.get('socket')
        return node.name + ('' if socket is None else ' (socket %d)' %
                            socket) + ('' if node.attrs.get('id') is not None
                                       else ' (no NUMA affinity)')
    if node.kind == 'bus':
        return '%s (PCI root bus)' % node.name
    # Viability of the group as a unit; each member has its own verdict.
    why = node.attrs.get('why') or []
    return node.name + (': not viable: ' + '; '.join(why) if why
                        else ' (viable)')


def render_text(topo: topology.Topology) -> str:
    iommu = topo.iommu
    lines = ['%s: IOMMU %s, interrupt remapping %s; %s' % (
        topo.host, 'on' if iommu.enabled else 'OFF',
        {True: 'on', False: 'OFF', None: 'unknown'}[
            iommu.interrupt_remapping],
        'names from %s' % topo.pci_ids if topo.pci_ids
        else 'no pci.ids found: ids only')]

    def walk(node: topology.Node, lead: str, last: bool, top: bool) -> None:
        branch = '' if top else ('└─ ' if last else '├─ ')
        lines.append(lead + branch + node_line(node))
        inner = lead + ('' if top else ('   ' if last else '│  '))
        for i, child in enumerate(node.children):
            walk(child, inner, i == len(node.children) - 1, False)

    for root in topo.roots:
        walk(root, '', True, True)
    lines.extend('note: %s' % n for n in topo.notes)
    return '\n'.join(lines)


# -- dot ----------------------------------------------------------------------
def _quote(text: str) -> str:
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"').replace(
        '\n', '\\n')


def render_dot(topo: topology.Topology) -> str:
    lines = ['digraph topology {', '  rankdir=LR;',
             '  label=%s;' % _quote('PCI topology of %s' % topo.host),
             '  node [shape=box, fontname="monospace", fontsize=10];']
    ids: dict[int, str] = {}

    def key(node: topology.Node) -> str:
        if id(node) not in ids:
            ids[id(node)] = 'n%d' % len(ids)
        return ids[id(node)]

    def walk(node: topology.Node) -> None:
        if node.kind in ('device', 'bridge'):
            a = node.attrs
            label = '\n'.join(x for x in (
                '%s %s' % (node.name, a['role']),
                '%s:%s%s' % (a['vendor_id'], a['product_id'], _names(a)),
                'driver %s%s' % (a['driver'] or 'none', ' ' + ','.join(
                    a['netdevs']) if a['netdevs'] else ''),
                a['assignable'] + (': ' + '; '.join(a['why'])
                                   if a['why'] and a['assignable'] !=
                                   topology.HOST else ''),
                'held by ' + '; '.join(a['held_by']) if a['held_by']
                else '') if x)
            style = ', style=filled, fillcolor=%s' % COLOURS[a['assignable']]
        else:
            label = node_line(node)
            style = {'numa': ', shape=house', 'bus': ', shape=oval',
                     'group': ', style=dashed'}.get(node.kind, '')
        lines.append('  %s [label=%s%s];' % (key(node), _quote(label),
                                              style))
        for child in node.children:
            walk(child)
            lines.append('  %s -> %s;' % (key(node), key(child)))

    for root in topo.roots:
        walk(root)
    lines.append('}')
    return '\n'.join(lines)


def cmd_topology(agent: service.Agent, args: argparse.Namespace) -> int:
    topo = gather(agent, args.pci_ids, args.offline)
    if args.format == 'json':
        print(json.dumps(topo.to_dict(), indent=2, sort_keys=True))
    elif args.format == 'dot':
        print(render_dot(topo))
    else:
        print(render_text(topo))
    return 0
