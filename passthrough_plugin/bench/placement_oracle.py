"""What Placement itself holds, sampled and checked against the reports.

A :class:`Snapshot` is read from Placement's own data (each provider's
allocations, by consumer; with ``usages`` also its usages) and
:func:`violations` checks it against what the agents reported and what
each consumer asked for:

* no provider gives more devices of a class than the report has;
* a PF given whole takes all its VFs, and nobody else holds any of them;
* a request with ``passthrough:vf_anti_affinity`` holds at most one VF
  per PF (in a stable snapshot: exactly its count, on distinct PFs);
* every consumer holding anything is one a scheduler asked for;
* in a stable snapshot (nobody writing) the usages equal the sums of the
  allocations, and every consumer holds exactly what its request needs,
  on one host.

Snapshots taken while schedulers write are not atomic across providers,
so only the checks that hold for any mix of before and after are applied
to them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store.placement import mapping

# consumer -> provider uuid -> resource class -> amount
Holdings = dict[str, dict[str, dict[str, int]]]


@dataclasses.dataclass(frozen=True)
class Want:
    """What one consumer asked for: ``count`` devices of ``dev_type``."""

    dev_type: str
    count: int
    anti_affinity: bool = False


@dataclasses.dataclass
class Snapshot:
    """Placement's allocations (and usages) on our providers."""

    holdings: Holdings
    # provider uuid -> (host, address)
    names: dict[str, tuple[str, str]]
    # provider uuid -> rc -> used; only when read with ``usages``
    usages: dict[str, dict[str, int]] | None = None
    # provider uuid -> rc -> sum of its allocations
    sums: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # providers whose generation moved between the two reads
    moved: set[str] = dataclasses.field(default_factory=set)

    def consumers(self) -> set[str]:
        return set(self.holdings)


def providers(client: Any) -> dict[str, tuple[str, str]]:
    """uuid -> (host, address) of every provider of ours."""
    out = {}
    for rp in client.list_providers(required=[mapping.DEVICE]):
        parts = mapping.split_name(rp.name)
        if parts is not None:
            out[rp.uuid] = parts
    return out


def snapshot(client: Any, names: Mapping[str, tuple[str, str]], *,
             usages: bool = False) -> Snapshot:
    """Read every provider's allocations (one call each; with ``usages``
    one more each)."""
    snap = Snapshot({}, dict(names), {} if usages else None)
    for uuid in names:
        body = client._call(  # noqa: SLF001 - a read the client lacks
            'GET', '/resource_providers/%s/allocations' % uuid)
        sums = snap.sums.setdefault(uuid, {})
        for consumer, alloc in body['allocations'].items():
            for rc, n in alloc['resources'].items():
                sums[rc] = sums.get(rc, 0) + n
                snap.holdings.setdefault(consumer, {}).setdefault(
                    uuid, {})[rc] = n
        if usages:
            used = client._call(  # noqa: SLF001
                'GET', '/resource_providers/%s/usages' % uuid)
            assert snap.usages is not None
            snap.usages[uuid] = dict(used['usages'])
            if used['resource_provider_generation'] != \
                    body['resource_provider_generation']:
                snap.moved.add(uuid)
    return snap


def _devices(report: report_mod.HostReport, address: str
             ) -> dict[str, list[report_mod.Device]]:
    """The report's devices a provider stands for, by resource class."""
    out: dict[str, list[report_mod.Device]] = {}
    for dev in report.devices:
        if address in (dev.address, dev.parent_address):
            out.setdefault(dev.resource_class, []).append(dev)
    return out


def violations(snap: Snapshot, reports: Sequence[report_mod.HostReport],
               wants: Mapping[str, Want], *, stable: bool) -> list[str]:
    """Every broken rule in ``snap``; ``stable`` when nobody wrote while
    it was read (all checks), else only those true for any interleaving.
    """
    by_host = {r.host: r for r in reports}
    found: list[str] = []
    per_provider: dict[str, dict[str, dict[str, int]]] = {}
    for consumer, held in snap.holdings.items():
        for uuid, res in held.items():
            per_provider.setdefault(uuid, {})[consumer] = res
    for uuid, (host, address) in snap.names.items():
        report = by_host.get(host)
        if report is None:
            found.append('%s %s: not a host of the run' % (host, address))
            continue
        found.extend(_provider_violations(
            '%s %s' % (host, address), _devices(report, address),
            per_provider.get(uuid, {}), snap.sums.get(uuid, {})))
        if stable and snap.usages is not None and uuid not in snap.moved:
            used = {rc: n for rc, n in snap.usages.get(uuid, {}).items()
                    if n}
            sums = {rc: n for rc, n in snap.sums.get(uuid, {}).items() if n}
            if used != sums:
                found.append('%s %s: usages %s != the sums of its '
                             'allocations %s' % (host, address, used, sums))
    for consumer, held in sorted(snap.holdings.items()):
        want = wants.get(consumer)
        if want is None:
            found.append('consumer %s holds %s, but no scheduler asked for '
                         'it' % (consumer, _describe(snap, held)))
            continue
        found.extend(_consumer_violations(snap, by_host, consumer, held,
                                          want, stable))
    return found


