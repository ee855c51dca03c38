"""passthrough-scheduler: select, explain, claim, release on example hosts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import fixtures
import testtools

from passthrough_plugin.cmd import scheduler as cli
from passthrough_plugin.scheduler import examples

VF2 = ['--extra-spec', 'pci_passthrough:alias=vf:2']


class CliTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.config = os.path.join(self.dir, 'ps.conf')
        with open(self.config, 'w') as f:
            f.write('[file_store]\npath = %s\n[pci]\n' % os.path.join(
                self.dir, 'reports'))
            for value in examples.alias_values():
                f.write('alias = %s\n' % value)
        self.assertEqual(0, self.run_cli('examples')[0])

    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(['--config-file', self.config, *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    def test_select_table(self) -> None:
        code, out, _ = self.run_cli('select', *VF2)
        self.assertEqual(0, code)
        lines = out.splitlines()
        self.assertEqual(['RANK', 'HOST', 'WEIGHT', 'FREE', 'FREE', 'AFTER'],
                         lines[0].split())
        # pack (the default): the host whose PF already has VFs in use.
        self.assertEqual(['1', 'compute-2'], lines[1].split()[:2])
        self.assertEqual(['2', 'compute-1'], lines[2].split()[:2])
        self.assertEqual(3, len(lines))

    def test_select_json_spread(self) -> None:
        with open(self.config, 'a') as f:
            f.write('[passthrough_scheduler]\nweigh_strategy = spread\n')
        code, out, _ = self.run_cli('select', *VF2, '--format', 'json')
        self.assertEqual(0, code)
        data = json.loads(out)
        self.assertEqual('2 x vf', data['request'])
        self.assertEqual(['compute-1', 'compute-2'],
                         [h['host'] for h in data['hosts']])
        self.assertEqual(1.0, data['hosts'][0]['weight'])

    def test_explain_table_gives_every_reason(self) -> None:
        code, out, _ = self.run_cli('explain', *VF2)
        self.assertEqual(0, code)
        rows = {line.split()[0]: line for line in out.splitlines()[1:]}
        self.assertEqual(['compute-1', 'compute-2', 'compute-3',
                          'compute-4'], sorted(rows))
        self.assertIn('insufficient', rows['compute-3'])
        self.assertIn('1 free, 7 in use', rows['compute-3'])
        self.assertIn('iommu_group', rows['compute-4'])

    def test_explain_json(self) -> None:
        code, out, _ = self.run_cli('--format', 'json', 'explain', *VF2)
        self.assertEqual(0, code)
        hosts = {h['host']: h for h in json.loads(out)['hosts']}
        self.assertTrue(hosts['compute-1']['fits'])
        self.assertFalse(hosts['compute-4']['fits'])
        self.assertEqual('iommu_group', hosts['compute-4']['reason'])

    def test_nothing_fits_exits_1(self) -> None:
        code, out, _ = self.run_cli(
            'select', '--extra-spec', 'pci_passthrough:alias=vf:40')
        self.assertEqual(1, code)
        self.assertIn('no host fits 40 x vf', out)

    def test_bad_extra_spec_exits_2_naming_it(self) -> None:
        for value, words in (('vf', "'vf' is not name:count"),
                             ('nic:1', "alias 'nic' is not defined"),
                             ('vf:0', 'at least 1')):
            code, out, err = self.run_cli(
                'select', '--extra-spec', 'pci_passthrough:alias=' + value)
            self.assertEqual(2, code)
            self.assertEqual('', out)
            self.assertEqual(1, len(err.splitlines()), err)
            self.assertIn('pci_passthrough:alias', err)
            self.assertIn(words, err)

    def test_malformed_extra_spec_argument_exits_2(self) -> None:
        err = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err))
        code = cli.main(['select', '--extra-spec', 'novalue'])
        self.assertEqual(2, code)
        self.assertIn("'novalue' is not KEY=VALUE", err.getvalue())

    def test_claim_then_release(self) -> None:
        code, out, _ = self.run_cli('claim', *VF2, '--consumer', 'inst-1',
                                    '--format', 'json')
        self.assertEqual(0, code)
        claimed = json.loads(out)
        self.assertEqual('compute-2', claimed['host'])
        self.assertEqual(2, len(claimed['devices']))
        _, out, _ = self.run_cli('--format', 'json', 'explain', *VF2)
        hosts = {h['host']: h for h in json.loads(out)['hosts']}
        self.assertEqual(12, hosts['compute-2']['free_before'])
        code, out, _ = self.run_cli('release', 'compute-2', '--consumer',
                                    'inst-1')
        self.assertEqual(0, code)
        self.assertIn('released 2 device(s) of inst-1 on compute-2', out)

    def test_claim_on_a_host_that_does_not_fit(self) -> None:
        code, _, err = self.run_cli('claim', *VF2, '--consumer', 'i',
                                    '--on', 'compute-3')
        self.assertEqual(1, code)
        self.assertIn('compute-3 needs 2 x vf', err)

    def test_missing_config_file_exits_2(self) -> None:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(['--config-file', '/nonexistent.conf', 'select'],
                        out, err)
        self.assertEqual(2, code)
        self.assertIn('/nonexistent.conf', err.getvalue())

    def test_examples_print_a_working_config(self) -> None:
        reports = os.path.join(self.dir, 'quick')
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(0, cli.main(['--store-path', reports, 'examples'],
                                     out, err))
        config = os.path.join(self.dir, 'quick.conf')
        with open(config, 'w') as f:
            f.write(out.getvalue())
        self.assertIn('# stored compute-4, generation 1', out.getvalue())
        out = io.StringIO()
        self.assertEqual(0, cli.main(['--config-file', config, 'select',
                                      *VF2], out, err))
        self.assertIn('compute-2', out.getvalue())

    def test_console_script_runs(self) -> None:
        proc = subprocess.run(
            [sys.executable, '-m', 'passthrough_plugin.cmd.scheduler',
             '--config-file', self.config, 'select', *VF2],
            capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=os.getcwd()))
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn('compute-2', proc.stdout)
