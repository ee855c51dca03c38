"""``openstack pci billing report``: device-hours from the ledger."""

from __future__ import annotations

import argparse
from typing import Any

from osc_lib.command import command

from passthrough_plugin.cmd import billing as billing_cmd
from passthrough_plugin.lifecycle import billing
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.osc import common


class BillingReport(command.Lister):
    """Report PCI device-hours per project, server, resource class and source.

    Device use in the half-open period [--from, --to), to the second, flavor
    devices and hot-plugged add-ons apart; devices still held count until
    now. With --totals: one row per project and source (flavor, hotplug,
    all). With a cloud, project and server names beside the IDs.
    """

    auth_required = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--from', dest='start', metavar='<time>', required=True,
            help='start of the period, ' + billing_cmd.DATE_HELP)
        parser.add_argument(
            '--to', dest='end', metavar='<time>', required=True,
            help='end of the period (excluded), same forms as --from')
        parser.add_argument('--project', metavar='<project-id>',
                            help='only this project ID')
        parser.add_argument('--totals', action='store_true',
                            help='per-project totals instead of the lines')
        common.add_ledger_options(parser, 'project and server')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        conf = common.conf(self.app)
        with common.errors():
            start, end = billing_cmd.period(parsed_args.start,
                                            parsed_args.end)
            ledger = ledger_mod.Ledger(
                billing_cmd.ledger_url(parsed_args, conf))
            try:
                report = billing.report(ledger, start, end,
                                        parsed_args.project)
            finally:
                ledger.close()
        if parsed_args.totals:
            rows = report.totals()
            columns = list(billing.TOTAL_COLUMNS)
        else:
            rows = [line.to_dict() for line in report.lines]
            columns = [(k, 'Server' if k == 'instance' else h)
                       for k, h in billing.LINE_COLUMNS]
        return common.lister(rows, common.named(
            self.app, rows, columns, skip=parsed_args.no_names))
