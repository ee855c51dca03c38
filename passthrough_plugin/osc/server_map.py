"""``openstack pci server map``: which host device is which guest device."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from osc_lib.command import command

from passthrough_plugin import connection
from passthrough_plugin import exception
from passthrough_plugin.cmd import ledger_map
from passthrough_plugin.lifecycle import mapping
from passthrough_plugin.osc import common


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class MapServerDevices(command.Lister):
    """Map host PCI devices to guest PCI devices, per server, from the ledger.

    One row per device: host, host address, guest address, server, source
    (flavor or hotplug), since when, resource class and state. The ledger
    is the plugin's [lifecycle] connection; a server given by name is
    looked up in nova.
    """

    auth_required = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            '--server', metavar='<server>',
            help='only this server (name or ID; an ID is also found when '
            'nova has deleted the server)')
        which.add_argument(
            '--domain-xml', metavar='<file>',
            help='join the devices of this libvirt domain XML file '
            '(virsh dumpxml) with the ledger')
        parser.add_argument(
            '--host-address', metavar='<address>',
            help='only this host PCI address (dddd:bb:ss.f); alone: who '
            'holds that device now')
        parser.add_argument(
            '--host', metavar='<host>',
            help='only the devices of this compute host')
        parser.add_argument(
            '--at', metavar='<time>',
            help='the map as of this time (ISO 8601, UTC unless an offset '
            'is given), e.g. for a server that has moved since')
        common.add_ledger_options(parser, 'server')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        conf = common.conf(self.app)
        server = parsed_args.server
        with common.errors():
            if server is not None and not is_uuid(server):
                server = connection.lookup_server(
                    common.connection(self.app), server).id
            args = argparse.Namespace(
                instance=server, domain_xml=parsed_args.domain_xml,
                host_address=parsed_args.host_address,
                host=parsed_args.host, at=parsed_args.at,
                ledger=parsed_args.ledger)
            try:
                rows = ledger_map.rows(args, conf)
            except exception.UnknownInstance as exc:
                # The library names the agent's option; here it is --server.
                raise exception.UnknownInstance(
                    **dict(exc.kwargs, field='--server')) from None
        columns = [(k, 'Server' if k == 'instance' else h)
                   for k, h in mapping.COLUMNS]
        return common.lister(rows, common.named(
            self.app, rows, columns, skip=parsed_args.no_names))
