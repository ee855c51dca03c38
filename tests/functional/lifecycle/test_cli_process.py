"""The two commands as real processes: output, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import fixtures
import testtools

from passthrough_plugin.lifecycle import demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


class TestCommands(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        demo.run('sqlite:///%s/ledger.sqlite' % self.tmp, self.tmp)
        self.config = os.path.join(self.tmp, 'passthrough-plugin.conf')
        with open(self.config, 'w', encoding='utf-8') as out:
            out.write('[lifecycle]\nconnection = sqlite:///%s/ledger.sqlite'
                      '\n' % self.tmp)

    def run_module(self, module: str, *args: str
                   ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=ROOT)
        return subprocess.run(
            [sys.executable, '-m', module, '--config-file', self.config,
             *args], capture_output=True, text=True, env=env, cwd=self.tmp,
            timeout=120, check=False)

    def test_billing(self) -> None:
        done = self.run_module('passthrough_plugin.cmd.billing', 'report',
                               '--from', '2026-11-02', '--to', '2026-11-03')
        self.assertEqual((0, ''), (done.returncode, done.stderr))
        self.assertIn('| c0ffee00c0ffee00c0ffee00c0ffee00 | all     | 33335 '
                      '  | 9.259722     |', done.stdout)
        done = self.run_module('passthrough_plugin.cmd.billing', 'report',
                               '--from', '2026-11-02', '--to', '2026-02-30')
        self.assertEqual(2, done.returncode)
        self.assertEqual(["passthrough-billing: error: Invalid --to "
                          "'2026-02-30': expected an ISO 8601 date or time "
                          "in UTC unless an offset is given, e.g. 2026-11-01 "
                          "or 2026-11-01T08:30:00Z"],
                         done.stderr.splitlines())
        self.assertEqual('', done.stdout)

    def test_map(self) -> None:
        done = self.run_module(
            'passthrough_plugin.cmd.ledger_map', 'map', '--domain-xml',
            '2-hotplug.xml', '--at', '2026-11-02T09:45:00Z')
        self.assertEqual((0, ''), (done.returncode, done.stderr))
        self.assertIn('| compute-a | 0000:5e:00.0 | 0000:00:07.0  | '
                      '%s | hotplug | 2026-11-02T09:00:17Z |' % demo.INSTANCE,
                      done.stdout)
        done = self.run_module('passthrough_plugin.cmd.ledger_map', 'map',
                               '--host-address', '0000:3b:20.0')
        self.assertEqual(2, done.returncode)
        self.assertEqual(1, len(done.stderr.splitlines()), done.stderr)
        self.assertIn("'0000:3b:20.0' in --host-address: slot 20 is "
                      "greater than 1f", done.stderr)
