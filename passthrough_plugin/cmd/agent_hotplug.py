"""``passthrough-agent attach`` and ``detach``: live PCI hotplug commands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import hotplug_follow
from passthrough_plugin.agent import hotplug_journal
from passthrough_plugin.agent import libvirt_guest
from passthrough_plugin.agent import live_hotplug
from passthrough_plugin.agent import service
from passthrough_plugin.cmd import common
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod

LOG = logging.getLogger(__name__)
# How the commands reach libvirt: ``libvirt.open(uri)``. A test points it
# at another implementation of libvirt's API (nova's fakelibvirt).
CONNECT: libvirt_guest.Connect = libvirt_guest.default_connect


def add_parsers(subparsers: Any,
                parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``attach`` and ``detach`` to the agent's sub-commands."""
    p = subparsers.add_parser(
        'attach', parents=list(parents),
        help='hot-plug hotplug-pool devices into a running instance',
        description='Make the instance hold COUNT hot-plugged devices of '
        'the alias, taken from [hotplug] device_spec: claim, bind their '
        'IOMMU groups to vfio-pci, attach live and persistently through '
        'libvirt, record the ledger interval. A failing step undoes the '
        'ones before it; re-running is harmless.')
    p.add_argument('--instance', required=True, metavar='UUID')
    p.add_argument('--alias', required=True, metavar='NAME[:COUNT]',
                   help='a [pci] alias; COUNT (default 1) is how many the '
                   'instance should hold in all')
    p.add_argument('--guest-address', action='append', default=[],
                   metavar='ADDR', type=common.address_arg('--guest-address'),
                   help='where the device appears in the guest; repeat '
                   'for each device')
    p.add_argument('--project', default=None,
                   help='the owning project, when the ledger does not know '
                   'the instance and its domain carries no nova metadata')
    p = subparsers.add_parser(
        'detach', parents=list(parents),
        help='hot-unplug devices from an instance',
        description='Detach hot-plugged devices (all of the instance\'s, '
        'those of --alias, or the --address ones): detach in libvirt and '
        'wait for the guest to release them, restore their drivers, '
        'release the claims, close the ledger intervals. Re-running '
        'finishes an interrupted detach.')
    p.add_argument('--instance', required=True, metavar='UUID')
    p.add_argument('--alias', default=None, metavar='NAME')
    p.add_argument('--address', action='append', default=[],
                   metavar='ADDR', type=common.address_arg('--address'),
                   help='a host PCI address; repeat for more')


def _hotplugger(agent: service.Agent) -> live_hotplug.LiveHotplug:
    conf = agent.conf
    aliases = alias_mod.parse_aliases(conf.pci.alias)
    ledger = ledger_mod.Ledger.from_conf(conf)
    return live_hotplug.LiveHotplug(
        agent, ledger, aliases, CONNECT(conf.lifecycle.libvirt_uri),
        timeout=conf.hotplug.detach_timeout)


def cmd_attach(agent: service.Agent, args: argparse.Namespace) -> int:
    (name, count), = request_mod.parse_counts(
        '--alias', args.alias if ':' in args.alias else args.alias + ':1')
    held = _hotplugger(agent).attach(args.instance, name, count,
                                     args.guest_address, args.project)
    rows = [{'address': h['address'], 'guest_address': h['guest_address'],
             'alias': h['alias'], 'iommu_group': h['group']} for h in held]
    common.emit(args, {'instance': args.instance, 'devices': rows}, '\n'.join(
        ['instance %s holds %d hot-plugged %s device(s):'
         % (args.instance, len(rows), name)] +
        ['  %s -> guest %s (IOMMU group: %s)' % (
            r['address'], r['guest_address'] or '-',
            ' '.join(r['iommu_group'])) for r in rows]))
    return 0


def cmd_detach(agent: service.Agent, args: argparse.Namespace) -> int:
    done = _hotplugger(agent).detach(args.instance, args.address,
                                     args.alias)
    common.emit(args, {'instance': args.instance, 'detached': done},
          'detached from %s: %s' % (args.instance, ', '.join(done))
          if done else 'nothing to detach from %s' % args.instance)
    return 0


def wire_run(agent: service.Agent) -> hotplug_follow.Follower | None:
    """Make ``run`` follow libvirt's lifecycle events of this host's
    domains: give back the hot-plugged devices a domain lost when nova
    rewrote it (hard reboot, resize), give an instance that arrived from
    another host (migration, evacuation) equivalent devices, and free the
    devices of instances that left.

    Only on hosts with a hotplug pool (``[hotplug] device_spec``) or with
    hot-plugged devices: elsewhere libvirt and the ledger are not opened.
    :returns: the follower, running on a thread of its own, or None.
    """
    path = live_hotplug.journal_path(agent.state_path)
    if not agent.hotplug_specs.specs and not (
            os.path.exists(path)
            and hotplug_journal.HotplugJournal(path).attached):
        return None
    try:
        follower = hotplug_follow.Follower(_hotplugger(agent))
    except exception.PassthroughException as exc:
        LOG.error('cannot follow hot-plugged devices through domain '
                  'changes: %s', exc.message)
        return None
    follower.catch_up()
    follower.start()
    return follower
