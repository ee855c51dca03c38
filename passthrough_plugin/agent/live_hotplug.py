"""Live hotplug: attach and detach hotplug-pool devices to running guests.

attach: choose (the core's rules) -> claim (report store) -> bind (whole
IOMMU groups to vfio-pci) -> libvirt (live and persistent ``<hostdev>``) ->
ledger (interval, source ``hotplug``). A failing step undoes the steps
before it in reverse. detach: libvirt (and the guest's release) -> drivers
-> release -> ledger, rolled forward on a re-run. Every step is recorded
in the hotplug journal and is idempotent, so a command killed between two
steps converges when run again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import hotplug_journal
from passthrough_plugin.agent import libvirt_events
from passthrough_plugin.agent import libvirt_guest
from passthrough_plugin.agent import service
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import hotplug as hotplug_lc
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

LOG = logging.getLogger(__name__)
ATTACH_STEPS = ('claim', 'bind', 'libvirt', 'ledger')
DETACH_STEPS = ('libvirt', 'drivers', 'release', 'ledger')
Step = Callable[[], None]


def journal_path(state_path: str) -> str:
    """The hotplug journal lives beside the agent's bind journal."""
    return os.path.join(os.path.dirname(os.path.abspath(state_path)),
                        'hotplug-journal.json')


def _text(exc: BaseException) -> str:
    text = str(getattr(exc, 'message', None) or exc) or type(exc).__name__
    return text.splitlines()[0]


