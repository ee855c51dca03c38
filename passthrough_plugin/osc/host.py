"""``openstack pci host list|show``: the hosts of the report store."""

from __future__ import annotations

import argparse
from typing import Any

from osc_lib.cli import format_columns
from osc_lib.command import command

from passthrough_plugin.osc import common
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base
from passthrough_plugin.store import loader

LIST_COLUMNS = (('host', 'Host'), ('generation', 'Generation'),
                ('devices', 'Devices'), ('free', 'Free'),
                ('in_use', 'In use'), ('unavailable', 'Unavailable'),
                ('reported_at', 'Reported at'))
DEVICE_KEYS = ('address', 'dev_type', 'vendor_id', 'product_id',
               'resource_class', 'numa_node', 'iommu_group', 'driver',
               'parent_address', 'status', 'owner')
POOL_KEYS = ('address', 'dev_type', 'vendor_id', 'product_id',
             'resource_class', 'numa_node', 'free', 'total')


def device_counts(report: report_mod.HostReport) -> dict[str, Any]:
    """A device-level host (file store): its devices by status."""
    statuses = [d.status for d in report.devices]
    return {
        'host': report.host, 'generation': report.generation,
        'devices': len(statuses), 'free': statuses.count('available'),
        'in_use': sum(s in report_mod.IN_USE for s in statuses),
        'unavailable': sum(s not in report_mod.IN_USE and s != 'available'
                           for s in statuses),
        'reported_at': report.reported_at}


def pool_counts(facts: base.HostFacts) -> dict[str, Any]:
    """A pool-level host (Placement): capacity and free, no device states.

    Placement keeps no report time and no per-device status: those
    columns stay empty rather than guessed.
    """
    total = sum(p.total for p in facts.pools)
    free = sum(p.free for p in facts.pools)
    return {'host': facts.host, 'generation': facts.generation,
            'devices': total, 'free': free, 'in_use': total - free,
            'unavailable': None, 'reported_at': None}


def counts(store: base.ReportStore, host: str) -> dict[str, Any]:
    """:raises: HostReportNotFound, StoreUnavailable"""
    if isinstance(store, base.PoolLevelStore):
        return pool_counts(store.facts(host))
    return device_counts(store.get(host))


class ListHost(command.Lister):
    """List the hosts of the report store with their PCI device counts.

    A Placement store counts devices per pool (a PF's VFs are one pool):
    "In use" is what Placement has allocated or reserved.
    """

    auth_required = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--host', metavar='<host>', action='append', dest='hosts',
            help='only this host (repeatable)')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        conf = common.conf(self.app)
        with common.errors():
            store = loader.load_store(conf)
            names = store.hosts()
            if parsed_args.hosts:
                wanted = set(parsed_args.hosts)
                names = [h for h in names if h in wanted]
            rows = [counts(store, host) for host in names]
        return common.lister(rows, LIST_COLUMNS)


class ShowHost(command.ShowOne):
    """Show one host of the report store: IOMMU, NUMA cells, devices, pools."""

    auth_required = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='the host name, as its agent reports it')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        conf = common.conf(self.app)
        with common.errors():
            store = loader.load_store(conf)
            report = store.get(parsed_args.host)
            data = counts(store, parsed_args.host)
            pools = []
            if isinstance(store, base.PoolLevelStore):
                pools = [{k: getattr(p, k) for k in POOL_KEYS}
                         for p in store.facts(parsed_args.host).pools]
        data['store'] = conf.report_store.driver
        data['iommu'] = 'on' if report.iommu.enabled else 'off'
        data['numa_cells'] = format_columns.ListColumn(
            [c.id for c in report.numa_cells])
        data['unassignable_iommu_groups'] = format_columns.DictColumn({
            str(group): ', '.join(members) for group, members in
            sorted(report.iommu.foreign_members.items())})
        data['device_list'] = format_columns.ListDictColumn([
            {k: v for k, v in d.to_dict().items() if k in DEVICE_KEYS}
            for d in report.devices])
        data['pool_list'] = format_columns.ListDictColumn(pools)
        keys = tuple(sorted(data))
        return keys, tuple(data[k] for k in keys)
