"""8 scheduler processes against one real Placement: zero overcommit.

The default run sends 8 x 60 requests (about 30 s here: Placement on
SQLite with one gunicorn thread serialises every call). Set
PASSTHROUGH_PLACEMENT_FULL=1 for the full 8 x 500 of the acceptance
criteria (about 4 minutes on 2 cores); ``tox -e bench -- placement``
runs that size too and prints claims per second.
"""

from __future__ import annotations

import os
import time

from passthrough_plugin.bench import placement as bench
from tests.functional.placement import base

REQUESTS = 500 if os.environ.get('PASSTHROUGH_PLACEMENT_FULL') else 60


class ConcurrentSchedulersTest(base.PlacementTestCase):

    def test_no_overcommit_with_8_processes(self) -> None:
        reports = bench.hosts(count=4, pfs=2, vfs=4)
        for report in reports:
            self.store.publish(report)
        began = time.monotonic()
        result = bench.contend(self.server.url, 8, REQUESTS)
        elapsed = time.monotonic() - began
        self.assertEqual([0] * 8, result['codes'])
        self.assertEqual(0, result['errors'], result['problems'])
        self.assertEqual(8 * REQUESTS, result['granted'] + result['refused'])
        self.assertGreater(result['granted'], 0)
        self.assertGreater(result['refused'], 0)  # the VFs are scarce
        checked = bench.check(self.client, reports)
        self.assertEqual([], checked['violations'])
        # What the schedulers think they hold is what Placement holds.
        held = {consumer for consumer, _host, _lines in result['held']}
        self.assertEqual(held, set(checked['holders']))
        names = {rp.uuid: rp.name for rp in self.client.list_providers()}
        for consumer, host, lines in result['held']:
            got = sorted(
                '%s %s x%d' % (names[uuid].split(':passthrough:')[1], rc, n)
                for uuid, res in checked['holders'][consumer].items()
                for rc, n in res.items())
            self.assertEqual(sorted(lines), got)
            self.assertTrue(all(names[u].startswith(host + ':passthrough:')
                                for u in checked['holders'][consumer]))
        print('\n8 processes x %d requests: %d granted, %d refused, %d '
              'released; %.1f claims/s over %.1f s (%.1f s with start-up)'
              % (REQUESTS, result['granted'], result['refused'],
                 result['released'], 8 * REQUESTS / result['wall'],
                 result['wall'], elapsed))
