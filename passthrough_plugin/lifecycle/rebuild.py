"""Rebuild: same host, same devices; no new claim, the intervals go on."""

from __future__ import annotations

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import records


def rebuild(ledger: ledger_mod.Ledger, instance: str,
            host: str) -> list[records.Interval]:
    """Record a rebuild; return the intervals that simply continue.

    A rebuild replaces the image on the same host. The guest keeps its
    devices and is billed without a break: nothing is closed or opened.

    :raises: UnknownInstance, InvalidLedgerInput when ``host`` is not the
        instance's host (that is an evacuation).
    """
    with ledger.begin() as txn:
        at = ledger.now()
        row = txn.instance(instance)
        if row.host != host:
            raise exception.InvalidLedgerInput(
                field='host', value=host,
                reason='a rebuild stays on the instance\'s host %s; a move '
                'to another host is an evacuation' % row.host)
        kept = [records.Interval.from_row(a)
                for a in txn.open_intervals(instance)]
        txn.event(instance, 'rebuild', host, at,
                  'kept %d device(s): %s' % (
                      len(kept), ', '.join(i.host_address for i in kept)))
    return kept
