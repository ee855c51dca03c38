"""Ledger safety on SQLite: read-only readers, bad files (issue 12)."""

from __future__ import annotations

import datetime
import os

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import billing
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import ledger as ledger_mod
from tests.unit.lifecycle import fakes

UTC = datetime.timezone.utc


class TestSqliteSafety(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.tmp, 'ledger.sqlite')

    def booted(self) -> fakes.LedgerFixture:
        fx = self.useFixture(fakes.LedgerFixture('sqlite:///' + self.path))
        claims.boot(fx.ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor())
        fx.clock.advance(hours=1)
        return fx

    def test_readers_do_not_wait_for_a_writer(self) -> None:
        # Writers take SQLite's write lock at BEGIN (one at a time);
        # readers must go on answering meanwhile (billing, map).
        fx = self.booted()
        reader = ledger_mod.Ledger('sqlite:///' + self.path, fx.clock)
        self.addCleanup(reader.close)
        with fx.ledger.begin() as txn:
            txn.event(fakes.INSTANCE, 'note', 'compute-a', fx.clock())
            lines = billing.report(reader, fakes.T0, fx.clock()).lines
            self.assertEqual([(fakes.INSTANCE, 7200)],
                             [(ln.instance, ln.seconds) for ln in lines])
        self.assertEqual(['note'], [e.action for e in reader.events(
            fakes.INSTANCE) if e.action == 'note'])

    def test_read_only_file(self) -> None:
        fx = self.booted()
        # An SQLite URI is not a path: nothing is created beside it.
        cwd = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(cwd)
        reader = ledger_mod.Ledger(
            'sqlite:///file:%s?mode=ro&uri=true' % self.path, fx.clock)
        self.addCleanup(reader.close)
        self.assertEqual(2, len(reader.intervals()))
        error = self.assertRaises(exception.LedgerError, claims.delete,
                                  reader, fakes.INSTANCE)
        self.assertIn('readonly', str(error))
        self.assertNotIn('\n', str(error))
        self.assertEqual([], os.listdir(cwd))

    def test_a_file_that_is_not_a_database(self) -> None:
        for data in (bytes(range(256)) * 16, b'SQLite format 3\x00junk'):
            with open(self.path, 'wb') as handle:
                handle.write(data)
            error = self.assertRaises(exception.LedgerUnavailable,
                                      ledger_mod.Ledger,
                                      'sqlite:///' + self.path)
            self.assertIn(self.path, str(error))
            self.assertNotIn('\n', str(error))
