"""The candidate bench's timing: sides take turns, bests are spread."""

from __future__ import annotations

import time
import types

import fixtures
import testtools

from passthrough_plugin.bench import candidates


class InterleavedTest(testtools.TestCase):

    def test_sides_take_turns_in_every_round(self) -> None:
        ran: list[str] = []

        def side(name: str) -> object:
            def run() -> str:
                ran.append(name)
                return '%s-%d' % (name, len(ran))
            return run

        found = candidates._interleaved(
            [(side('ours'), 2), (side('noop'), 2), (side('nova'), 1)], 3)
        self.assertEqual(['ours', 'ours', 'noop', 'noop', 'nova'] * 3, ran)
        # Each side's last result, and a best time per side.
        self.assertEqual(['ours-12', 'noop-14', 'nova-15'],
                         [result for _wall, _cpu, result in found])
        for wall, cpu, _result in found:
            self.assertGreaterEqual(wall, 0.0)
            self.assertGreaterEqual(cpu, 0.0)


class CpuTest(testtools.TestCase):

    def test_at_least_the_runs_asked_for(self) -> None:
        ran: list[int] = []
        candidates._cpu(lambda: ran.append(1), repeat=7, spread=0.0)
        self.assertEqual(7, len(ran))

    def test_runs_until_the_spread_is_covered(self) -> None:
        # A clock that moves 0.1 s per look: 0.5 s of spread wants more
        # runs than the 2 asked for.
        ticks = iter(x / 10 for x in range(1000))
        ran: list[int] = []
        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.bench.candidates.time',
            types.SimpleNamespace(monotonic=lambda: next(ticks),
                                  process_time=time.process_time)))
        candidates._cpu(lambda: ran.append(1), repeat=2, spread=0.5)
        # The deadline is 0.5 (the first look); the 2 runs asked for go
        # first, then one run per look until the clock reads 0.5.
        self.assertEqual(6, len(ran))
