"""passthrough_plugin.connection without a cloud: naming one, and errors."""

from __future__ import annotations

import argparse
import json
import os

import fixtures
import testtools

from passthrough_plugin import connection
from passthrough_plugin import exception


class CloudChoiceTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        for name in list(os.environ):
            if name.startswith('OS_'):
                self.useFixture(fixtures.EnvironmentVariable(name))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.clouds_yaml = os.path.join(tmp, 'clouds.yaml')
        with open(self.clouds_yaml, 'w', encoding='utf-8') as out:
            json.dump({'clouds': {name: {'auth': {
                'auth_url': 'http://127.0.0.1:9/v3', 'username': 'u',
                'password': 'p', 'project_name': 'p'}}
                for name in ('lab', 'prod')}}, out)
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', self.clouds_yaml))

    def _args(self, *argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        connection.add_arguments(parser)
        return parser.parse_args(list(argv))

    def test_configured_by_option_or_environment(self) -> None:
        self.assertFalse(connection.configured(self._args()))
        self.assertTrue(connection.configured(self._args('--os-cloud',
                                                         'lab')))
        self.useFixture(fixtures.EnvironmentVariable('OS_CLOUD', 'prod'))
        args = self._args()
        self.assertEqual('prod', args.os_cloud)
        self.assertTrue(connection.configured(args))

    def test_a_cloud_of_clouds_yaml(self) -> None:
        conn = connection.from_args(self._args('--os-cloud', 'lab'))
        self.addCleanup(conn.close)
        self.assertEqual('lab (http://127.0.0.1:9/v3)',
                         connection.cloud_name(conn))

    def test_unknown_cloud_lists_those_defined(self) -> None:
        error = self.assertRaises(exception.UnknownCloud,
                                  connection.from_cloud, 'staging')
        self.assertEqual('Unknown cloud staging: clouds of %s: lab, prod'
                         % self.clouds_yaml, str(error))

    def test_no_cloud_named_says_how_to_name_one(self) -> None:
        error = self.assertRaises(exception.UnknownCloud,
                                  connection.from_cloud)
        self.assertIn('Unknown cloud (none given)', str(error))
        self.assertIn('lab, prod', str(error))

    def test_unreachable_reason_is_the_url_and_the_errno(self) -> None:
        text = ("Unable to establish connection to http://h:5000/v3/auth/"
                "tokens: HTTPConnectionPool(host='h', port=5000): Max "
                "retries exceeded (Caused by NewConnectionError(\"x: "
                "[Errno 111] Connection refused\"))")
        self.assertEqual('Unable to establish connection to http://h:5000/'
                         'v3/auth/tokens ([Errno 111] Connection refused)',
                         connection._one_line(Exception(text)))
        self.assertEqual('a b', connection._one_line(Exception('a\n b')))
