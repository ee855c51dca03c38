"""``openstack pci host list|show`` against a real Placement server."""

from __future__ import annotations

import uuid

from passthrough_plugin.osc import settings
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.scheduler import examples
from passthrough_plugin.store import loader
from tests.functional.fixtures import placement as placement_fixture
from tests.functional.osc import base

CONFIG = """[report_store]
driver = placement

[placement]
auth_type = admin_token
endpoint = %s
token = admin

[pci]
""" + ''.join('alias = %s\n' % a for a in examples.alias_values())


class HostCommandsTest(base.OscTestCase):
    """The four example hosts published to Placement, listed through OSC."""

    def setUp(self) -> None:
        super().setUp()
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.config = self.write_config(CONFIG % self.placement.url)
        self.conf = settings.load(self.config)
        self.store = loader.load_store(self.conf)
        for report in examples.hosts():
            self.store.publish(report)

    def pci(self, *argv: str, code: int = 0) -> base.Result:
        return self.osc('--passthrough-config-file', self.config, 'pci',
                        *argv, code=code)

    def test_list_json_table_and_a_claim(self) -> None:
        rows = {r['Host']: r for r in self.pci('host', 'list',
                                               '-f', 'json').json()}
        self.assertEqual(['compute-1', 'compute-2', 'compute-3',
                          'compute-4'], sorted(rows))
        # compute-1: two PFs, each a PF pool of 1 and a VF pool of 8.
        self.assertEqual({'Host': 'compute-1', 'Devices': 18, 'Free': 18,
                          'In use': 0, 'Unavailable': None,
                          'Reported at': None},
                         {k: v for k, v in rows['compute-1'].items()
                          if k != 'Generation'})
        before = rows['compute-1']['Generation']

        # Two VFs claimed through the engine, as the standalone
        # scheduler does: Placement now holds them for the consumer, and
        # their PF is no longer free as a whole device.
        engine = engine_mod.Engine(self.conf)
        engine.refresh()
        request = engine.request({'pci_passthrough:alias': 'vf:2'})
        engine.claim('compute-1', request, str(uuid.uuid4()))

        table = self.pci('host', 'list', '--host', 'compute-1').out
        lines = table.splitlines()
        self.assertEqual('| Host      | Generation | Devices | Free | '
                         'In use | Unavailable | Reported at |', lines[1])
        cells = [c.strip() for c in lines[3].strip('|').split('|')]
        self.assertEqual(['compute-1', '18', '15', '3', '', ''],
                         cells[:1] + cells[2:])
        self.assertGreater(int(cells[1]), before)
        self.assertEqual(5, len(lines), table)  # one host only

        value = self.pci('host', 'list', '-f', 'value', '-c', 'Host',
                         '-c', 'In use').out.splitlines()
        self.assertIn('compute-1 3', value)

    def test_show(self) -> None:
        shown = self.pci('host', 'show', 'compute-1', '-f', 'json').json()
        self.assertEqual('placement', shown['store'])
        self.assertEqual([0, 1], shown['numa_cells'])
        self.assertEqual(18, shown['devices'])
        pools = {(p['address'], p['dev_type']): (p['free'], p['total'])
                 for p in shown['pool_list']}
        self.assertEqual({('0000:10:00.0', 'type-PF'): (1, 1),
                          ('0000:10:00.0', 'type-VF'): (8, 8),
                          ('0000:20:00.0', 'type-PF'): (1, 1),
                          ('0000:20:00.0', 'type-VF'): (8, 8)}, pools)
        yaml = self.pci('host', 'show', 'compute-1', '-f', 'yaml',
                        '-c', 'host', '-c', 'devices').out
        self.assertEqual('devices: 18\nhost: compute-1\n', yaml)

    def test_errors_are_one_line(self) -> None:
        missing = self.pci('host', 'show', 'compute-9', code=1)
        self.assertEqual(['No host report for host compute-9 in the '
                          'placement store'], missing.err.splitlines())
        self.assertEqual('', missing.out)
        gone = self.osc('--passthrough-config-file', self.config + '.nope',
                        'pci', 'host', 'list', code=1)
        self.assertEqual(
            ["Invalid configuration [-] --passthrough-config-file='%s': "
             "no such file; give an existing passthrough-plugin "
             "configuration file (or set PASSTHROUGH_CONFIG_FILE)"
             % (self.config + '.nope')], gone.err.splitlines())

    def test_config_from_the_environment(self) -> None:
        self.useFixture(base.fixtures.EnvironmentVariable(
            settings.ENV_VAR, self.config))
        listed = self.osc('pci', 'host', 'list', '-f', 'value', '-c',
                          'Host')
        self.assertEqual('compute-1\ncompute-2\ncompute-3\ncompute-4\n',
                         listed.out)


class FileStoreHostTest(base.OscTestCase):
    """The embedded default: a file store, devices with their states."""

    def setUp(self) -> None:
        super().setUp()
        self.config = self.write_config(
            '[file_store]\npath = %s/reports\n' % self.tmp)
        store = loader.load_store(settings.load(self.config))
        self.reports = {r.host: r for r in examples.hosts()}
        for report in self.reports.values():
            store.publish(report)

    def test_list_and_show_devices(self) -> None:
        rows = self.osc('--passthrough-config-file', self.config, 'pci',
                        'host', 'list', '-f', 'json').json()
        expected = []
        for host, report in sorted(self.reports.items()):
            statuses = [d.status for d in report.devices]
            expected.append((host, len(statuses),
                             statuses.count('available'),
                             statuses.count('claimed')
                             + statuses.count('allocated')))
        self.assertEqual(expected, [(r['Host'], r['Devices'], r['Free'],
                                     r['In use']) for r in rows])
        self.assertEqual(
            [4 * [True]], [[isinstance(r['Reported at'], str) for r in rows]])

        shown = self.osc('--passthrough-config-file', self.config, 'pci',
                         'host', 'show', 'compute-4', '-f', 'json').json()
        self.assertEqual('file', shown['store'])
        self.assertEqual([], shown['pool_list'])
        self.assertEqual(sorted(d.address for d in
                                self.reports['compute-4'].devices),
                         sorted(d['address'] for d in shown['device_list']))
        # Every device of compute-4 shares its IOMMU group with an
        # unlisted device: the groups are named with it.
        self.assertEqual({str(g): '0000:00:1f.3' for g in range(10, 19)},
                         shown['unassignable_iommu_groups'])
        table = self.osc('--passthrough-config-file', self.config, 'pci',
                         'host', 'show', 'compute-4', '-c',
                         'unassignable_iommu_groups').out
        self.assertIn("10='0000:00:1f.3'", table)
