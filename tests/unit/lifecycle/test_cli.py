"""passthrough-billing and the map sub-command, run in-process."""

from __future__ import annotations

import datetime
import io
import json

import fixtures
import testtools

from passthrough_plugin.cmd import billing as billing_cmd
from passthrough_plugin.cmd import ledger_map
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import hotplug
from tests.unit.lifecycle import fakes

UTC = datetime.timezone.utc


class CliFixture(fixtures.Fixture):
    """A ledger file with one instance, a config file naming it."""

    def _setUp(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        ledger_fx = self.useFixture(fakes.LedgerFixture())
        clock, ledger = ledger_fx.clock, ledger_fx.ledger
        pools = fakes.pools('compute-a')
        clock.now = datetime.datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)
        claims.boot(ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        clock.now = datetime.datetime(2026, 11, 2, 9, 0, 17, tzinfo=UTC)
        hotplug.attach(ledger, pools, fakes.INSTANCE, 'gpu', fakes.ALIASES)
        clock.now = datetime.datetime(2026, 11, 2, 10, 15, 42, tzinfo=UTC)
        claims.delete(ledger, fakes.INSTANCE, pools)
        self.config = tmp + '/passthrough-plugin.conf'
        with open(self.config, 'w', encoding='utf-8') as out:
            out.write('[lifecycle]\nconnection = %s\n' % ledger_fx.url)
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.out))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.err))