def _provider_violations(where: str,
                         devices: Mapping[str, list[report_mod.Device]],
                         holders: Mapping[str, Mapping[str, int]],
                         sums: Mapping[str, int]) -> list[str]:
    found = []
    for rc, used in sorted(sums.items()):
        have = len(devices.get(rc, ()))
        if used > have:
            found.append('%s: %d x %s allocated, the report has %d such '
                         'devices' % (where, used, rc, have))
    pf_rc = next((rc for rc, devs in devices.items()
                  if any(d.dev_type == 'type-PF' for d in devs)), None)
    vf_rc = next((rc for rc, devs in devices.items()
                  if any(d.dev_type == 'type-VF' for d in devs)), None)
    if pf_rc is None:
        return found
    for consumer, res in sorted(holders.items()):
        if not res.get(pf_rc):
            continue
        others = sorted(c for c in holders if c != consumer)
        if others:
            found.append('%s: PF given whole to %s while %s hold(s) some of '
                         'it' % (where, consumer, ', '.join(others)))
        if vf_rc and res.get(vf_rc, 0) != len(devices[vf_rc]):
            found.append('%s: PF given whole to %s without its %d VFs '
                         '(holds %d)' % (where, consumer,
                                         len(devices[vf_rc]),
                                         res.get(vf_rc, 0)))
    return found


def _consumer_violations(snap: Snapshot,
                         by_host: Mapping[str, report_mod.HostReport],
                         consumer: str, held: Mapping[str, Mapping[str, int]],
                         want: Want, stable: bool) -> list[str]:
    found = []
    counted: dict[str, int] = {}  # provider -> devices of the wanted type
    hosts = set()
    for uuid, res in held.items():
        host, address = snap.names.get(uuid, ('?', uuid))
        hosts.add(host)
        report = by_host.get(host)
        devices = _devices(report, address) if report else {}
        for rc, n in res.items():
            if any(d.dev_type == want.dev_type for d in devices.get(rc, ())):
                counted[uuid] = counted.get(uuid, 0) + n
    if want.anti_affinity:
        for uuid, n in sorted(counted.items()):
            if n > 1:
                found.append('consumer %s asked for VF anti-affinity and '
                             'holds %d VFs of %s %s' % (
                                 consumer, n, *snap.names[uuid]))
    total = sum(counted.values())
    if total > want.count or (stable and total != want.count):
        found.append('consumer %s asked for %d %s and holds %d (%s)' % (
            consumer, want.count, want.dev_type, total,
            _describe(snap, held)))
    if stable and len(hosts) > 1:
        found.append('consumer %s holds devices on several hosts: %s' % (
            consumer, ', '.join(sorted(hosts))))
    return found


def _describe(snap: Snapshot, held: Mapping[str, Mapping[str, int]]) -> str:
    return ', '.join(
        '%s %s %s x%d' % (*snap.names.get(uuid, ('?', uuid)), rc, n)
        for uuid, res in sorted(held.items())
        for rc, n in sorted(res.items()))


class Sampler:
    """Snapshots and checks Placement in a thread while a run writes.

    A sample is taken each time the run has ``every`` more outcomes (or
    once more when it ends); the consumers a sample shows are matched to
    the workers' intent lines (printed before each claim, so a wait for
    them is bounded). ``violations`` collects every broken rule seen.
    """

    def __init__(self, client: Any, names: Mapping[str, tuple[str, str]],
                 reports: Sequence[report_mod.HostReport], run: Any, *,
                 every: int = 40) -> None:
        self.client = client
        self.names = dict(names)
        self.reports = list(reports)
        self.run = run
        self.every = every
        self.samples = 0
        self.unreadable = 0
        self.peak = 0  # most consumers seen holding devices at once
        self.violations: list[str] = []
        self._stop = threading.Event()
        self._sampled = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        self.run.poke()  # wake the wait for more outcomes
        if not self._thread.is_alive():
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError('the Placement sampler did not finish its '
                                 'sample within %.0f s' % timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            outcomes, _intents, finished = self.run.snapshot_progress()
            self.sample()
            if finished:
                return
            wanted = outcomes + self.every
            try:
                self.run.wait(
                    lambda p, wanted=wanted: self._stop.is_set() or
                    p.outcomes >= wanted or
                    len(p.exited) == self.run.processes,
                    3600, '%d more outcomes' % self.every)
            except Exception:  # noqa: BLE001 - every worker exited
                return

    def sample(self) -> None:
        try:
            snap = snapshot(self.client, self.names)
        except exception.PassthroughException:
            self.unreadable += 1  # Placement down: an outage under test
            return
        self.peak = max(self.peak, len(snap.holdings))
        self.violations.extend(self.check(snap, stable=False))
        with self._sampled:
            self.samples += 1
            self._sampled.notify_all()

    def wait_samples(self, count: int, timeout: float) -> None:
        """:raises AssertionError: when fewer than ``count`` samples were
        checked within ``timeout`` seconds."""
        with self._sampled:
            if not self._sampled.wait_for(lambda: self.samples >= count,
                                          timeout):
                raise AssertionError(
                    '%d of %d samples of Placement checked within %.0f s '
                    '(%d unreadable)' % (self.samples, count, timeout,
                                         self.unreadable))

    def check(self, snap: Snapshot, *, stable: bool) -> list[str]:
        """:func:`violations` of ``snap`` with the run's intents, waiting
        (bounded) for the intent lines of consumers not read yet."""
        unknown = snap.consumers() - set(self.run.wants())
        if unknown:
            try:
                self.run.wait(lambda p: unknown <= p.intents.keys(), 60,
                              'intent lines of the consumers %s that '
                              'Placement shows' % ', '.join(sorted(unknown)))
            except Exception as exc:  # noqa: BLE001 - reported below
                return ['%s' % exc]
        return violations(snap, self.reports, self.run.wants(),
                          stable=stable)
