"""Device-hours from the ledger, clipped to a period, exact to the second."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from collections.abc import Callable, Iterable
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import records

UTC = datetime.timezone.utc
HOURS = decimal.Decimal('0.000001')
SOURCE_ORDER = {'flavor': 0, 'hotplug': 1}

LINE_COLUMNS = (('project', 'Project'), ('instance', 'Instance'),
                ('resource_class', 'Resource class'), ('source', 'Source'),
                ('devices', 'Devices'), ('seconds', 'Seconds'),
                ('device_hours', 'Device-hours'))
TOTAL_COLUMNS = (('project', 'Project'), ('source', 'Source'),
                 ('seconds', 'Seconds'), ('device_hours', 'Device-hours'))


def device_hours(seconds: int) -> decimal.Decimal:
    return (decimal.Decimal(seconds) / 3600).quantize(
        HOURS, rounding=decimal.ROUND_HALF_UP)


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    """Device use of one instance, resource class and source."""

    project: str
    instance: str
    resource_class: str
    source: str
    devices: int
    seconds: int

    @property
    def device_hours(self) -> decimal.Decimal:
        return device_hours(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data['device_hours'] = str(self.device_hours)
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    start: datetime.datetime
    end: datetime.datetime
    lines: tuple[Line, ...]

    def totals(self) -> list[dict[str, Any]]:
        """Per project: flavor devices, hotplug add-ons, and all."""
        sums: dict[tuple[str, str], int] = {}
        for line in self.lines:
            for source in (line.source, 'all'):
                key = (line.project, source)
                sums[key] = sums.get(key, 0) + line.seconds
        order = {'flavor': 0, 'hotplug': 1, 'all': 2}
        return [{'project': project, 'source': source, 'seconds': seconds,
                 'device_hours': str(device_hours(seconds))}
                for (project, source), seconds in sorted(
                    sums.items(), key=lambda kv: (kv[0][0],
                                                  order.get(kv[0][1], 9)))]

    def to_dict(self) -> dict[str, Any]:
        return {'from': records.iso(self.start),
                'to': records.iso(self.end),
                'lines': [line.to_dict() for line in self.lines],
                'totals': self.totals()}


def clipped(interval: records.Interval, start: datetime.datetime,
            end: datetime.datetime) -> datetime.timedelta:
    """The part of [interval.start, interval.end) inside [start, end)."""
    stop = end if interval.end is None else min(interval.end, end)
    begin = max(interval.start, start)
    return max(stop - begin, datetime.timedelta(0))


def aggregate(intervals: Iterable[records.Interval],
              start: datetime.datetime,
              end: datetime.datetime,
              progress: Callable[[int, int], None] | None = None
              ) -> tuple[Line, ...]:
    """Sum clipped intervals per (project, instance, class, source).

    ``progress(summed, total)`` is told every 1000 intervals and at the end.
    """
    spans: dict[tuple[str, str, str, str], datetime.timedelta] = {}
    counts: dict[tuple[str, str, str, str], int] = {}
    rows = list(intervals)
    for n, interval in enumerate(rows, 1):
        if progress is not None and (n % 1000 == 0 or n == len(rows)):
            progress(n, len(rows))
        used = clipped(interval, start, end)
        if not used:
            continue
        key = (interval.project, interval.instance, interval.resource_class,
               interval.source)
        spans[key] = spans.get(key, datetime.timedelta(0)) + used
        counts[key] = counts.get(key, 0) + 1
    lines = [Line(p, i, rc, s, counts[(p, i, rc, s)],
                  # Sums of whole-second intervals stay whole; a fraction
                  # (sub-second clocks) is cut, never rounded up.
                  int(span // datetime.timedelta(seconds=1)))
             for (p, i, rc, s), span in spans.items()]
    lines.sort(key=lambda ln: (ln.project, ln.instance,
                               SOURCE_ORDER.get(ln.source, 9),
                               ln.resource_class))
    return tuple(lines)


def report(ledger: ledger_mod.Ledger, start: datetime.datetime,
           end: datetime.datetime, project: str | None = None,
           progress: Callable[[int, int], None] | None = None) -> Report:
    """Device use in [start, end); open intervals count until now.

    ``progress(summed, total)``: see :func:`aggregate`.

    :raises: InvalidLedgerInput when start is not before end.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start >= end:
        raise exception.InvalidLedgerInput(
            field='--from', value=records.iso(start),
            reason='must be before --to %s' % records.iso(end))
    stop = min(end, ledger.now())
    intervals = ledger.overlapping(start, end, project)
    return Report(start, end, aggregate(intervals, start, max(stop, start),
                                        progress))
