"""``openstack pci explain --flavor|--server``: every host, fits or why not."""

from __future__ import annotations

import argparse
from typing import Any

from osc_lib.command import command
from oslo_log import log as logging

from passthrough_plugin import connection
from passthrough_plugin.osc import common
from passthrough_plugin.scheduler import engine as engine_mod

LOG = logging.getLogger(__name__)

COLUMNS = (('host', 'Host'), ('fits', 'Fits'), ('weight', 'Weight'),
           ('reason', 'Reason'), ('detail', 'Detail'),
           ('free_before', 'Free'), ('free_after', 'Free after'))


def answer_row(answer: engine_mod.Answer) -> dict[str, Any]:
    """One host's answer; weight and free counts only where it fits."""
    return {'host': answer.host, 'fits': answer.ok,
            'weight': round(answer.weight, 4) if answer.ok else None,
            'reason': answer.reason, 'detail': answer.detail or None,
            'free_before': answer.free_before if answer.ok else None,
            'free_after': answer.free_after if answer.ok else None}


class ExplainFlavor(command.Lister):
    """Explain, host by host, whether a flavor's PCI devices fit and why not.

    The flavor's extra specs (pci_passthrough:alias,
    hw:pci_numa_affinity_policy, passthrough:*) are read from nova; the
    hosts and their devices from the plugin's report store, with the
    plugin's [pci] alias. With --server: where that server could go on a
    resize, migrate or evacuate (its flavor plus the devices hot-plugged
    into it that the store remembers).
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            '--flavor', metavar='<flavor>',
            help='flavor (name or ID) whose extra specs are explained')
        which.add_argument(
            '--server', metavar='<server>',
            help='server (name or ID): its flavor and its hot-plugged '
            'devices, as a move would ask them')
        parser.add_argument(
            '--host', metavar='<host>', action='append', dest='hosts',
            help='only this host (repeatable; default: every host of the '
            'report store)')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        conf = common.conf(self.app)
        with common.errors():
            cloud = common.connection(self.app)
            server = None
            if parsed_args.server is not None:
                server = connection.lookup_server(cloud, parsed_args.server)
                flavor = server.flavor
            else:
                flavor = connection.lookup_flavor(cloud, parsed_args.flavor)
            engine = engine_mod.Engine(conf)
            engine.refresh()
            # A move re-asks what the server holds by hotplug as well.
            request = engine.request(
                dict(flavor.extra_specs), move=server is not None,
                instance_uuid=server.id if server is not None else None)
            LOG.debug('flavor %s (%s) asks %s', flavor.name, flavor.id,
                      request.requests.describe())
            answers = engine.explain(request, parsed_args.hosts, exact=True)
        return common.lister([answer_row(a) for a in answers], COLUMNS)
