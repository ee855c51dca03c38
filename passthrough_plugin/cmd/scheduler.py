"""``passthrough-scheduler``: select, explain, claim and release."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin import connection
from passthrough_plugin import exception
from passthrough_plugin.cmd import common
from passthrough_plugin.pci import limits
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.scheduler import examples

LOG = logging.getLogger(__name__)
PROG = 'passthrough-scheduler'
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: exit 2 with one line."""


def _extra_spec(text: str) -> tuple[str, str]:
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            '--extra-spec %r is not KEY=VALUE, e.g. '
            'pci_passthrough:alias=vf:2' % text)
    return key.strip(), value.strip()


def _cells(text: str) -> list[int]:
    try:
        cells = [int(c) for c in text.split(',') if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            '--numa-cells %r must be NUMA node ids separated by commas, '
            'e.g. 0 or 0,1' % text) from None
    if not cells or any(c < 0 for c in cells):
        raise argparse.ArgumentTypeError(
            '--numa-cells %r must name at least one node id >= 0' % text)
    return cells


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG, description='Place PCI passthrough requests on the hosts '
        'of the report store, and explain the answer.')
    top.add_argument('--config-file', action='append', default=[],
                     metavar='PATH', help='an oslo.config file with [pci] '
                     'alias, [report_store], [file_store] and '
                     '[passthrough_scheduler]; repeatable')
    top.add_argument('--store-path', metavar='DIR',
                     help='override [file_store] path')
    top.add_argument('--format', choices=('table', 'json'), default='table')
    common.add_debug_option(top)
    connection.add_arguments(top)
    sub = top.add_subparsers(dest='command', required=True)

    def requesting(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument('--extra-spec', action='append', default=[],
                         type=_extra_spec, metavar='KEY=VALUE',
                         help='a flavor extra spec, e.g. '
                         'pci_passthrough:alias=vf:2; repeatable')
        cmd.add_argument('--flavor', metavar='NAME|ID',
                         help="the extra specs of this nova flavor (read "
                         "from the cloud of --os-cloud); --extra-spec "
                         "values are added to them and win")
        cmd.add_argument('--numa-cells', type=_cells, metavar='N[,N]',
                         help='the host NUMA cells the guest is placed on')
        cmd.add_argument('--host', action='append', dest='hosts',
                         metavar='HOST', help='only these hosts (default: '
                         'every host of the store); repeatable')

    requesting(sub.add_parser('select', help='hosts that fit, best first'))
    explain = sub.add_parser('explain', help='every host: fits, or why not')
    requesting(explain)
    explain.add_argument(
        '--server', metavar='NAME|UUID',
        help='where this nova server could go on resize, migrate or '
        'evacuate: its flavor (or --flavor, the resize target) plus the '
        'devices hot-plugged into it that the store remembers; its '
        'current host is left out')
    claim = sub.add_parser('claim', help='claim devices for a consumer')
    requesting(claim)
    claim.add_argument('--consumer', required=True,
                       help='the instance uuid that will own the devices')
    claim.add_argument('--on', dest='target', metavar='HOST',
                       help='claim on this host (default: the best one)')
    release = sub.add_parser('release', help="free a consumer's devices")
    release.add_argument('host')
    release.add_argument('--consumer', required=True)
    publish = sub.add_parser('publish', help='store HostReport JSON files')
    publish.add_argument('reports', nargs='+', metavar='REPORT.json')
    sub.add_parser('examples', help='store four example hosts; print a '
                   'config file ([file_store] path, [pci] alias) for them')
    for cmd in sub.choices.values():
        # --format is accepted after the command too.
        cmd.add_argument('--format', choices=('table', 'json'),
                         default=argparse.SUPPRESS)
        common.add_debug_option(cmd, sub=True)
    return top


def load_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    logging.register_options(conf)
    try:
        conf([], project='passthrough-plugin', prog=PROG,
             default_config_files=args.config_file or [])
    except (cfg.ConfigFilesNotFoundError, cfg.ConfigFileParseError) as exc:
        raise UsageError(str(exc)) from None
    except UnicodeDecodeError:
        raise UsageError('--config-file %s: not UTF-8 text; an oslo.config '
                         'INI file' % ' '.join(args.config_file)) from None
    if args.store_path:
        conf.set_override('path', args.store_path, group='file_store')
    common.setup_logging(PROG, args.debug, conf)
    return conf


def _request(engine: engine_mod.Engine, args: argparse.Namespace
             ) -> tuple[engine_mod.Request, dict[str, Any]]:
    """The request, and what it was asked about (for the output).

    ``--flavor`` and ``--server`` read nova through openstacksdk.
    """
    about: dict[str, Any] = {}
    specs: dict[str, str] = {}
    server = None
    flavor_arg = getattr(args, 'flavor', None)
    server_arg = getattr(args, 'server', None)
    if flavor_arg or server_arg:
        conn = connection.from_args(args)
        if server_arg:
            server = connection.lookup_server(conn, server_arg)
            about['server'] = {'id': server.id, 'name': server.name,
                               'host': server.host,
                               'flavor': server.flavor.name}
            specs.update(server.flavor.extra_specs)
        if flavor_arg:
            flavor = connection.lookup_flavor(conn, flavor_arg)
            about['flavor'] = {'id': flavor.id, 'name': flavor.name,
                               'extra_specs': dict(flavor.extra_specs)}
            specs = dict(flavor.extra_specs)
    specs.update(dict(args.extra_spec))
    if server is None:
        return engine.request(specs, numa_cells=args.numa_cells), about
    own = engine.request(specs, numa_cells=args.numa_cells)
    moved = engine.request(specs, numa_cells=args.numa_cells,
                           instance_uuid=server.id, move=True)
    about['server']['flavor_devices'] = own.requests.describe()
    about['server']['with_hotplugged'] = moved.requests.describe()
    return moved, about


def _about_lines(about: dict[str, Any], out: TextIO) -> None:
    if 'flavor' in about:
        flavor = about['flavor']
        out.write('flavor %s (%s): %s\n' % (
            flavor['name'], flavor['id'], ' '.join(
                '%s=%s' % kv for kv in sorted(flavor['extra_specs'].items()))
            or 'no extra specs'))
    if 'server' in about:
        server = about['server']
        out.write('server %s (%s) on %s, flavor %s: %s; with its hot-plugged '
                  'devices: %s\n' % (
                      server['name'], server['id'], server['host'] or '-',
                      server['flavor'], server['flavor_devices'],
                      server['with_hotplugged']))


def _answer(answer: engine_mod.Answer) -> dict[str, Any]:
    return {'host': answer.host, 'fits': answer.ok, 'weight': round(
        answer.weight, 4), 'reason': answer.reason, 'detail': answer.detail,
        'free_before': answer.free_before, 'free_after': answer.free_after}


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write('  '.join(c.ljust(w) for c, w in zip(row, widths,
                                                       strict=True)).rstrip()
                  + '\n')


def run(args: argparse.Namespace, out: TextIO) -> int:
    conf = load_conf(args)
    engine = engine_mod.Engine(conf)
    if args.command == 'examples':
        # The output is a config file for the next commands.
        for report in examples.hosts():
            out.write('# stored %s, generation %d\n' % (
                report.host, engine.store.publish(report)))
        out.write('[file_store]\npath = %s\n\n[pci]\n' % (
            conf.file_store.path,) + ''.join(
            'alias = %s\n' % a for a in examples.alias_values()))
        return EXIT_OK
    if args.command == 'publish':
        # Every file read and checked before the first is stored: a bad
        # one among them leaves the store as it was.
        reports = []
        for path in args.reports:
            try:
                with open(path, 'rb') as handle:
                    # Bytes: JSON's own decoding; a binary or latin-1 file
                    # is then "not valid JSON" naming the file.
                    text = handle.read(limits.MAX_REPORT_BYTES + 1)
            except (OSError, ValueError) as exc:
                raise UsageError('cannot read %s: %s' % (
                    limits.printable(path),
                    getattr(exc, 'strerror', None) or exc)) from None
            reports.append(report_mod.HostReport.from_json(
                text, source=limits.printable(path)))
        with common.Progress('publishing') as progress:
            for n, report in enumerate(reports, 1):
                generation = engine.store.publish(report)
                out.write('%s: generation %d\n' % (report.host, generation))
                progress(n, len(reports))
        return EXIT_OK
    if args.command == 'release':
        released = engine.release(args.host, args.consumer)
        if args.format == 'json':
            json.dump({'host': args.host, 'consumer': args.consumer,
                       'released': released}, out, indent=2)
            out.write('\n')
        else:
            out.write('released %d device(s) of %s on %s: %s\n' % (
                len(released), args.consumer, args.host,
                ' '.join(released) or '-'))
        return EXIT_OK
    engine.refresh()
    request, about = _request(engine, args)
    if args.command == 'claim':
        return _claim(engine, request, args, out)
    if args.command == 'select':
        answers = engine.select(request, args.hosts)
    else:
        answers = engine.explain(request, args.hosts, exact=True)
    if 'server' in about:
        # Migrate and evacuate never pick the host it is on.
        answers = [a for a in answers if a.host != about['server']['host']]
    if args.format == 'json':
        json.dump({'request': request.requests.describe(), **about,
                   'hosts': [_answer(a) for a in answers]}, out, indent=2)
        out.write('\n')
        return EXIT_OK if any(a.ok for a in answers) else EXIT_FAIL
    _about_lines(about, out)
    if args.command == 'select':
        rows = [['RANK', 'HOST', 'WEIGHT', 'FREE', 'FREE AFTER']] + [
            [str(n), a.host, '%.3f' % a.weight, str(a.free_before),
             str(a.free_after)] for n, a in enumerate(answers, 1)]
        if answers:
            _table(rows, out)
        else:
            out.write('no host fits %s; run explain for the reasons\n'
                      % request.requests.describe())
    else:
        rows = [['HOST', 'FITS', 'WEIGHT', 'REASON', 'DETAIL']] + [
            [a.host, 'yes' if a.ok else 'no',
             '%.3f' % a.weight if a.ok else '-', a.reason or '-',
             a.detail or '-'] for a in answers]
        _table(rows, out)
    return EXIT_OK if any(a.ok for a in answers) else EXIT_FAIL


def _claim(engine: engine_mod.Engine, request: engine_mod.Request,
           args: argparse.Namespace, out: TextIO) -> int:
    targets = [args.target] if args.target else [
        a.host for a in engine.select(request, args.hosts)]
    if not targets:
        raise exception.ClaimFailed(
            consumer=args.consumer, host='any host',
            reason='no host fits %s' % request.requests.describe())
    last: exception.ClaimFailed | None = None
    for host in targets:
        try:
            devices = engine.claim(host, request, args.consumer)
        except exception.ClaimFailed as exc:
            # Someone took them since we read the summaries: next host.
            last = exc
            continue
        if args.format == 'json':
            json.dump({'host': host, 'consumer': args.consumer,
                       'devices': devices}, out, indent=2)
            out.write('\n')
        else:
            out.write('claimed on %s for %s: %s\n' % (
                host, args.consumer, ' '.join(devices)))
        return EXIT_OK
    assert last is not None
    raise last


@common.console(PROG)
def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    top = parser()
    try:
        args = top.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return run(args, out)
    except (UsageError, exception.Invalid) as exc:
        err.write('%s: error: %s\n' % (PROG, exc))
        return EXIT_USAGE
    except exception.PassthroughException as exc:
        err.write('%s: %s\n' % (PROG, exc))
        return EXIT_FAIL


if __name__ == '__main__':
    sys.exit(main())