class LiveHotplug:
    """Hot-plugs the hotplug pool's devices of one host."""

    def __init__(self, agent: service.Agent, ledger: ledger_mod.Ledger,
                 aliases: Mapping[str, alias_mod.Alias], connection: Any,
                 *, timeout: float = 30.0,
                 events: libvirt_events.DomainEvents | None = None) -> None:
        self.agent = agent
        self.host = agent.conf.agent.host
        self.ledger = ledger
        self.aliases = aliases
        self.connection = connection
        self.timeout = timeout
        # One registration per connection: detach waits on its
        # device-removed events, ``run`` follows its lifecycle events.
        self.events = events or libvirt_events.DomainEvents(connection)
        self.journal = hotplug_journal.HotplugJournal(
            journal_path(agent.state_path))

    # -- attach ----------------------------------------------------------
    def attach(self, instance: str, alias: str, count: int = 1,
               guest_addresses: Sequence[str] = (),
               project: str | None = None) -> list[dict[str, Any]]:
        """Make ``instance`` hold ``count`` hot-plugged ``alias`` devices.

        Re-running is harmless: devices it already holds count.
        :returns: the instance's hot-plugged devices of ``alias``.
        :raises: UnknownAlias, HotplugRefused (with the core's reason),
            HotplugFailed (the step, and what was undone), AgentError.
        """
        request_mod.hotplug_request(self.aliases, alias, count)
        with self.journal.locked():
            self._resume(instance)
            guest = libvirt_guest.Guest(self.connection, instance)
            self._ensure_instance(instance, guest, project)
            have = self._held(instance, alias)
            missing = count - len(have)
            if missing > 0:
                request = request_mod.hotplug_request(self.aliases, alias,
                                                      missing)
                devices, members, groups = self.choose(instance, request,
                                                        guest)
                free_slots = list(guest_addresses[len(have):])
                intent = self.journal.begin(instance, {
                    'action': 'attach', 'alias': alias,
                    'devices': list(devices), 'members': list(members),
                    'groups': groups, 'guest_addresses': free_slots,
                    'to_bind': None, 'attached': {}})
                self.run_attach(instance, intent)
            return self._held(instance, alias)

    def choose(self, instance: str, request: request_mod.DeviceRequest,
                guest: libvirt_guest.Guest
                ) -> tuple[tuple[str, ...], list[str], dict[str, list[str]]]:
        """The core's choice among the free hotplug-pool devices.

        Devices nova tracks are never handed out here; the headroom other
        instances on the host were promised must stay free in the pool.
        """
        # Choose from what sysfs shows now, with the store's claims.
        self.agent.publish()
        report = self.agent.store.get(self.host)
        for dev in report.devices:
            if not dev.hotplug_pool and dev.status == 'available':
                dev.status = 'unavailable'
        pools = pools_mod.HostPools.from_report(report)
        others = hotplug_lc.reserved_by_others(
            self.ledger, self.host, instance, self.aliases)
        cells = libvirt_guest.numa_cells(guest.xml())
        fit = pools.fit(request_mod.RequestSet((request,), tuple(others)),
                        cells)
        if not fit.ok:
            raise exception.HotplugRefused(
                request=request.describe(), instance=instance,
                host=self.host, reason=fit.reason, detail=fit.detail)
        members = list(fit.addresses) + list(fit.companions)
        groups = {}
        for address in fit.addresses:
            group = pools.group_of[pools.by_address[address]]
            groups[address] = sorted(
                m for m in members
                if pools.group_of[pools.by_address[m]] == group)
        return fit.devices[0], members, groups

    def run_attach(self, instance: str, intent: dict[str, Any]) -> None:
        steps: dict[str, Step] = {
            'claim': lambda: self._claim(instance, intent),
            'bind': lambda: self._bind(instance, intent),
            'libvirt': lambda: self._plug(instance, intent),
            'ledger': lambda: self._record(instance, intent),
        }
        for name in ATTACH_STEPS:
            if name in intent['done']:
                continue
            try:
                steps[name]()
            except Exception as exc:
                undo = self._undo_attach(instance, intent)
                self.journal.finish(instance)
                raise exception.HotplugFailed(
                    action='attach', what=', '.join(intent['devices']),
                    instance=instance, step=name, reason=_text(exc),
                    undo=undo) from None
            self.journal.step(instance, name)
        for address in intent['devices']:
            group = intent['groups'][address]
            self.journal.remember(address, {
                'instance': instance, 'alias': intent['alias'],
                'group': group,
                'bound': [m for m in intent['to_bind'] or () if m in group],
                'guest_address': intent['attached'].get(address)})
        self.journal.finish(instance)
        LOG.info('hot-plugged %s into instance %s',
                 ', '.join(intent['devices']), instance)

    def _claim(self, instance: str, intent: dict[str, Any]) -> None:
        report = self.agent.store.get(self.host)
        if all(self._owned(report, a, instance) for a in intent['members']):
            return
        self.agent.store.claim(self.host, instance, intent['members'],
                               source=claims.SOURCE_HOTPLUG)

    @staticmethod
    def _owned(report: report_mod.HostReport, address: str,
               instance: str) -> bool:
        dev = report.device(address)
        return dev is not None and dev.owner == instance

    def _bind(self, instance: str, intent: dict[str, Any]) -> None:
        gb = self.agent.group_binding()
        if intent['to_bind'] is None:
            # Written before the first write: an undo after a crash must
            # not unbind what was on vfio-pci before us.
            self.journal.step(instance, 'plan-bind', to_bind=[
                m for m in intent['members']
                if self.agent.fs.driver(m) != gb.binder.driver])
        gb.bind(intent['members'])

    def _plug(self, instance: str, intent: dict[str, Any]) -> None:
        guest = libvirt_guest.Guest(self.connection, instance)
        slots = list(intent['guest_addresses'])
        for position, address in enumerate(intent['devices']):
            wanted = slots[position] if position < len(slots) else None
            shown = guest.attach(address, wanted)
            intent['attached'][address] = shown
            self.journal.step(instance, 'plug-one',
                              attached=intent['attached'])

    def _record(self, instance: str, intent: dict[str, Any]) -> None:
        held = {i.host_address for i in self.ledger.intervals(
            instance=instance, host=self.host, active=True)}
        report = self.agent.store.get(self.host)
        moved = list(intent.get('moved') or ())
        with self.ledger.begin() as txn:
            at = self.ledger.now()
            row = txn.instance(instance)
            opened = []
            left = self._leave_old_hosts(txn, row, moved, at)
            for position, address in enumerate(intent['devices']):
                if address in held:
                    continue
                dev = report.device(address)
                hotplug_id = moved[position] if position < len(moved) \
                    else txn.add_hotplug(instance, intent['alias'], at)
                txn.start(row, self.host, address,
                          resource_class=dev.resource_class if dev
                          else 'UNKNOWN', source=claims.SOURCE_HOTPLUG,
                          at=at, alias=intent['alias'],
                          hotplug_id=hotplug_id,
                          guest_address=intent['attached'].get(address))
                opened.append(address)
            if opened and moved:
                txn.event(instance, 'reattach', self.host, at,
                          'followed the instance from %s: %s: %s' % (
                              ', '.join(left) or 'nowhere',
                              intent['alias'], ', '.join(opened)))
            elif opened:
                txn.event(instance, 'hotplug', self.host, at,
                          'live attach of %s: %s' % (intent['alias'],
                                                     ', '.join(opened)))

    def _leave_old_hosts(self, txn: Any, row: Any, moved: Sequence[int],
                         at: Any) -> list[str]:
        """The instance moved here: close its intervals of the remembered
        hotplugs ``moved`` on other hosts. :returns: those hosts."""
        if not moved:
            return []
        row.host = self.host
        left = set()
        for held in txn.open_intervals(row.uuid):
            if held.hotplug_id in moved and held.host != self.host:
                txn.end(held, at, 'moved to %s' % self.host)
                left.add(held.host)
        return sorted(left)

    def _undo_attach(self, instance: str, intent: dict[str, Any]) -> str:
        """Undo every step of a failed attach, last first; say how it went.

        Each undo is idempotent and checks the real state, so a step that
        failed half-way is undone as far as it went.
        """
        problems = []
        undos: list[tuple[str, Step]] = [
            ('libvirt', lambda: self._unplug(instance, intent['devices'])),
            ('bind', lambda: self._unbind(intent['to_bind'] or [])),
            ('claim', lambda: self._release(instance, intent['members'])),
        ]
        for name, undo in undos:
            try:
                undo()
            except Exception as exc:
                LOG.error('undoing step %s of the attach to %s failed: %s',
                          name, instance, _text(exc))
                problems.append('%s: %s' % (name, _text(exc)))
        if problems:
            return ('UNDO FAILED (%s); check the guest and run "%s" for '
                    'it' % ('; '.join(problems), 'passthrough-agent detach'))
        return 'every step before it was undone'

    # -- detach ----------------------------------------------------------
    def detach(self, instance: str, addresses: Sequence[str] = (),
               alias: str | None = None) -> list[str]:
        """Hot-unplug devices of ``instance`` (given, of ``alias``, or all).

        Re-running is harmless: devices already gone are skipped.
        :returns: the detached host addresses.
        :raises: InvalidLedgerInput (a flavor device), HotplugFailed.
        """
        with self.journal.locked():
            done = self._resume(instance)
            held = self.journal.held_by(instance)
            targets = [a for a, r in held.items()
                       if (not addresses or a in addresses)
                       and (alias is None or r['alias'] == alias)]
            for address in addresses:
                if address not in held:
                    self._check_not_flavor(instance, address)
            for address in targets:
                intent = self.journal.begin(instance, dict(
                    held[address], action='detach', device=address))
                self.run_detach(instance, intent)
                done.append(address)
            return done

    def _check_not_flavor(self, instance: str, address: str) -> None:
        for interval in self.ledger.intervals(instance=instance,
                                              host_address=address,
                                              active=True):
            if interval.source != claims.SOURCE_HOTPLUG:
                raise exception.InvalidLedgerInput(
                    field='address', value=address,
                    reason='a flavor device cannot be unplugged; resize '
                    'to a flavor without it')

    def run_detach(self, instance: str, intent: dict[str, Any]) -> None:
        address = intent['device']
        steps: dict[str, Step] = {
            'libvirt': lambda: self._unplug(instance, [address]),
            'drivers': lambda: self._unbind(intent['bound']),
            'release': lambda: self._release(instance, intent['group']),
            'ledger': lambda: self._close(instance, address),
        }
        for name in DETACH_STEPS:
            if name in intent['done']:
                continue
            try:
                steps[name]()
            except Exception as exc:
                # The guest may have the device no more: detach only
                # goes forward, on the next run.
                raise exception.HotplugFailed(
                    action='detach', what=address, instance=instance,
                    step=name, reason=_text(exc),
                    undo='the steps before it stay done; run detach again '
                    'to finish') from None
            self.journal.step(instance, name)
        self.journal.forget(address)
        self.journal.finish(instance)
        LOG.info('hot-unplugged %s from instance %s', address, instance)

    def _unplug(self, instance: str, addresses: Sequence[str]) -> None:
        try:
            guest = libvirt_guest.Guest(self.connection, instance)
        except exception.AgentError:
            LOG.info('instance %s has no domain here any more; nothing to '
                     'detach in libvirt', instance)
            return
        for address in reversed(list(addresses)):
            guest.detach(address)
            if not guest.wait_removed(address, self.timeout, self.events):
                raise exception.AgentError(
                    reason='the guest has not released %s: libvirt sent no '
                    'device-removed event for it within %.1f s ([hotplug] '
                    'detach_timeout)' % (address, self.timeout))

    def _unbind(self, addresses: Sequence[str]) -> None:
        # A device the host lost meanwhile has no driver to restore.
        present = [a for a in addresses if self.agent.fs.has_device(a)]
        if present:
            self.agent.group_binding().unbind(present)

    def _release(self, instance: str, addresses: Sequence[str]) -> None:
        """Release ``addresses`` of ``instance``, keeping its other claims.

        A report store releases a consumer as a whole: the rest is claimed
        again at once, per source.
        """
        store = self.agent.store
        report = store.get(self.host)
        mine = [d for d in report.devices if d.owner == instance]
        if not any(d.address in addresses for d in mine):
            return
        store.release(self.host, instance)
        for source in report_mod.SOURCES:
            keep = [d.address for d in mine if d.address not in addresses
                    and (d.source or claims.SOURCE_FLAVOR) == source]
            if keep:
                store.claim(self.host, instance, keep, source=source)

    def _close(self, instance: str, address: str) -> None:
        if self.ledger.intervals(instance=instance, host=self.host,
                                 host_address=address, active=True):
            hotplug_lc.detach(self.ledger, instance, address)

    # -- shared ----------------------------------------------------------
    def _resume(self, instance: str) -> list[str]:
        """Finish what a killed command left for ``instance``."""
        intent = self.journal.pending.get(instance)
        if intent is None:
            return []
        LOG.warning('finishing the interrupted %s of %s for instance %s',
                    intent['action'], intent.get('device') or ', '.join(
                        intent.get('devices', ())), instance)
        if intent['action'] == 'attach':
            self.run_attach(instance, intent)
            return []
        self.run_detach(instance, intent)
        return [intent['device']]

    def _held(self, instance: str, alias: str) -> list[dict[str, Any]]:
        return [dict(r, address=a)
                for a, r in self.journal.held_by(instance).items()
                if r['alias'] == alias]

    def _ensure_instance(self, instance: str, guest: libvirt_guest.Guest,
                         project: str | None) -> None:
        """The ledger must know the instance, on this host."""
        try:
            info = self.ledger.instance(instance)
        except exception.UnknownInstance:
            project = project or libvirt_guest.project(guest.xml())
            if project is None:
                raise exception.AgentError(
                    reason='instance %s is not in the ledger and its domain '
                    'names no nova project; pass --project' % instance
                ) from None
            with self.ledger.begin() as txn:
                txn.add_instance(instance, project, self.host, {},
                                 self.ledger.now())
            return
        if info.deleted_at is not None or info.host != self.host:
            raise exception.InvalidLedgerInput(
                field='instance', value=instance,
                reason='the ledger has it on host %s, this is %s' % (
                    info.host, self.host))
