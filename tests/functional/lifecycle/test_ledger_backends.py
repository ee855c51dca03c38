"""The same ledger tests on SQLite and on a private PostgreSQL cluster.

stestr (unittest loading) applies the scenarios through ``load_tests``;
pytest, which ignores ``load_tests``, runs the PostgreSQL scenario only
(tests/unit/lifecycle runs the SQLite one).
"""

from __future__ import annotations

import testscenarios
import testtools

from tests.functional.lifecycle import postgres
from tests.unit.lifecycle import contract

load_tests = testscenarios.load_tests_apply_scenarios


class TestLedgerBackends(contract.LedgerContract, testtools.TestCase):

    scenarios = [
        ('sqlite', {'backend': 'sqlite'}),
        ('postgresql', {'backend': 'postgresql'}),
    ]
    backend = 'postgresql'

    def make_url(self) -> str | None:
        if self.backend == 'sqlite':
            return None
        return self.useFixture(postgres.PostgresDatabase()).url
