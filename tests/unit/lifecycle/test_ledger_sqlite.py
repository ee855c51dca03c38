"""The backend contract on an SQLite file (PostgreSQL: tests/functional)."""

from __future__ import annotations

import testtools

from tests.unit.lifecycle import contract


class TestLedgerSqlite(contract.LedgerContract, testtools.TestCase):

    def make_url(self) -> str | None:
        return None  # LedgerFixture: an SQLite file in a temp dir