class TestBilling(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.cli = self.useFixture(CliFixture())

    def run_billing(self, *args: str) -> int:
        return billing_cmd.main(['--config-file', self.cli.config,
                                 'report', *args])

    def test_json_totals(self) -> None:
        self.assertEqual(0, self.run_billing(
            '--from', '2026-11-02', '--to', '2026-11-03', '--format',
            'json'))
        data = json.loads(self.cli.out.getvalue())
        self.assertEqual('2026-11-02T00:00:00Z', data['from'])
        self.assertEqual(
            [('flavor', 16284, '4.523333'), ('hotplug', 4525, '1.256944'),
             ('all', 20809, '5.780278')],
            [(t['source'], t['seconds'], t['device_hours'])
             for t in data['totals']])

    def test_table_and_csv(self) -> None:
        self.assertEqual(0, self.run_billing(
            '--from', '2026-11-02T09:00:00Z', '--to',
            '2026-11-02T10:00:00+00:00', '--project', fakes.PROJECT))
        table = self.cli.out.getvalue()
        self.assertIn('Device use from 2026-11-02T09:00:00Z to '
                      '2026-11-02T10:00:00Z', table)
        self.assertIn('| CUSTOM_GPU_A100      | hotplug | 1       | 3583 ',
                      table)
        self.cli.out.truncate(0)
        self.cli.out.seek(0)
        self.assertEqual(0, self.run_billing(
            '--from', '2026-11-02T09:00:00', '--to', '2026-11-02T10:00:00',
            '--format', 'csv'))
        self.assertEqual(
            ['project,instance,resource_class,source,devices,seconds,'
             'device_hours',
             '%s,%s,CUSTOM_PCI_8086_154C,flavor,2,7200,2.000000' % (
                 fakes.PROJECT, fakes.INSTANCE),
             '%s,%s,CUSTOM_GPU_A100,hotplug,1,3583,0.995278' % (
                 fakes.PROJECT, fakes.INSTANCE)],
            self.cli.out.getvalue().splitlines())

    def test_bad_input_is_one_line_and_exit_2(self) -> None:
        cases = [
            (('--from', '2026-13-01', '--to', '2026-11-03'),
             "Invalid --from '2026-13-01': expected an ISO 8601"),
            (('--from', '2026-11-01', '--to', 'yesterday'),
             "Invalid --to 'yesterday'"),
            (('--from', '2026-11-03', '--to', '2026-11-01'),
             "Invalid --from '2026-11-03': must be before --to 2026-11-01"),
            (('--from', '2026-11-01', '--to', '2026-11-03', '--format',
              'xml'), "argument --format: invalid choice: 'xml'"),
            (('--to', '2026-11-03',),
             'the following arguments are required: --from'),
        ]
        for args, expected in cases:
            self.cli.err.truncate(0)
            self.cli.err.seek(0)
            try:
                code = self.run_billing(*args)
            except SystemExit as exc:
                code = exc.code
            lines = self.cli.err.getvalue().splitlines()
            self.assertEqual(2, code, args)
            self.assertEqual(1, len(lines), lines)
            self.assertIn(expected, lines[0])
            self.assertTrue(lines[0].startswith('passthrough-billing'))

    def test_history(self) -> None:
        self.assertEqual(0, billing_cmd.main([
            '--config-file', self.cli.config, 'history', '--instance',
            fakes.INSTANCE, '--format', 'json']))
        data = json.loads(self.cli.out.getvalue())
        self.assertEqual(
            [('0000:3b:02.3', 'deleted'), ('0000:3b:02.2', 'deleted'),
             ('0000:5e:00.0', 'deleted')],
            [(i['host_address'], i['end_reason'])
             for i in data['intervals']])
        self.assertEqual(['boot', 'hotplug', 'delete'],
                         [e['action'] for e in data['events']])
        self.assertEqual(2, billing_cmd.main([
            '--config-file', self.cli.config, 'history', '--instance',
            fakes.OTHER]))

    def test_unreachable_ledger_exit_1(self) -> None:
        code = billing_cmd.main([
            '--ledger', 'postgresql+psycopg://nobody@127.0.0.1:1/none',
            'report', '--from', '2026-11-01', '--to', '2026-11-02'])
        self.assertEqual(1, code)
        self.assertIn('The ledger at postgresql+psycopg://nobody@127.0.0.1:'
                      '1/none cannot be opened', self.cli.err.getvalue())


class TestMapCommand(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.cli = self.useFixture(CliFixture())

    def run_map(self, *args: str) -> int:
        try:
            return ledger_map.main(['--config-file', self.cli.config, 'map',
                                    *args])
        except SystemExit as exc:
            return int(exc.code or 0)

    def test_bad_address_and_unknown_instance(self) -> None:
        self.assertEqual(2, self.run_map('--host-address', '0000:3b:02.9'))
        self.assertIn("Invalid PCI address '0000:3b:02.9' in "
                      "--host-address", self.cli.err.getvalue())
        self.assertEqual(2, self.run_map('--instance', fakes.OTHER))
        self.assertIn("Unknown instance '%s' in --instance" % fakes.OTHER,
                      self.cli.err.getvalue())
        self.assertEqual(2, self.run_map('--domain-xml', '/nonexistent'))
        self.assertEqual(3, len(self.cli.err.getvalue().splitlines()))

    def test_wired_into_an_agent_style_parser(self) -> None:
        import argparse

        from oslo_config import cfg

        common = argparse.ArgumentParser(add_help=False)
        common.add_argument('--config-file', action='append', default=[])
        parser = argparse.ArgumentParser(prog='passthrough-agent')
        sub = parser.add_subparsers(dest='command', required=True)
        ledger_map.add_map_parser(sub, parents=[common])
        args = parser.parse_args(['map', '--config-file', self.cli.config,
                                  '--host-address', '0000:3b:02.2',
                                  '--at', '2026-11-02T09:00:00Z',
                                  '--format', 'json'])
        conf = cfg.ConfigOpts()
        conf([], project='passthrough-plugin',
             default_config_files=args.config_file)
        self.assertEqual(0, args.run(args, conf), self.cli.err.getvalue())
        row, = json.loads(self.cli.out.getvalue())
        self.assertEqual(('compute-a', fakes.INSTANCE, 'flavor',
                          '2026-11-02T08:00:00Z'),
                         (row['host'], row['instance'], row['source'],
                          row['since']))

    def test_deleted_instance_holds_nothing(self) -> None:
        code = self.run_map('--instance', fakes.INSTANCE, '--format', 'json')
        self.assertEqual(0, code, self.cli.err.getvalue())
        self.assertEqual([], json.loads(self.cli.out.getvalue()))
