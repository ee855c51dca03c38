"""``passthrough-agent map``: which host device is which guest device."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.cmd import billing as billing_cmd
from passthrough_plugin.cmd import common
from passthrough_plugin.conf import lifecycle as conf_lifecycle
from passthrough_plugin.lifecycle import formatting
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import mapping
from passthrough_plugin.pci import address

EXIT_USAGE = 2
EXIT_FAILURE = 1


def add_map_parser(subparsers: Any,
                   parents: Sequence[argparse.ArgumentParser] = ()
                   ) -> argparse.ArgumentParser:
    """Add ``map`` to the agent's sub-commands; ``run_map`` runs it.

    ``parents``: the agent's common options (``--config-file``...), without
    ``--format``, which ``map`` adds itself.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        'map', parents=list(parents),
        help='host PCI device <-> guest PCI device, per instance',
        description='One row per device: host address, guest address, '
        'instance, source (flavor or hotplug) and since when, from the '
        'libvirt domain XML joined with the ledger.')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--instance', metavar='UUID',
                       help='an instance; its live domain is read through '
                       'libvirt-python when installed, else the ledger')
    which.add_argument('--domain-xml', metavar='FILE',
                       help='a libvirt domain XML file (virsh dumpxml)')
    parser.add_argument('--host-address', metavar='ADDR',
                        help='only this host PCI address (dddd:bb:ss.f); '
                        'alone: who holds that device now')
    parser.add_argument('--host', help='only devices of this host '
                        '(without --instance or --domain-xml)')
    parser.add_argument('--at', metavar='TIME',
                        help='answer as of this time (ISO 8601, UTC unless '
                        'an offset is given) from the ledger, e.g. for a '
                        'guest that has since moved or been deleted')
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table', help='output format')
    parser.set_defaults(run=run_map)
    return parser


def rows(args: argparse.Namespace, conf: cfg.ConfigOpts
         ) -> list[dict[str, Any]]:
    """The map rows as dicts. :raises: PassthroughException subclasses."""
    conf_lifecycle.register_opts(conf)
    if args.host_address is not None:
        # Bad input first: before a database is opened.
        address.PciAddress.parse(args.host_address, '--host-address')
    at = None
    if getattr(args, 'at', None):
        at = billing_cmd.parse_time('--at', args.at)
    url = getattr(args, 'ledger', None) or conf.lifecycle.connection
    ledger = ledger_mod.Ledger(url)
    try:
        found = mapping.map_rows(
            ledger, instance=args.instance, domain_xml=args.domain_xml,
            host_address=args.host_address,
            host=getattr(args, 'host', None),
            libvirt_uri=conf.lifecycle.libvirt_uri, at=at)
    finally:
        ledger.close()
    return [row.to_dict() for row in found]


def run_map(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    """Print the map; errors are one line on stderr. Returns the exit code."""
    try:
        found = rows(args, conf)
    except exception.Invalid as exc:
        print('passthrough-agent map: error: %s' % exc, file=sys.stderr)
        return EXIT_USAGE
    except (exception.UnknownInstance, exception.DomainXmlError) as exc:
        # An unknown UUID or a bad --domain-xml file is the operator's
        # input; a live domain libvirt cannot give is not.
        print('passthrough-agent map: error: %s' % exc, file=sys.stderr)
        if isinstance(exc, exception.DomainXmlError) and not args.domain_xml:
            return EXIT_FAILURE
        return EXIT_USAGE
    except exception.PassthroughException as exc:
        print('passthrough-agent map: error: %s' % exc, file=sys.stderr)
        return EXIT_FAILURE
    if args.format == 'json':
        print(formatting.to_json(found))
    elif not found:
        print('No assigned PCI device matches.')
    else:
        print(formatting.table(found, mapping.COLUMNS))
    return 0


@common.console('passthrough-agent')
def main(argv: list[str] | None = None) -> int:
    """Stand-alone runner until the agent CLI wires ``map`` in."""
    parser = billing_cmd.OneLineParser(prog='passthrough-agent')
    parser.add_argument('--config-file', action='append', default=[])
    parser.add_argument('--ledger', metavar='URL')
    add_map_parser(parser.add_subparsers(
        dest='command', required=True,
        parser_class=billing_cmd.OneLineParser))
    args = parser.parse_args(argv)
    conf = billing_cmd.load_conf(args.config_file)
    return int(args.run(args, conf))


if __name__ == '__main__':
    sys.exit(main())
