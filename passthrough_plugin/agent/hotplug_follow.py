"""Follow hot-plugged devices through nova's domain rewrites and moves.

nova defines a domain again from its own records on hard reboot, resize,
migration and evacuation, dropping the hostdevs it did not attach. At each
libvirt lifecycle event of a domain on this host (defined, undefined,
started, resumed, stopped) the agent looks at that one instance:

* **reattach**: a device hot-plugged here and still held here that the
  domain lost is bound and attached again (live when running, and to the
  persistent definition);
* **arrive**: the instance runs here but the ledger remembers hot-plugged
  devices that it holds on another host (or nowhere): equivalent devices
  are chosen here by the core's rules (alias, IOMMU group, guest NUMA,
  others' headroom), claimed, bound and attached at the same guest
  addresses; new intervals open here and the old host's close (``moved to
  <host>``). If that fails, the old intervals close with ``lost on move to
  <host>: <why>`` (detach notification), the hotplug is forgotten, the
  ledger event ``reattach_failed`` says why and it is logged at error;
* **leave**: the domain is gone from this host (or stopped) and the ledger
  shows the device held here no more (the instance moved, or was deleted):
  the device is removed from the stopped definition, its drivers restored
  and its claim released.

Between events the same thread serves the hotplug requests that
``openstack pci server attach|detach`` queued for this host in the ledger
(``lifecycle.hotplug_requests``), looking every ``request_poll`` seconds.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import libvirt_events
from passthrough_plugin.agent import libvirt_guest
from passthrough_plugin.agent import live_hotplug
from passthrough_plugin.lifecycle import hotplug_requests
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import request as request_mod

LOG = logging.getLogger(__name__)
Row = tuple[str, str, str]  # (instance, address or alias, what happened)
LIST_ALL = 1 | 2  # VIR_CONNECT_LIST_DOMAINS_ACTIVE | _INACTIVE
REQUEST_POLL = 2.0  # seconds between looks for queued hotplug requests


def _text(exc: BaseException) -> str:
    text = str(getattr(exc, 'message', None) or exc) or type(exc).__name__
    return text.splitlines()[0]


class Follower:
    """Handles one host's domain events for its hot-plugged devices."""

    def __init__(self, hotplugger: live_hotplug.LiveHotplug,
                 request_poll: float = REQUEST_POLL) -> None:
        self.hp = hotplugger
        self.request_poll = request_poll
        self._seen = 0  # the last request event looked at
        self.served: list[tuple[str, bool, str]] = []
        self.host = hotplugger.host
        # Re-attaches that failed: recorded once, not at every event.
        self._failed: set[tuple[str, str]] = set()
        self._cond = threading.Condition()
        self.handled = 0
        self.rows: list[Row] = []
        self._thread: threading.Thread | None = None

    # -- the event loop ----------------------------------------------------
    def start(self) -> None:
        """Handle each followed lifecycle event on a thread of its own."""
        events = self.hp.events

        def loop() -> None:
            while True:
                item = events.next_lifecycle(self.request_poll)
                if item is None:
                    if events.closed:
                        return
                    self.serve_requests()
                    continue
                instance, event, _detail = item
                self._handle_logged(instance, libvirt_events.NAMES.get(
                    event, str(event)))

        self._thread = threading.Thread(target=loop, name='hotplug-follow',
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.hp.events.close()
        if self._thread is not None:
            self._thread.join()

    def wait_handled(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` events were handled in all (tests, tools).

        :returns: False on timeout.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.handled < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _handle_logged(self, instance: str, why: str) -> list[Row]:
        try:
            rows = self.handle(instance)
        except Exception as exc:  # noqa: BLE001 - the loop goes on
            LOG.error('cannot follow instance %s after its domain was %s: '
                      '%s', instance, why, _text(exc))
            rows = []
        with self._cond:
            self.handled += 1
            self.rows.extend(rows)
            self._cond.notify_all()
        return rows

    # -- requests queued by ``openstack pci server attach|detach`` -------
    def serve_requests(self) -> list[tuple[str, bool, str]]:
        """Perform the queued requests for this host; record each outcome.

        :returns: (request id, ok, message) per request served.
        """
        hp = self.hp
        try:
            found = hotplug_requests.pending(hp.ledger, self.host, self._seen)
        except exception.PassthroughException as exc:
            LOG.error('cannot read the queued hotplug requests: %s',
                      exc.message)
            return []
        served = []
        for request in found:
            self._seen = max(self._seen, request.event_id)
            ok, message, devices = self._perform(request)
            try:
                hotplug_requests.finish(hp.ledger, request, ok, message,
                                        devices)
            except exception.PassthroughException as exc:
                LOG.error('cannot record the outcome of hotplug request %s: '
                          '%s', request.id, exc.message)
            served.append((request.id, ok, message))
        with self._cond:
            self.served.extend(served)
            self._cond.notify_all()
        return served

    def _perform(self, request: hotplug_requests.Request
                 ) -> tuple[bool, str, list[str]]:
        hp, params, instance = self.hp, request.params, request.instance
        LOG.info('hotplug request %s: %s for instance %s %s', request.id,
                 request.action, instance, params)
        try:
            if request.action == 'attach':
                alias = str(params.get('alias'))
                held = hp.attach(instance, alias,
                                 int(params.get('count') or 1),
                                 list(params.get('guest_addresses') or ()),
                                 params.get('project'))
                devices = [h['address'] for h in held]
                return True, 'instance %s holds %d hot-plugged %s device(s):'\
                    ' %s' % (instance, len(devices), alias,
                             ', '.join('%s -> guest %s' % (
                                 h['address'], h['guest_address'] or '-')
                                 for h in held)), devices
            if request.action == 'detach':
                devices = hp.detach(instance,
                                    list(params.get('addresses') or ()),
                                    params.get('alias'))
                return True, ('detached from %s: %s' % (
                    instance, ', '.join(devices)) if devices else
                    'nothing to detach from %s' % instance), devices
            raise exception.InvalidLedgerInput(
                field='action', value=request.action,
                reason='expected attach or detach')
        except (exception.PassthroughException, ValueError) as exc:
            LOG.error('hotplug request %s (%s for instance %s) failed: %s',
                      request.id, request.action, instance, _text(exc))
            return False, _text(exc), []

    def catch_up(self) -> list[Row]:
        """Look at every instance once (events missed while not running),
        and serve the queued requests."""
        instances = {r['instance'] for r in self.hp.journal.attached.values()}
        try:
            domains = self.hp.connection.listAllDomains(LIST_ALL)
        except Exception as exc:  # noqa: BLE001 - libvirtError of any binding
            LOG.error('cannot list the domains of this host: %s', _text(exc))
            domains = []
        instances.update(d.UUIDString() for d in domains)
        rows = []
        for instance in sorted(instances):
            rows.extend(self._handle_logged(instance, 'found at start'))
        # Requests queued while the agent was down (and for run --once).
        self.serve_requests()
        return rows

    # -- one instance ------------------------------------------------------
    def handle(self, instance: str) -> list[Row]:
        """Reattach, arrive or leave, as the instance's state here asks."""
        hp = self.hp
        rows: list[Row] = []
        with hp.journal.locked():
            if instance in hp.journal.pending:
                LOG.warning('an interrupted attach or detach of instance %s '
                            'is pending; run passthrough-agent attach or '
                            'detach for it again', instance)
                return rows
            guest = self._guest(instance)
            running = guest is not None and guest.active()
            here = {i.host_address: i for i in hp.ledger.intervals(
                instance=instance, host=self.host, active=True)}
            for address, record in hp.journal.held_by(instance).items():
                if not hp.agent.fs.has_device(address):
                    continue  # gone from the host: device_removed
                if address in here and guest is not None:
                    row = self._reattach(instance, guest, address, record)
                    if row is not None:
                        rows.append(row)
                elif address not in here and not running:
                    rows.append(self._leave(instance, address, record))
            if running and guest is not None:
                rows.extend(self._arrive(instance, guest, here))
        return rows

    def _guest(self, instance: str) -> libvirt_guest.Guest | None:
        try:
            return libvirt_guest.Guest(self.hp.connection, instance)
        except exception.AgentError:
            return None

    def _reattach(self, instance: str, guest: libvirt_guest.Guest,
                  address: str, record: dict[str, Any]) -> Row | None:
        key = (instance, address)
        try:
            if not guest.lacks(address):
                self._failed.discard(key)
                return None
            self.hp.agent.group_binding().bind(record['group'])
            guest.attach(address, record.get('guest_address'))
        except Exception as exc:  # noqa: BLE001 - recorded, then retried
            if key in self._failed:
                LOG.debug('still cannot give %s back to %s: %s', address,
                          instance, _text(exc))
                return (instance, address, 'reattach_failed')
            self._failed.add(key)
            LOG.error('cannot give %s back to instance %s after its domain '
                      'was rewritten: %s', address, instance, _text(exc))
            self._event(instance, 'reattach_failed',
                        '%s: %s' % (address, _text(exc)))
            return (instance, address, 'reattach_failed')
        self._failed.discard(key)
        LOG.warning('gave %s back to instance %s: its domain had lost the '
                    'hot-plugged device', address, instance)
        self._event(instance, 'reattach', address)
        return (instance, address, 'reattach')

    def _leave(self, instance: str, address: str,
               record: dict[str, Any]) -> Row:
        """The instance does not hold the device here any more."""
        LOG.info('instance %s holds %s on this host no more (moved or '
                 'deleted); restoring its drivers and releasing it',
                 instance, address)
        intent = self.hp.journal.begin(instance, dict(
            record, action='detach', device=address))
        self.hp.run_detach(instance, intent)
        return (instance, address, 'released')

    def _arrive(self, instance: str, guest: libvirt_guest.Guest,
                here: dict[str, records.Interval]) -> list[Row]:
        """Give the instance, new here, the hot-plugged devices it had."""
        hp = self.hp
        mine = {i.hotplug_id for i in here.values()}
        wanted: dict[str, list[records.HotplugInfo]] = \
            collections.defaultdict(list)
        for hotplug in hp.ledger.hotplugs(instance):
            if hotplug.id not in mine:
                wanted[hotplug.alias].append(hotplug)
        if not wanted:
            return []
        old = {i.hotplug_id: i for i in hp.ledger.intervals(
            instance=instance, active=True) if i.host != self.host}
        rows: list[Row] = []
        for alias, hotplugs in sorted(wanted.items()):
            slots = [old[h.id].guest_address for h in hotplugs
                     if h.id in old and old[h.id].guest_address]
            try:
                request = request_mod.hotplug_request(hp.aliases, alias,
                                                      len(hotplugs))
                devices, members, groups = hp.choose(instance, request,
                                                     guest)
                intent = hp.journal.begin(instance, {
                    'action': 'attach', 'alias': alias,
                    'devices': list(devices), 'members': list(members),
                    'groups': groups,
                    'guest_addresses': slots
                    if len(slots) == len(hotplugs) else [],
                    'to_bind': None, 'attached': {},
                    'moved': [h.id for h in hotplugs]})
                hp.run_attach(instance, intent)
            except (exception.HotplugRefused,
                    exception.HotplugFailed) as exc:
                # No room here, or a step failed (undone): recorded lost.
                hp.journal.finish(instance)
                self._lost(instance, alias, hotplugs, _text(exc))
                rows.append((instance, alias, 'lost'))
                continue
            except exception.PassthroughException as exc:
                # The store or the ledger unreachable before any change:
                # nothing is lost; the next event of the instance retries.
                hp.journal.finish(instance)
                LOG.error('cannot give instance %s, new on this host, its '
                          'hot-plugged %s yet: %s', instance, alias,
                          _text(exc))
                rows.append((instance, alias, 'retry'))
                continue
            LOG.warning('instance %s arrived with %d hot-plugged %s '
                        'device(s) held on %s; gave it %s', instance,
                        len(hotplugs), alias, ', '.join(sorted(
                            {old[h.id].host for h in hotplugs
                             if h.id in old})) or 'no host',
                        ', '.join(devices))
            rows.extend((instance, a, 'arrived') for a in devices)
        return rows

    def _lost(self, instance: str, alias: str,
              hotplugs: list[records.HotplugInfo], why: str) -> None:
        """Record why the instance arrived without its hotplugs."""
        reason = 'lost on move to %s: %s' % (self.host, why)
        ids = {h.id for h in hotplugs}
        try:
            with self.hp.ledger.begin() as txn:
                at = self.hp.ledger.now()
                row = txn.instance(instance)
                row.host = self.host
                for held in txn.open_intervals(instance):
                    if held.hotplug_id in ids and held.host != self.host:
                        txn.end(held, at, reason)
                for hotplug_id in sorted(ids):
                    txn.remove_hotplug(hotplug_id, at, reason)
                txn.event(instance, 'reattach_failed', self.host, at,
                          '%d x %s lost on arrival: %s' % (
                              len(hotplugs), alias, why))
        except exception.PassthroughException as exc:
            LOG.error('cannot record in the ledger that instance %s lost '
                      'its hot-plugged %s: %s', instance, alias, exc.message)
        LOG.error('instance %s arrived on %s without its %d hot-plugged %s '
                  'device(s): %s', instance, self.host, len(hotplugs), alias,
                  why)

    def _event(self, instance: str, action: str, detail: str) -> None:
        try:
            with self.hp.ledger.begin() as txn:
                txn.event(instance, action, self.host, self.hp.ledger.now(),
                          detail)
        except exception.PassthroughException as exc:
            LOG.error('cannot record %s of instance %s in the ledger: %s',
                      action, instance, exc.message)
