"""``openstack pci server map`` and ``pci billing report`` on a real ledger."""

from __future__ import annotations

import os

import fixtures

from passthrough_plugin.lifecycle import demo
from tests.functional.osc import base

# The demo's story: 2 VFs from the flavor at 08:00 on compute-a, a GPU
# hot-plugged at 09:00:17, evacuated to compute-b at 10:15:42, deleted at
# 12:00:05 (passthrough_plugin/lifecycle/demo.py).
SERVER = demo.INSTANCE
PROJECT = demo.PROJECT


class LedgerCommandsTest(base.OscTestCase):
    """Offline commands: no cloud credentials at all in the environment."""

    def setUp(self) -> None:
        super().setUp()
        self.ledger = 'sqlite:///%s/ledger.sqlite' % self.tmp
        with fixtures.FakeLogger() as log:  # the evacuation's warning
            demo.run(self.ledger, self.tmp)
        self.assertIn('hot-plugged 1 x gpu lost', log.output)
        self.config = self.write_config(
            '[lifecycle]\nconnection = %s\n' % self.ledger)

    def pci(self, *argv: str, code: int = 0) -> base.Result:
        return self.osc('--passthrough-config-file', self.config, 'pci',
                        *argv, code=code)

    def test_map_of_a_server_at_a_time(self) -> None:
        rows = self.pci('server', 'map', '--server', SERVER, '--at',
                        '2026-11-02T09:45:00Z', '-f', 'json').json()
        self.assertEqual(
            [('compute-a', '0000:3b:02.2', None, 'flavor',
              '2026-11-02T08:00:00Z'),
             ('compute-a', '0000:3b:02.3', None, 'flavor',
              '2026-11-02T08:00:00Z'),
             ('compute-a', '0000:5e:00.0', '0000:00:07.0', 'hotplug',
              '2026-11-02T09:00:17Z')],
            sorted((r['Host'], r['Host address'], r['Guest address'],
                    r['Source'], r['Since']) for r in rows))
        self.assertEqual({SERVER}, {r['Server'] for r in rows})
        self.assertEqual({'attached'}, {r['State'] for r in rows})

        # After the evacuation: the VFs on compute-b, the GPU lost.
        table = self.pci('server', 'map', '--server', SERVER, '--at',
                         '2026-11-02T11:00:00Z', '-c', 'Host', '-c',
                         'Source').out.splitlines()
        self.assertEqual(['| Host      | Source |',
                          '| compute-b | flavor |',
                          '| compute-b | flavor |'],
                         [line for line in table if line.startswith('|')])

    def test_map_joins_a_domain_xml(self) -> None:
        rows = self.pci('server', 'map', '--domain-xml',
                        os.path.join(self.tmp, '2-hotplug.xml'), '--at',
                        '2026-11-02T09:45:00Z', '-f', 'json').json()
        states = sorted((r['Host address'], r['Guest address'], r['State'])
                        for r in rows)
        # The two VFs libvirt shows as ports are in the domain only; the
        # ledger's VFs have no guest address in this older XML.
        self.assertEqual(
            [('0000:3b:02.0', '0000:00:05.0', 'domain-only'),
             ('0000:3b:02.1', '0000:00:06.0', 'domain-only'),
             ('0000:3b:02.2', None, 'ledger-only'),
             ('0000:3b:02.3', None, 'ledger-only'),
             ('0000:5e:00.0', '0000:00:07.0', 'attached')], states)

    def test_map_bad_input_is_one_line(self) -> None:
        bad = self.pci('server', 'map', '--host-address', '0000:zz:00.0',
                       code=1)
        self.assertEqual(1, len(bad.err.splitlines()), bad.err)
        self.assertIn("'0000:zz:00.0'", bad.err)
        self.assertIn('--host-address', bad.err)
        unknown = self.pci('server', 'map', '--server',
                           '00000000-0000-4000-8000-000000000000', code=1)
        self.assertEqual(["Unknown instance '00000000-0000-4000-8000-"
                          "000000000000' in --server: the ledger has no "
                          "record of it (or it was deleted); check the UUID "
                          "with \"openstack server show\""],
                         unknown.err.splitlines())

    def test_billing_lines_and_totals(self) -> None:
        lines = self.pci('billing', 'report', '--from', '2026-11-02',
                         '--to', '2026-11-03', '-f', 'json').json()
        self.assertEqual(
            [{'Project': PROJECT, 'Server': SERVER,
              'Resource class': 'CUSTOM_PCI_8086_154C', 'Source': 'flavor',
              'Devices': 4, 'Seconds': 28810, 'Device-hours': '8.002778'},
             {'Project': PROJECT, 'Server': SERVER,
              'Resource class': 'CUSTOM_GPU_A100', 'Source': 'hotplug',
              'Devices': 1, 'Seconds': 4525, 'Device-hours': '1.256944'}],
            lines)
        totals = self.pci('billing', 'report', '--from', '2026-11-02',
                          '--to', '2026-11-03', '--totals').out
        # The same figures passthrough-billing prints (test_cli_process).
        self.assertIn('| %s | all     |   33335 | 9.259722     |' % PROJECT,
                      totals)
        csv = self.pci('billing', 'report', '--from', '2026-11-02',
                       '--to', '2026-11-03', '--totals', '-f', 'csv',
                       '--project', PROJECT).out
        self.assertEqual('"Project","Source","Seconds","Device-hours"\n'
                         '"%s","flavor",28810,"8.002778"\n'
                         '"%s","hotplug",4525,"1.256944"\n'
                         '"%s","all",33335,"9.259722"\n'
                         % (PROJECT, PROJECT, PROJECT), csv)
        other = self.pci('billing', 'report', '--from', '2026-11-02',
                         '--to', '2026-11-03', '--project', 'someone-else',
                         '-f', 'json').json()
        self.assertEqual([], other)

    def test_billing_bad_period_is_one_line(self) -> None:
        bad = self.pci('billing', 'report', '--from', '2026-11-03',
                       '--to', '2026-11-02', code=1)
        self.assertEqual(["Invalid --from '2026-11-03': must be before "
                          "--to 2026-11-02"], bad.err.splitlines())
        bad = self.pci('billing', 'report', '--from', '2026-02-30',
                       '--to', '2026-11-02', code=1)
        self.assertEqual(["Invalid --from '2026-02-30': expected an ISO "
                          "8601 date or time in UTC unless an offset is "
                          "given, e.g. 2026-11-01 or 2026-11-01T08:30:00Z"],
                         bad.err.splitlines())
        missing = self.pci('billing', 'report', '--to', '2026-11-02',
                           code=2)
        self.assertIn('--from', missing.err)
