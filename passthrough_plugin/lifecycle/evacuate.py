"""Evacuate: ask the destination for the devices again; record what is lost."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Protocol

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import lifecycle as conf_lifecycle
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

LOG = logging.getLogger(__name__)
REQUIRE = conf_lifecycle.POLICY_REQUIRE
BEST_EFFORT = conf_lifecycle.POLICY_BEST_EFFORT
LOST_ALIAS = 'alias_undefined'


@dataclasses.dataclass(frozen=True, slots=True)
class Lost:
    """A hot-plugged device the destination could not give again."""

    interval: records.Interval
    reason: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class Evacuation:
    fit: pools_mod.Fit
    source_host: str
    opened: tuple[records.Interval, ...]
    lost: tuple[Lost, ...]
    pending_release: int


class Releaser(Protocol):
    """What frees claims: a report store's ``release`` has this shape."""

    def release(self, host: str, consumer: str) -> list[str]: ...


def evacuate(ledger: ledger_mod.Ledger, instance: str,
             destination: pools_mod.HostPools,
             flavor: request_mod.RequestSet,
             aliases: Mapping[str, alias_mod.Alias], *,
             policy: str = REQUIRE,
             numa_cells: pools_mod.Cells = None) -> Evacuation:
    """Re-create an instance's devices on ``destination``.

    The flavor's devices are required. Devices hot-plugged earlier are asked
    for again; under ``best_effort`` those the destination cannot give are
    lost: their intervals close at the evacuation time with the reason and
    they are no longer remembered. The source host is down, so its claims
    are recorded as a pending release, applied when it reports again
    (:func:`apply_pending_releases`).

    :raises: UnknownInstance, InvalidLedgerInput, EvacuateRefused
    """
    if policy not in (REQUIRE, BEST_EFFORT):
        raise exception.InvalidLedgerInput(
            field='[lifecycle] evacuate_hotplug_policy', value=policy,
            reason='expected %s or %s' % (REQUIRE, BEST_EFFORT))
    info = ledger.instance(instance)
    if info.deleted_at is not None:
        raise ledger_mod.unknown_instance(instance, 'instance')
    if info.host == destination.host:
        raise exception.InvalidLedgerInput(
            field='destination host', value=destination.host,
            reason='the instance already runs there; use rebuild')
    held = ledger.intervals(instance=instance, active=True)
    # One request per remembered hotplug, so each can be lost on its own.
    extras: list[tuple[int, request_mod.DeviceRequest | None]] = []
    for hotplug in ledger.hotplugs(instance):
        request = None
        if hotplug.alias in aliases:
            request = request_mod.hotplug_request(aliases, hotplug.alias)
        extras.append((hotplug.id, request))
    base = list(flavor.requests)
    lost: list[tuple[int, str, str]] = []
    full = [r for _h, r in extras if r is not None]
    fit = destination.fit(base + full, numa_cells)
    kept = [(h, r) for h, r in extras if r is not None]
    if not fit.ok or len(full) < len(extras):
        if policy == REQUIRE:
            reason, detail = fit.reason or LOST_ALIAS, fit.detail or (
                'a hot-plugged device\'s alias is no longer in [pci] alias')
            raise exception.EvacuateRefused(
                instance=instance, host=destination.host, reason=reason,
                detail='%s; [lifecycle] evacuate_hotplug_policy=require '
                'keeps every hot-plugged device' % detail)
        fit, kept, lost = _best_effort(destination, base, extras,
                                       numa_cells, instance)
    with ledger.begin() as txn:
        at = ledger.now()
        row = txn.instance(instance)
        why_lost = {h: (r, d) for h, r, d in lost}
        lost_out = []
        for assignment in txn.open_intervals(instance):
            if assignment.hotplug_id in why_lost:
                reason, detail = why_lost[assignment.hotplug_id]
                closed = txn.end(assignment, at, 'lost on evacuate to %s: '
                                 '%s: %s' % (destination.host, reason,
                                             detail))
                lost_out.append(Lost(closed, reason, detail))
                txn.remove_hotplug(assignment.hotplug_id, at,
                                   'lost on evacuate: %s' % reason)
            else:
                txn.end(assignment, at, 'evacuated to %s' %
                        destination.host)
        requests = base + [r for _h, r in kept if r is not None]
        hotplug_ids: list[int | None] = [None] * len(base) + [
            h for h, _r in kept]
        opened = claims.record_fit(txn, row, destination, fit, requests,
                                   at=at, hotplug_ids=hotplug_ids)
        release = txn.add_pending_release(
            instance, info.host, [i.host_address for i in held], at)
        row.host = destination.host
        txn.event(instance, 'evacuate', destination.host, at,
                  'from %s: %d device(s) again, %d lost%s' % (
                      info.host, len(opened), len(lost_out),
                      ''.join('; %s %s lost (%s)' % (
                          lo.interval.alias, lo.interval.host_address,
                          lo.reason) for lo in lost_out)))
        flavor_fit, hotplug_fit = claims.split_fit(fit, len(base))
        destination.consume(flavor_fit, instance, claims.SOURCE_FLAVOR)
        if hotplug_fit.devices:
            destination.consume(hotplug_fit, instance,
                                claims.SOURCE_HOTPLUG)
    return Evacuation(fit, info.host, tuple(opened), tuple(lost_out),
                      release)


