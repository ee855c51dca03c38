"""``passthrough-billing``: device-hours per instance, project and source."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from oslo_config import cfg

from passthrough_plugin import connection
from passthrough_plugin import exception
from passthrough_plugin.cmd import common
from passthrough_plugin.conf import lifecycle as conf_lifecycle
from passthrough_plugin.lifecycle import billing
from passthrough_plugin.lifecycle import formatting
from passthrough_plugin.lifecycle import ledger as ledger_mod

PROG = 'passthrough-billing'
EXIT_USAGE = 2
EXIT_FAILURE = 1
DATE_HELP = ('an ISO 8601 date or time in UTC unless an offset is given, '
             'e.g. 2026-11-01 or 2026-11-01T08:30:00Z')


class OneLineParser(argparse.ArgumentParser):
    """Bad input is one line naming the field and the value; exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, '%s: error: %s\n' % (self.prog, message))


def parse_time(field: str, value: str) -> datetime.datetime:
    """A date (midnight UTC) or a date and time; naive means UTC.

    :raises: InvalidLedgerInput naming ``field``.
    """
    text = value.strip()
    if text.endswith(('Z', 'z')):
        text = text[:-1] + '+00:00'
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise exception.InvalidLedgerInput(
            field=field, value=value, reason='expected %s' % DATE_HELP
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def period(start: str, end: str
           ) -> tuple[datetime.datetime, datetime.datetime]:
    """``--from`` and ``--to`` in UTC, ``--from`` first (also for OSC).

    :raises: InvalidLedgerInput naming the field.
    """
    first = parse_time('--from', start)
    last = parse_time('--to', end)
    if first >= last:
        raise exception.InvalidLedgerInput(
            field='--from', value=start, reason='must be before --to %s'
            % end)
    return first, last


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG, description='Device-hours from the passthrough-plugin '
        'ledger: flavor devices and hot-plugged add-ons apart.')
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='PATH',
        help='passthrough-plugin configuration ([lifecycle] connection); '
        'repeatable; default: the usual oslo.config locations')
    parser.add_argument(
        '--ledger', metavar='URL',
        help='SQLAlchemy URL of the ledger, overriding [lifecycle] '
        'connection')
    common.add_debug_option(parser)
    commands = parser.add_subparsers(dest='command', required=True,
                                     parser_class=OneLineParser)
    rep = commands.add_parser(
        'report', help='device-hours in [--from, --to)',
        description='Device use in the half-open period [--from, --to), '
        'per project, instance, resource class and source (flavor or '
        'hotplug), to the second, with per-project totals. Devices still '
        'held count until now.')
    rep.add_argument('--from', dest='start', required=True, metavar='TIME',
                     help='start of the period, ' + DATE_HELP)
    rep.add_argument('--to', dest='end', required=True, metavar='TIME',
                     help='end of the period (excluded)')
    rep.add_argument('--project', help='only this project ID')
    rep.add_argument('--format', choices=formatting.FORMATS,
                     default='table', help='output format (default: table)')
    connection.add_arguments(rep)
    rep.add_argument('--no-names', action='store_true',
                     help='do not ask the cloud for project and server '
                     'names (the report is made from the ledger alone)')
    his = commands.add_parser(
        'history', help='the device intervals and events of an instance',
        description='Every device interval of an instance (host, host '
        'and guest address, source, start, end and why it ended: '
        'deleted, detached, evacuated, lost on evacuate with the reason) '
        'and the lifecycle events.')
    his.add_argument('--instance', required=True, metavar='UUID')
    his.add_argument('--format', choices=formatting.FORMATS,
                     default='table', help='output format (default: table)')
    for sub in (rep, his):
        common.add_debug_option(sub, sub=True)
    return parser


INTERVAL_COLUMNS = (('host', 'Host'), ('host_address', 'Host address'),
                    ('guest_address', 'Guest address'), ('source', 'Source'),
                    ('resource_class', 'Resource class'),
                    ('start', 'Start'), ('end', 'End'),
                    ('end_reason', 'End reason'))
EVENT_COLUMNS = (('at', 'At'), ('action', 'Action'), ('host', 'Host'),
                 ('detail', 'Detail'))


def history(args: argparse.Namespace, ledger: ledger_mod.Ledger) -> str:
    ledger.instance(args.instance, '--instance')
    intervals = [i.to_dict() for i in
                 ledger.intervals(instance=args.instance)]
    events = [{'at': e.at, 'action': e.action, 'host': e.host,
               'detail': e.detail} for e in ledger.events(args.instance)]
    if args.format == 'json':
        return json.dumps({'intervals': intervals, 'events': [
            {k: formatting.jsonable(v) for k, v in e.items()}
            for e in events]}, indent=2, sort_keys=True)
    if args.format == 'csv':
        return formatting.to_csv(intervals, INTERVAL_COLUMNS)
    return '\n'.join((formatting.table(intervals, INTERVAL_COLUMNS),
                      formatting.table(events, EVENT_COLUMNS)))


