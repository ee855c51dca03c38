"""The Placement server fixture: start, answer, stop, restart, clean up."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any

import testtools

from tests.functional.fixtures import placement


def _get(url: str, token: str | None = 'admin') -> Any:
    req = urllib.request.Request(url)
    if token:
        req.add_header('X-Auth-Token', token)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        return json.load(resp)


def _post(url: str, body: dict[str, object]) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method='POST',
        headers={'X-Auth-Token': 'admin',
                 'Content-Type': 'application/json'})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        assert resp.status in (200, 201)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(('127.0.0.1', port)) == 0


class PlacementFixtureTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.server = self.useFixture(placement.PlacementFixture())

    def test_answers_on_loopback_with_noauth2(self) -> None:
        self.assertTrue(self.server.url.startswith('http://127.0.0.1:'))
        versions = _get(self.server.url + '/', token=None)['versions']
        self.assertEqual('1.39', versions[0]['max_version'])
        self.assertEqual({'resource_providers': []},
                         _get(self.server.url + '/resource_providers'))
        # noauth2 still wants a token on everything but the root.
        error = self.assertRaises(
            urllib.error.HTTPError, _get,
            self.server.url + '/resource_providers', token=None)
        self.assertEqual(401, error.code)
        error.close()
        # The start's duration is recorded (speed itself is measured by
        # the benchmarks, not asserted: a busy machine is slow, not wrong).
        self.assertGreater(self.server.start_seconds, 0)

    def test_stop_start_keeps_port_and_data(self) -> None:
        url, port = self.server.url, self.server.port
        _post(url + '/resource_providers', {'name': 'kept'})
        self.server.stop()
        self.assertFalse(self.server.running)
        self.assertFalse(_listening(port))
        self.assertRaises(OSError, _get, url + '/resource_providers')
        self.server.start()
        self.assertEqual((url, port), (self.server.url, self.server.port))
        providers = _get(url + '/resource_providers')['resource_providers']
        self.assertEqual(['kept'], [rp['name'] for rp in providers])
        # A graceful stop keeps the data as well.
        _post(url + '/resource_providers', {'name': 'kept too'})
        self.server.stop(graceful=True)
        self.assertFalse(_listening(port))
        self.server.start()
        providers = _get(url + '/resource_providers')['resource_providers']
        self.assertEqual({'kept', 'kept too'},
                         {rp['name'] for rp in providers})

    def test_cleanup_kills_the_server(self) -> None:
        server = placement.PlacementFixture()
        server.setUp()
        port = server.port
        self.assertTrue(_listening(port))
        server.cleanUp()
        self.assertFalse(server.running)
        self.assertFalse(_listening(port))

    def test_failed_start_reports_the_log_tail(self) -> None:
        self.server.stop()
        # Someone else takes the port while Placement is down.
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(('127.0.0.1', self.server.port))
            squatter.listen()
            error = self.assertRaises(placement.PlacementServerError,
                                      self.server.start)
        self.assertIn(self.server.url, str(error))
        self.assertIn('log tail', str(error))
        self.assertIn('in use', str(error))
        self.assertFalse(self.server.running)


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


class PostgresPlacementFixtureTest(testtools.TestCase):

    def test_several_workers_on_postgresql(self) -> None:
        server = self.useFixture(placement.PlacementFixture(
            database='postgresql'))
        self.assertEqual(3, server.workers)
        self.assertIn('postgresql+psycopg2://', server.database_connection
                      or '')
        with open(server.config_file) as f:
            self.assertIn('allocation_conflict_retry_count = 1', f.read())
        assert server._proc is not None  # noqa: SLF001
        self.assertEqual(3, len(_children(server._proc.pid)))  # noqa: SLF001
        _post(server.url + '/resource_providers', {'name': 'on pg'})
        self.assertEqual(['on pg'], [
            rp['name'] for rp in _get(server.url + '/resource_providers')[
                'resource_providers']])
        # Stopped and started again: the same database.
        server.stop()
        server.start()
        self.assertEqual(1, len(_get(server.url + '/resource_providers')[
            'resource_providers']))

    def test_unknown_database_is_refused(self) -> None:
        error = self.assertRaises(placement.PlacementServerError,
                                  placement.PlacementFixture,
                                  database='mysql')
        self.assertEqual("database 'mysql': choose one of sqlite, "
                         "postgresql", str(error))
