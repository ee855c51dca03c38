"""nova-compute's pool history of this host, kept across scans and reports.

nova hands out devices in the order of its pools, and that order depends
on what was claimed and released since nova-compute started
(pci/pool_order.py). The agent keeps the same history: every report it
publishes carries the stamps (``pool_stamp``, ``join_stamp``) of the
history so far, advanced by the claims and releases the report store shows
since the last report. The history lives in a file next to the agent's
state; only the agent service's start resets it, as nova-compute's start
resets nova's pools (devices in use then are not pooled, the free ones
are pooled in address order). Scans, reports and one-shot commands carry
it on.
"""

from __future__ import annotations

import contextlib
import json
import os

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import journal
from passthrough_plugin.pci import pool_order
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base as store_base
from passthrough_plugin.store import file as file_store

LOG = logging.getLogger(__name__)
SUFFIX = '.pool-history'


def path_for(state_path: str) -> str:
    """The history file next to the agent's state file."""
    return state_path + SUFFIX


def applies(store: store_base.ReportStore) -> bool:
    """Whether ``store`` keeps the agent's report, stamps included.

    The placement store keeps providers and allocations, not the report
    (and sees VFs as counts only): there nova-compute's own pools are the
    ones that count, and stamping would cost Placement calls every scan.
    """
    return isinstance(store, file_store.FileReportStore)


def usage(store: store_base.ReportStore,
          host: str) -> dict[str, pool_order.Use] | None:
    """``{address: (status, owner, source)}`` of the devices the store
    says are in use on ``host``; None when the store cannot say."""
    try:
        report = store.get(host)
    except exception.HostReportNotFound:
        return {}
    except exception.PassthroughException as exc:
        LOG.warning('cannot read which devices are in use (%s); the pool '
                    'history stays as it was', exc.message)
        return None
    return {d.address: (d.status, d.owner, d.source) for d in report.devices
            if d.status in report_mod.IN_USE}


def _copy(report: report_mod.HostReport) -> report_mod.HostReport:
    return report_mod.HostReport.from_dict(report.to_dict(), report.host)


class PoolHistory:
    """The history file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def reset(self) -> None:
        """Forget the history: the next report is a compute start."""
        with journal.exclusive(self.path), \
                contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _load(self, host: str) -> report_mod.HostReport | None:
        try:
            with open(self.path, encoding='utf-8') as src:
                report = report_mod.HostReport.from_dict(json.load(src),
                                                         host)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, exception.InvalidHostReport) as exc:
            LOG.warning('pool history %s is unusable (%s); starting it '
                        'afresh, as nova-compute does at its start',
                        self.path, getattr(exc, 'message', exc))
            return None
        return report if report.host == host else None

    def stamp(self, report: report_mod.HostReport,
              store: store_base.ReportStore) -> report_mod.HostReport:
        """Stamp ``report`` (a fresh scan) with the history advanced to
        the devices the store says are in use now; keep it. Returns
        ``report``; unchanged when the store keeps no report."""
        if not applies(store):
            return report
        with journal.exclusive(self.path):
            before = self._load(report.host)
            now = usage(store, report.host)
            self._stamp(report, before, now)
        return report

    def _stamp(self, report: report_mod.HostReport,
               before: report_mod.HostReport | None,
               now: dict[str, pool_order.Use] | None) -> None:
        current = _copy(report)
        stamps: dict[str, tuple[int | None, int | None]] = {}
        if before is not None:
            past = pools_mod.HostPools.from_report(before)
            if now is None:
                now = {d.address: (d.status, d.owner, d.source)
                       for d in before.devices
                       if d.status in report_mod.IN_USE}
            pool_order.replay(past, now)
            pool_order.persist(past)
            stamps = {d.address: (d.pool_stamp, d.join_stamp)
                      for d in past.devices}
        now = now or {}
        for dev in current.devices:
            dev.status, dev.owner, dev.source = now.get(
                dev.address, ('available', None, None))
            # Devices new to the history (none at a start) have no
            # stamps: nova adds them after the others.
            dev.pool_stamp, dev.join_stamp = stamps.get(dev.address,
                                                        (None, None))
        pool_order.persist(pools_mod.HostPools.from_report(current))
        for dev, kept in zip(report.devices, current.devices, strict=True):
            dev.pool_stamp, dev.join_stamp = kept.pool_stamp, kept.join_stamp
        journal.write_json(self.path, current.to_dict(), '.pool-history.')


def stamped(report: report_mod.HostReport) -> bool:
    """Whether ``report`` already carries pool-history stamps."""
    return any(d.pool_stamp is not None or d.join_stamp is not None
               for d in report.devices)
