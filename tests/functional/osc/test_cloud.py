"""The OSC commands against a tools/cloud cloud: nova's flavors and servers.

The plugin is configured with the cloud's own nova.conf (its [pci] alias,
[report_store] and [file_store] are the ones nova-scheduler's filter
reads), so ``openstack pci explain`` answers with the reports the cloud's
passthrough-agent published for nova's compute hosts.
"""

from __future__ import annotations

import datetime

import fixtures
import openstack

from passthrough_plugin.lifecycle import ledger as ledger_mod
from tests.functional.osc import base
from tests.functional.osc import cloud


class CloudTestCase(base.OscTestCase, cloud.NovaResources):

    prefix = 'osc'

    def setUp(self) -> None:
        super().setUp()
        try:
            cloud.ensure()
        except cloud.CloudError as exc:
            self.fail(str(exc))
        for key, value in cloud.openrc().items():
            self.useFixture(fixtures.EnvironmentVariable(key, value))
        self.setup_nova(openstack.connect(cloud='envvars'))

    def pci(self, *argv: str, code: int = 0) -> base.Result:
        return self.osc('--passthrough-config-file', self.nova_conf, 'pci',
                        *argv, code=code)


class ExplainFlavorTest(CloudTestCase):

    def test_a_flavor_that_fits_by_name_and_by_id(self) -> None:
        flavor = self.flavor({'pci_passthrough:alias': '%s:1' % self.vf})
        table = self.pci('explain', '--flavor', flavor.name).out
        lines = table.splitlines()
        self.assertEqual('| Host ', lines[1][:len('| Host ')])
        self.assertEqual(
            self.hosts, sorted(line.split('|')[1].strip()
                               for line in lines[3:-1]), table)
        for line in lines[3:-1]:
            cells = [c.strip() for c in line.strip('|').split('|')]
            self.assertEqual(['yes', '', ''], [cells[1]] + cells[3:5],
                             table)

        rows = self.pci('explain', '--flavor', flavor.id, '-f',
                        'json').json()
        self.assertEqual(self.hosts, sorted(r['Host'] for r in rows))
        for row in rows:
            self.assertIs(True, row['Fits'], row)
            self.assertIsNone(row['Reason'], row)
            # One VF taken from what the host has free.
            self.assertEqual(row['Free'] - 1, row['Free after'], row)

    def test_a_flavor_no_host_fits(self) -> None:
        flavor = self.flavor({'pci_passthrough:alias': '%s:99' % self.vf})
        rows = self.pci('explain', '--flavor', flavor.name, '-f',
                        'json').json()
        self.assertEqual(self.hosts, sorted(r['Host'] for r in rows))
        for row in rows:
            self.assertEqual((False, 'insufficient'),
                             (row['Fits'], row['Reason']), row)
            self.assertIn('%s needs 99 x %s' % (row['Host'], self.vf),
                          row['Detail'])
        only = self.pci('explain', '--flavor', flavor.name, '--host',
                        self.hosts[0], '-f', 'value', '-c', 'Host', '-c',
                        'Reason').out
        self.assertEqual('%s insufficient\n' % self.hosts[0], only)

    def test_unknown_flavor_and_bad_extra_spec_are_one_line(self) -> None:
        missing = self.pci('explain', '--flavor', 'no-such-flavor', code=1)
        self.assertEqual(1, len(missing.err.splitlines()), missing.err)
        self.assertIn("'no-such-flavor'", missing.err)
        self.assertIn('flavor', missing.err)
        bad = self.flavor({'pci_passthrough:alias': 'no-such-alias:1'})
        refused = self.pci('explain', '--flavor', bad.name, code=1)
        self.assertEqual(1, len(refused.err.splitlines()), refused.err)
        self.assertIn('no-such-alias', refused.err)


    def test_a_server_asks_what_its_flavor_asks(self) -> None:
        flavor = self.flavor({'pci_passthrough:alias': '%s:1' % self.vf})
        server = self.boot(flavor)
        by_server = self.pci('explain', '--server', server.name, '-f',
                             'json').json()
        by_flavor = self.pci('explain', '--flavor', flavor.id, '-f',
                             'json').json()
        self.assertEqual(self.hosts, sorted(r['Host'] for r in by_server))
        # Nothing hot-plugged: the move asks exactly the flavor's VF.
        self.assertEqual(by_flavor, by_server)
        self.assertTrue(all(r['Free after'] == r['Free'] - 1
                            for r in by_server), by_server)
        missing = self.pci('explain', '--server', 'no-such-server', code=1)
        self.assertEqual(1, len(missing.err.splitlines()), missing.err)
        self.assertIn("'no-such-server'", missing.err)
        neither = self.pci('explain', code=2)
        self.assertIn('one of the arguments --flavor --server is required',
                      neither.err)


