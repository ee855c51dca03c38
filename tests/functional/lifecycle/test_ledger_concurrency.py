"""Concurrent ledger writers (threads and processes) never overlap a device.

The issue found 106 overlapping pairs among 242 intervals written by
concurrent writers on one device. Here writers in threads and in separate
processes boot and delete instances on the same VF, each told (stale
pools) that it is free, on SQLite and on a real PostgreSQL; afterwards no
two intervals of a device share an instant, and every refusal was the
ledger's one-line LedgerError.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

import fixtures
import testscenarios
import testtools

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import ledger as ledger_mod
from tests.functional.lifecycle import postgres
from tests.unit.lifecycle import fakes

load_tests = testscenarios.load_tests_apply_scenarios
THREADS, PROCESSES, ROUNDS = 4, 3, 25
VF = {'pci_passthrough:alias': 'vf:1'}

WORKER = r'''
import sys, uuid
from passthrough_plugin import exception
from passthrough_plugin.lifecycle import claims, ledger as ledger_mod
from tests.unit.lifecycle import fakes
ledger = ledger_mod.Ledger(sys.argv[1])
done = refused = 0
for _ in range(int(sys.argv[2])):
    instance = str(uuid.uuid4())
    try:
        claims.boot(ledger, fakes.pools('compute-a'), instance,
                    fakes.PROJECT, fakes.flavor({'pci_passthrough:alias':
                                                 'vf:1'}))
    except exception.LedgerError as exc:
        refused += 1
        continue
    claims.delete(ledger, instance)
    done += 1
print(done, refused)
'''


def cycle(ledger: ledger_mod.Ledger, rounds: int,
          errors: list[BaseException], counts: list[int]) -> None:
    """Boot and delete ``rounds`` instances on the same VF."""
    for _ in range(rounds):
        instance = str(uuid.uuid4())
        try:
            claims.boot(ledger, fakes.pools('compute-a'), instance,
                        fakes.PROJECT, fakes.flavor(VF))
        except exception.LedgerError:
            counts.append(0)
            continue
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            return
        try:
            claims.delete(ledger, instance)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            return
        counts.append(1)


def overlaps(ledger: ledger_mod.Ledger) -> list[tuple[int, int]]:
    """Pairs of intervals of one device that share an instant."""
    by_device: dict[tuple[str, str], list] = {}
    for interval in ledger.intervals():
        if interval.end is not None and interval.end <= interval.start:
            continue  # empty: held nothing
        by_device.setdefault((interval.host, interval.host_address),
                             []).append(interval)
    found = []
    for intervals in by_device.values():
        intervals.sort(key=lambda i: (i.start, i.id))
        for first, second in zip(intervals, intervals[1:], strict=False):
            if first.end is None or first.end > second.start:
                found.append((first.id, second.id))
    return found


class TestConcurrentWriters(testtools.TestCase):

    scenarios = [
        ('sqlite', {'backend': 'sqlite'}),
        ('postgresql', {'backend': 'postgresql'}),
    ]
    backend = 'postgresql'

    def setUp(self) -> None:
        super().setUp()
        if self.backend == 'sqlite':
            tmp = self.useFixture(fixtures.TempDir()).path
            self.url = 'sqlite:///%s/ledger.sqlite' % tmp
        else:
            self.url = self.useFixture(postgres.PostgresDatabase()).url
        self.ledger = ledger_mod.Ledger(self.url)
        self.addCleanup(self.ledger.close)

    def test_threads_never_overlap_a_device(self) -> None:
        errors: list[BaseException] = []
        counts: list[int] = []
        ledgers = [ledger_mod.Ledger(self.url) for _ in range(THREADS)]
        for ledger in ledgers:
            self.addCleanup(ledger.close)
        threads = [threading.Thread(target=cycle,
                                    args=(ledger, ROUNDS, errors, counts))
                   for ledger in ledgers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
            self.assertFalse(thread.is_alive(), 'a writer thread did not '
                             'finish its %d rounds in 300 s' % ROUNDS)
        self.assertEqual([], errors)
        self.assertEqual(THREADS * ROUNDS, len(counts))
        self.assertGreater(sum(counts), 0)
        self.assertEqual([], overlaps(self.ledger))
        self.assertEqual(sum(counts), len(self.ledger.intervals()))

    def test_processes_never_overlap_a_device(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.getcwd()] + sys.path))
        workers = [subprocess.Popen(
            [sys.executable, '-c', WORKER, self.url, str(ROUNDS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for _ in range(PROCESSES)]
        booted = 0
        for worker in workers:
            out, err = worker.communicate(timeout=300)
            self.assertEqual(0, worker.returncode, err.decode())
            self.assertEqual(b'', err)
            done, refused = (int(x) for x in out.split())
            self.assertEqual(ROUNDS, done + refused)
            booted += done
        self.assertGreater(booted, 0)
        self.assertEqual([], overlaps(self.ledger))
        self.assertEqual(booted, len(self.ledger.intervals()))