def _best_effort(destination: pools_mod.HostPools,
                 base: list[request_mod.DeviceRequest],
                 extras: list[tuple[int, request_mod.DeviceRequest | None]],
                 numa_cells: pools_mod.Cells, instance: str
                 ) -> tuple[pools_mod.Fit,
                            list[tuple[int, request_mod.DeviceRequest]],
                            list[tuple[int, str, str]]]:
    """Flavor devices first (required), then each hotplug in order."""
    fit = destination.fit(base, numa_cells)
    if not fit.ok:
        raise exception.EvacuateRefused(
            instance=instance, host=destination.host,
            reason=fit.reason, detail='the flavor devices do not fit: %s'
            % fit.detail)
    kept: list[tuple[int, request_mod.DeviceRequest]] = []
    lost: list[tuple[int, str, str]] = []
    for hotplug_id, request in extras:
        if request is None:
            lost.append((hotplug_id, LOST_ALIAS, 'its alias is no longer '
                         'defined in [pci] alias'))
            continue
        trial = destination.fit(
            base + [r for _h, r in kept] + [request], numa_cells)
        if trial.ok:
            kept.append((hotplug_id, request))
            fit = trial
        else:
            lost.append((hotplug_id, trial.reason or 'no_fit',
                         trial.detail))
            LOG.warning('evacuate of %s to %s: hot-plugged %s lost: %s',
                        instance, destination.host, request.describe(),
                        trial.detail)
    return fit, kept, lost


def _reported_at(report: report_mod.HostReport) -> datetime.datetime | None:
    if not report.reported_at:
        return None
    try:
        value = datetime.datetime.fromisoformat(
            report.reported_at.replace('Z', '+00:00'))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def apply_pending_releases(ledger: ledger_mod.Ledger, releaser: Releaser,
                           report: report_mod.HostReport
                           ) -> list[records.PendingReleaseInfo]:
    """Free an evacuated instance's old claims once its source host is back.

    Call this with each report a host publishes. Claims are released only
    for a report made after the evacuation (a report of the old state that
    arrives late changes nothing), so a device is never promised twice.
    """
    reported = _reported_at(report)
    if reported is None:
        LOG.warning('report of %s has no usable reported_at; pending '
                    'releases wait for the next one', report.host)
        return []
    applied = []
    for pending in ledger.pending_releases(report.host):
        if reported < pending.created_at:
            continue
        if ledger.instance(pending.instance).host == report.host:
            # The instance came back to this host meanwhile: releasing the
            # consumer would free its new claims too. Keep everything; the
            # old claims stay until the instance is deleted.
            LOG.warning('instance %s runs on %s again; its claims from '
                        'before the evacuation are not released',
                        pending.instance, report.host)
            with ledger.begin() as txn:
                txn.mark_released(pending.id, ledger.now())
            continue
        released = releaser.release(report.host, pending.instance)
        LOG.info('released %s of evacuated instance %s on %s',
                 ', '.join(released) or 'nothing', pending.instance,
                 report.host)
        with ledger.begin() as txn:
            txn.mark_released(pending.id, ledger.now())
        applied.append(pending)
    return applied