class HostListTest(CloudTestCase):

    def test_the_agents_hosts_are_novas(self) -> None:
        # One report per compute host, published by the host's agent.
        rows = self.pci('host', 'list', '-f', 'json').json()
        self.assertEqual(self.hosts, sorted(r['Host'] for r in rows))
        for row in rows:
            self.assertGreater(row['Devices'], 0, row)


class ServerMapTest(CloudTestCase):
    """A server named in nova, its devices from a ledger, on the bill."""

    def test_map_and_bill_a_server_by_name(self) -> None:
        server = self.boot(self.flavor({}))
        name = server.name
        host = server.compute_host
        self.assertIn(host, self.hosts)

        url = 'sqlite:///%s/ledger.sqlite' % self.tmp
        at = datetime.datetime(2026, 11, 2, 8, 0, tzinfo=datetime.UTC)
        ledger = ledger_mod.Ledger(url)
        try:
            with ledger.begin() as txn:
                txn.add_instance(server.id, server.project_id, host, {}, at)
                txn.start(txn.instance(server.id), host, '0000:02:00.1',
                          resource_class='CUSTOM_PCI_8086_1515',
                          source='flavor', at=at,
                          guest_address='0000:00:05.0')
        finally:
            ledger.close()

        rows = self.pci('server', 'map', '--server', name, '--ledger', url,
                        '-f', 'json').json()
        self.assertEqual(
            [{'Host': host, 'Host address': '0000:02:00.1',
              'Guest address': '0000:00:05.0', 'Server': server.id,
              'Server name': name, 'Source': 'flavor',
              'Since': '2026-11-02T08:00:00Z',
              'Resource class': 'CUSTOM_PCI_8086_1515',
              'State': 'attached'}], rows)
        by_id = self.pci('server', 'map', '--server', server.id, '--ledger',
                         url, '--no-names', '-f', 'value', '-c', 'Server',
                         '-c', 'Host address').out
        # -c keeps the table's column order.
        self.assertEqual('0000:02:00.1 %s\n' % server.id, by_id)
        missing = self.pci('server', 'map', '--server', 'no-such-server',
                           '--ledger', url, code=1)
        self.assertEqual(1, len(missing.err.splitlines()), missing.err)
        self.assertIn("'no-such-server'", missing.err)

        # The bill names the project and the server from keystone and nova.
        until = (datetime.datetime.now(datetime.UTC)
                 + datetime.timedelta(days=1)).date().isoformat()
        period = ('billing', 'report', '--from', '2026-11-02', '--to', until,
                  '--ledger', url)
        lines = self.pci(*period, '-f', 'json').json()
        self.assertEqual(
            [(server.project_id, 'admin', server.id, name, 'flavor', 1)],
            [(r['Project'], r['Project name'], r['Server'],
              r['Server name'], r['Source'], r['Devices']) for r in lines])
        totals = self.pci(*period, '--totals', '-f', 'json').json()
        self.assertEqual({'admin'}, {r['Project name'] for r in totals})
        bare = self.pci(*period, '--no-names', '-f', 'json').json()
        self.assertEqual(['Project', 'Server', 'Resource class', 'Source',
                          'Devices', 'Seconds', 'Device-hours'],
                         list(bare[0]))
