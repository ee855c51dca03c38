"""Properties of clipping and summing intervals (pure, no database)."""

from __future__ import annotations

import datetime

import testtools
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from passthrough_plugin.lifecycle import billing
from passthrough_plugin.lifecycle import records

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86400


def interval(n: int, start: int, length: int | None,
             source: str) -> records.Interval:
    begin = EPOCH + datetime.timedelta(seconds=start)
    end = None if length is None else begin + datetime.timedelta(
        seconds=length)
    return records.Interval(n, 'i%d' % (n % 3), 'p', 'h', '0000:00:00.0',
                            None, 'RC', None, source, None, begin, end,
                            None)


intervals = st.lists(st.tuples(
    st.integers(0, DAY), st.one_of(st.none(), st.integers(0, DAY)),
    st.sampled_from(('flavor', 'hotplug'))), max_size=12).map(
        lambda items: [interval(n, s, length, src)
                       for n, (s, length, src) in enumerate(items)])


def total(lines: tuple[billing.Line, ...]) -> int:
    return sum(line.seconds for line in lines)


class TestBillingProperties(testtools.TestCase):

    @settings(max_examples=200, deadline=None)
    @given(intervals, st.integers(0, 2 * DAY), st.integers(0, 2 * DAY),
           st.integers(0, 2 * DAY))
    def test_splitting_the_period_loses_and_adds_nothing(
            self, items, a, b, c) -> None:
        t0, t1, t2 = (EPOCH + datetime.timedelta(seconds=x)
                      for x in sorted((a, b, c)))
        whole = total(billing.aggregate(items, t0, t2))
        parts = total(billing.aggregate(items, t0, t1)) + total(
            billing.aggregate(items, t1, t2))
        self.assertEqual(whole, parts)
        self.assertLessEqual(whole, len(items) * int(
            (t2 - t0).total_seconds()))

    @settings(max_examples=100, deadline=None)
    @given(intervals)
    def test_flavor_and_hotplug_are_apart(self, items) -> None:
        t0, t1 = EPOCH, EPOCH + datetime.timedelta(days=3)
        lines = billing.aggregate(items, t0, t1)
        for source in ('flavor', 'hotplug'):
            expected = sum(
                int(billing.clipped(i, t0, t1).total_seconds())
                for i in items if i.source == source)
            self.assertEqual(expected, total(tuple(
                ln for ln in lines if ln.source == source)))
        self.assertEqual(len({(ln.instance, ln.source) for ln in lines}),
                         len(lines))
