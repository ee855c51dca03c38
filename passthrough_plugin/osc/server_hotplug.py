"""``openstack pci server attach|detach``: live hotplug through the agent.

The workstation cannot reach the compute host's libvirt: the command
queues the request in the ledger for the instance's host
(``lifecycle.hotplug_requests``), the agent there (``passthrough-agent
run``) performs it exactly as ``passthrough-agent attach|detach`` would and
records the outcome, which the command waits for and prints.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from openstack import exceptions as sdk_exc
from osc_lib import exceptions as osc_exc
from osc_lib.command import command

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import hotplug_requests
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.osc import common
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod

POLL = 0.5  # seconds between looks at the ledger for the outcome
DEFAULT_TIMEOUT = 120.0


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def instance_of(app: Any, ledger: ledger_mod.Ledger, server: str) -> str:
    """The server's UUID, known to the ledger (added from nova if not).

    :raises: Invalid (no such server), UnknownInstance (deleted).
    """
    if _is_uuid(server):
        try:
            info = ledger.instance(server)
        except exception.UnknownInstance:
            pass
        else:
            if info.deleted_at is not None:
                raise ledger_mod.unknown_instance(server, 'server')
            return server
    try:
        found = common.connection(app).compute.find_server(
            server, ignore_missing=False, all_projects=True)
    except sdk_exc.ResourceNotFound:
        raise exception.Invalid(
            reason='server %r: no such server (name or ID); see "openstack '
            'server list --all-projects"' % server) from None
    except sdk_exc.DuplicateResource:
        raise exception.Invalid(
            reason='server %r: more than one server has this name; give its '
            'ID' % server) from None
    instance = str(found.id)
    try:
        ledger.instance(instance)
    except exception.UnknownInstance:
        host = getattr(found, 'compute_host', None)
        if not host:
            raise exception.Invalid(
                reason='server %s: nova does not say its compute host (an '
                'admin credential shows OS-EXT-SRV-ATTR:host)' % instance
            ) from None
        with ledger.begin() as txn:
            txn.add_instance(instance, str(found.project_id), str(host), {},
                             ledger.now())
    return instance


def wait(ledger: ledger_mod.Ledger, request: hotplug_requests.Request,
         timeout: float) -> dict[str, Any]:
    """The outcome the host's agent recorded. :raises: CommandError on
    timeout, saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = hotplug_requests.result(ledger, request)
        if outcome is not None:
            return outcome
        if time.monotonic() >= deadline:
            raise osc_exc.CommandError(
                'no outcome from the agent of host %s for request %s (%s '
                'of server %s) within %g s (--wait-timeout): is '
                '"passthrough-agent run" running there, on this [lifecycle] '
                'connection? The request stays queued and runs when that '
                'agent reads it; attach and detach are idempotent, so '
                'running the command again is safe' % (
                    request.host, request.id, request.action,
                    request.instance, timeout))
        time.sleep(POLL)


class _Hotplug(command.ShowOne):
    auth_required = False
    action = ''

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('server', metavar='<server>',
                            help='the server (name or ID)')
        parser.add_argument(
            '--wait-timeout', metavar='<seconds>', type=float,
            default=DEFAULT_TIMEOUT,
            help='how long to wait for the outcome (default %.0f)'
            % DEFAULT_TIMEOUT)
        return parser

    def params(self, parsed_args: argparse.Namespace,
               conf: Any) -> dict[str, Any]:
        raise NotImplementedError

    def take_action(self, parsed_args: argparse.Namespace) -> Any:
        conf = common.conf(self.app)
        if parsed_args.wait_timeout <= 0:
            raise osc_exc.CommandError(
                '--wait-timeout %s: must be a positive number of seconds'
                % parsed_args.wait_timeout)
        with common.errors():
            params = self.params(parsed_args, conf)
            ledger = ledger_mod.Ledger.from_conf(conf)
            try:
                instance = instance_of(self.app, ledger, parsed_args.server)
                request = hotplug_requests.submit(ledger, instance,
                                                  self.action, **params)
                outcome = wait(ledger, request, parsed_args.wait_timeout)
            finally:
                ledger.close()
        if not outcome.get('ok'):
            raise osc_exc.CommandError('%s on host %s failed: %s' % (
                self.action, request.host, outcome.get('message')))
        data = {'server': instance, 'host': request.host,
                'request': request.id, 'devices': ', '.join(
                    outcome.get('devices') or ()),
                'result': outcome.get('message')}
        keys = tuple(sorted(data))
        return keys, tuple(data[k] for k in keys)


class AttachServerDevice(_Hotplug):
    """Hot-plug hotplug-pool devices into a running server.

    The agent of the server's compute host chooses, claims, binds and
    attaches them ([hotplug] device_spec devices, by the core's rules) and
    records the ledger interval; this command queues the request in the
    ledger and waits for the outcome.
    """

    action = 'attach'

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--alias', required=True, metavar='<name[:count]>',
            help='a [pci] alias; count (default 1) is how many the server '
            'should hold in all')
        parser.add_argument(
            '--guest-address', action='append', default=[],
            metavar='<address>',
            help='where the device appears in the guest; repeat for each '
            'device')
        return parser

    def params(self, parsed_args: argparse.Namespace,
               conf: Any) -> dict[str, Any]:
        text = parsed_args.alias
        (name, count), = request_mod.parse_counts(
            '--alias', text if ':' in text else text + ':1')
        aliases = alias_mod.parse_aliases(conf.pci.alias)
        if aliases and name not in aliases:
            raise exception.Invalid(
                reason='--alias %r: not a [pci] alias; known: %s' % (
                    name, ', '.join(sorted(aliases))))
        return {'alias': name, 'count': count, 'guest_addresses': [
            addr.normalize(a, '--guest-address')
            for a in parsed_args.guest_address]}


class DetachServerDevice(_Hotplug):
    """Hot-unplug hot-plugged devices from a server (all, by alias, or by
    host address), through the agent of its compute host."""

    action = 'detach'

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument('--alias', metavar='<name>', default=None,
                            help='only the devices of this alias')
        parser.add_argument(
            '--address', action='append', default=[], metavar='<address>',
            help='only this host PCI address; repeat for more')
        return parser

    def params(self, parsed_args: argparse.Namespace,
               conf: Any) -> dict[str, Any]:
        return {'alias': parsed_args.alias, 'addresses': [
            addr.normalize(a, '--address') for a in parsed_args.address]}
