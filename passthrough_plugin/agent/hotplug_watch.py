"""Host-side hotplug: devices the host gains or loses while ``run`` runs.

Every scan is compared with the one before; a device that appeared or
vanished is logged (the changed report is published by the caller). A
vanished device an instance held in the ledger is a loss: its interval is
closed with reason ``device_removed`` (which sends the detach
notification), its remembered hotplug is forgotten, and it is logged at
error level.
"""

from __future__ import annotations

from collections.abc import Callable

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import report as report_mod

LOG = logging.getLogger(__name__)
REASON = 'device_removed'
LedgerFactory = Callable[[], ledger_mod.Ledger]


class DeviceWatch:
    """Diffs successive reports of one host; records lost devices."""

    def __init__(self, ledger_factory: LedgerFactory | None) -> None:
        self._factory = ledger_factory
        self._ledger: ledger_mod.Ledger | None = None
        self.previous: set[str] | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> DeviceWatch:
        """A watch on ``[lifecycle] connection``; no ledger without it."""
        if 'lifecycle' not in conf:
            return cls(None)
        return cls(lambda: ledger_mod.Ledger.from_conf(conf))

    def observe(self, report: report_mod.HostReport
                ) -> tuple[list[str], list[str]]:
        """Compare with the previous scan: (appeared, vanished) addresses."""
        current = {d.address for d in report.devices}
        previous, self.previous = self.previous, current
        appeared = sorted(current - previous) if previous is not None else []
        vanished = sorted(previous - current) if previous is not None else []
        for address in appeared:
            LOG.info('PCI device %s appeared on %s', address, report.host)
        for address in vanished:
            LOG.warning('PCI device %s disappeared from %s', address,
                        report.host)
        if vanished:
            self.record_losses(report.host, vanished)
        return appeared, vanished

    def ledger(self) -> ledger_mod.Ledger | None:
        if self._ledger is None and self._factory is not None:
            try:
                self._ledger = self._factory()
            except exception.PassthroughException as exc:
                LOG.error('cannot open the ledger to record lost devices: '
                          '%s', exc.message)
        return self._ledger

    def record_losses(self, host: str, addresses: list[str]
                      ) -> list[records.Interval]:
        """Close the open intervals of vanished devices (``device_removed``).

        :returns: the closed intervals.
        """
        ledger = self.ledger()
        if ledger is None:
            return []
        closed: list[records.Interval] = []
        for address in addresses:
            for held in ledger.intervals(host=host, host_address=address,
                                         active=True):
                closed.extend(self._close(ledger, host, held))
        return closed

    @staticmethod
    def _close(ledger: ledger_mod.Ledger, host: str,
               held: records.Interval) -> list[records.Interval]:
        closed = []
        with ledger.begin() as txn:
            at = ledger.now()
            for row in txn.open_intervals(held.instance):
                if row.host != host or row.host_address != held.host_address:
                    continue
                closed.append(txn.end(row, at, REASON))
                if row.hotplug_id is not None:
                    txn.remove_hotplug(row.hotplug_id, at, REASON)
                txn.event(held.instance, REASON, host, at,
                          '%s vanished from the host' % held.host_address)
        for interval in closed:
            LOG.error('PCI device %s of %s held by instance %s (%s) '
                      'vanished from the host; its interval is closed with '
                      'reason %s', interval.host_address, host,
                      interval.instance, interval.source, REASON)
        return closed
