"""``passthrough-agent map``: the ledger's answer, from the agent's CLI."""

from __future__ import annotations

import json

import testtools
from oslo_config import cfg

from passthrough_plugin.cmd import agent as agent_cmd
from tests.unit.lifecycle import fakes
from tests.unit.lifecycle import test_cli


class AgentMapTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.cli = self.useFixture(test_cli.CliFixture())

    def run_agent(self, *args: str) -> int:
        return agent_cmd.main(['map', '--config-file', self.cli.config,
                               *args], conf=cfg.ConfigOpts())

    def test_map_rows_at_a_time(self) -> None:
        self.assertEqual(0, self.run_agent(
            '--instance', fakes.INSTANCE, '--at', '2026-11-02T09:30:00Z',
            '--format', 'json'))
        rows = json.loads(self.cli.out.getvalue())
        rows = rows['rows'] if isinstance(rows, dict) else rows
        self.assertEqual(
            [('0000:3b:02.2', 'flavor'), ('0000:3b:02.3', 'flavor'),
             ('0000:5e:00.0', 'hotplug')],
            sorted((r['host_address'], r['source']) for r in rows))

    def test_bad_address_is_one_line_exit_2(self) -> None:
        self.assertEqual(2, self.run_agent('--host-address', '0000:3b:02.9'))
        lines = self.cli.err.getvalue().splitlines()
        self.assertEqual(1, len(lines))
        self.assertIn("'0000:3b:02.9'", lines[0])