def load_conf(config_files: Sequence[str]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf_lifecycle.register_opts(conf)
    try:
        conf(args=[], project='passthrough-plugin',
             default_config_files=list(config_files) or None)
    except UnicodeDecodeError:
        raise exception.InvalidConfig(
            group='-', option='--config-file', value=' '.join(config_files),
            reason='not UTF-8 text; an oslo.config INI file') from None
    return conf


def ledger_url(args: argparse.Namespace, conf: cfg.ConfigOpts) -> str:
    """``--ledger`` if given, else ``[lifecycle] connection``."""
    return str(getattr(args, 'ledger', None) or conf.lifecycle.connection)


NAMED_LINE_COLUMNS = (('project', 'Project'), ('project_name', 'Project name'),
                      ('instance', 'Instance'),
                      ('instance_name', 'Instance name')) + tuple(
    c for c in billing.LINE_COLUMNS if c[0] not in ('project', 'instance'))
NAMED_TOTAL_COLUMNS = (('project', 'Project'),
                       ('project_name', 'Project name')) + tuple(
    c for c in billing.TOTAL_COLUMNS if c[0] != 'project')


def cloud_names(args: argparse.Namespace) -> dict[str, str] | None:
    """id -> name of projects and servers when a cloud is configured
    (``--os-cloud``, ``OS_CLOUD``, ``OS_AUTH_URL``), else None: the report
    works offline.

    :raises UnknownCloud, CloudUnavailable: a configured cloud fails.
    """
    if getattr(args, 'no_names', False) or not connection.configured(args):
        return None
    conn = connection.from_args(args)
    try:
        return connection.names(conn)
    finally:
        conn.close()


def _named(rows: list[dict[str, Any]], names: dict[str, str]
           ) -> list[dict[str, Any]]:
    for row in rows:
        row['project_name'] = names.get(row.get('project') or '', '')
        if 'instance' in row:
            row['instance_name'] = names.get(row['instance'] or '', '')
    return rows


def render(report: billing.Report, fmt: str,
           names: dict[str, str] | None = None) -> str:
    """The report; with ``names``, project and server names beside ids."""
    line_columns: tuple[tuple[str, str], ...] = billing.LINE_COLUMNS
    total_columns: tuple[tuple[str, str], ...] = billing.TOTAL_COLUMNS
    if names is not None:
        line_columns, total_columns = NAMED_LINE_COLUMNS, NAMED_TOTAL_COLUMNS
    if fmt == 'json':
        data = report.to_dict()
        if names is not None:
            _named(data['lines'], names)
            _named(data['totals'], names)
        return json.dumps(data, indent=2, sort_keys=True)
    lines = [line.to_dict() for line in report.lines]
    totals = report.totals()
    if names is not None:
        _named(lines, names)
        _named(totals, names)
    if fmt == 'csv':
        return formatting.to_csv(lines, line_columns)
    period = 'Device use from %s to %s (half-open, UTC)' % (
        formatting.cell(report.start), formatting.cell(report.end))
    if not lines:
        return period + '\nNo device was held in this period.'
    return '\n'.join((period,
                      formatting.table(lines, line_columns),
                      'Totals',
                      formatting.table(totals, total_columns)))


def run(args: argparse.Namespace, conf: cfg.ConfigOpts) -> str:
    if args.command == 'history':
        ledger = ledger_mod.Ledger(ledger_url(args, conf))
        try:
            return history(args, ledger)
        finally:
            ledger.close()
    start, end = period(args.start, args.end)
    ledger = ledger_mod.Ledger(ledger_url(args, conf))
    try:
        with common.Progress('summing device intervals') as progress:
            found = billing.report(ledger, start, end, args.project,
                                   progress)
        return render(found, args.format, cloud_names(args))
    finally:
        ledger.close()


@common.console(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.setup_logging(PROG, args.debug)
    try:
        conf = load_conf(args.config_file)
        print(run(args, conf))
    except (exception.Invalid, exception.UnknownInstance) as exc:
        print('%s: error: %s' % (PROG, exc), file=sys.stderr)
        return EXIT_USAGE
    except (exception.PassthroughException, cfg.Error) as exc:
        print('%s: error: %s' % (PROG, exc), file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == '__main__':
    sys.exit(main())
