"""tools/cloud: nova.conf merging and template rendering of the mini cloud."""

from __future__ import annotations

import sys
from pathlib import Path

import fixtures
import testtools

CLOUD = Path(__file__).resolve().parents[3] / 'tools' / 'cloud'
sys.path.insert(0, str(CLOUD))

import mc_agent  # noqa: E402
import mc_cloud  # noqa: E402
import mc_configs  # noqa: E402
import mc_procs  # noqa: E402
import mc_settings  # noqa: E402
import mc_tempest  # noqa: E402

BASE = """
[DEFAULT]
host = a
[pci]
alias = {"name": "x"}
alias = {"name": "y"}
report_in_placement = True
"""


class MergeIniTest(testtools.TestCase):

    def test_extra_key_replaces_every_value_of_that_key(self) -> None:
        merged = mc_configs.parse_ini(mc_configs.merge_ini(
            BASE, '[pci]\nalias = {"name": "z"}\n', 'extra'))
        self.assertEqual([('report_in_placement', 'True'),
                          ('alias', '{"name": "z"}')], merged['pci'])
        self.assertEqual([('host', 'a')], merged['DEFAULT'])

    def test_repeated_extra_keys_are_all_kept(self) -> None:
        extra = ('[filter_scheduler]\navailable_filters = a.all\n'
                 'available_filters = b.all\n')
        merged = mc_configs.parse_ini(
            mc_configs.merge_ini(BASE, extra, 'extra'))
        self.assertEqual([('available_filters', 'a.all'),
                          ('available_filters', 'b.all')],
                         merged['filter_scheduler'])

    def test_bad_line_names_origin_and_line(self) -> None:
        exc = self.assertRaises(mc_procs.CloudError, mc_configs.merge_ini,
                                BASE, '[pci]\nnot an option\n', 'extra #1')
        self.assertIn('extra #1 line 2', str(exc))


class PciIdsTest(testtools.TestCase):

    def test_ids_are_normalized(self) -> None:
        self.assertEqual(('8086', '1528', '1515'),
                         mc_settings.parse_pci_ids('8086:1528:1515'))
        self.assertEqual(('abcd', '0001', 'ffff'),
                         mc_settings.parse_pci_ids('ABCD:0001:FFFF'))

    def test_bad_ids_name_the_value(self) -> None:
        for bad in ('8086:1528', '8086:1528:15155', 'xyzw:1528:1515', ''):
            exc = self.assertRaises(ValueError, mc_settings.parse_pci_ids,
                                    bad)
            self.assertIn(repr(bad), str(exc))

    def test_hex_ids_select_the_linked_driver(self) -> None:
        s = mc_settings.Settings(base=Path('/x'), venv=Path('/x/venv'),
                                 fake_pci_ids='8086:1528:1515', plugin=False)
        conf = mc_configs.parse_ini(mc_configs.render('nova.conf', s))
        self.assertEqual('minicloud_hexpci.HexPciFakeDriver',
                         dict(conf['DEFAULT'])['compute_driver'])


class RenderTest(testtools.TestCase):

    def test_nova_conf_uses_the_fake_pci_driver_and_offset_ports(self) -> None:
        s = mc_settings.Settings(base=Path('/x'), venv=Path('/x/venv'),
                                 port_offset=100, plugin=False)
        conf = mc_configs.parse_ini(mc_configs.render('nova.conf', s))
        default = dict(conf['DEFAULT'])
        self.assertEqual('fake.FakeDriverWithPciResources',
                         default['compute_driver'])
        self.assertIn('127.0.0.1:5772', default['transport_url'])
        self.assertEqual(2, len([k for k, _ in conf['pci']
                                 if k == 'device_spec']))
        self.assertIn('127.0.0.1:5100',
                      dict(conf['placement'])['auth_url'])

    def test_every_template_renders(self) -> None:
        s = mc_settings.Settings(base=Path('/x'), venv=Path('/x/venv'))
        for name in ('keystone.conf', 'placement.conf', 'glance-api.conf',
                     'my.cnf'):
            self.assertNotIn('${', mc_configs.render(name, s))
        self.assertNotIn('${', mc_configs.render(
            'tempest.conf', s, image_id='i', pci_flavor='f',
            pci_flavor_over='o', pci_flavor_reject='r',
            plugin_scheduler='False', resource_classes='', traits='',
            agent_enabled='False', device_change_command=''))
        self.assertNotIn('${', mc_configs.render('nova-plugin.conf', s))
        self.assertNotIn('${', mc_configs.render(
            'passthrough-agent.conf', s, store='file', device_spec='',
            placement_auth=''))


class PluginProfileTest(testtools.TestCase):
    """The plugin-enabled cloud's nova.conf and agent configs agree."""

    def setUp(self) -> None:
        super().setUp()
        base = Path(self.useFixture(fixtures.TempDir()).path)
        venv = base / 'venv'
        for src in ('etc/glance/glance-api-paste.ini',
                    'etc/nova/api-paste.ini'):
            (venv / src).parent.mkdir(parents=True, exist_ok=True)
            (venv / src).write_text('[x]\n')
        (venv / 'lib/python3.11/site-packages/nova/virt').mkdir(parents=True)
        self.s = mc_settings.Settings(base=base, venv=venv,
                                      fake_pci_ids='8086:1528:1515')
        mc_configs.write_all(self.s)
        self.nova = mc_configs.parse_ini(
            (self.s.etc / 'nova' / 'nova.conf').read_text())

    def test_plugin_in_nova_scheduler_before_nova_pci_filter(self) -> None:
        fs = self.nova['filter_scheduler']
        enabled = dict(fs)['enabled_filters'].split(',')
        self.assertLess(enabled.index('PciPoolFilter'),
                        enabled.index('PciPassthroughFilter'))
        self.assertIn(('available_filters',
                       'passthrough_plugin.scheduler.filters.all_filters'),
                      fs)
        self.assertIn(('weight_classes',
                       'passthrough_plugin.scheduler.weighers.all_weighers'),
                      fs)
        self.assertEqual('False',
                         dict(self.nova['pci'])['report_in_placement'])
        self.assertEqual(str(self.s.reports_dir),
                         dict(self.nova['file_store'])['path'])

    def test_agents_whitelist_what_nova_does(self) -> None:
        specs = [v for k, v in self.nova['pci'] if k == 'device_spec']
        self.assertEqual(2, len(specs))
        for store in mc_configs.AGENT_STORES:
            agent = mc_configs.parse_ini(mc_configs.agent_conf_path(
                self.s, store).read_text())
            self.assertEqual(specs, [v for k, v in agent['pci']
                                     if k == 'device_spec'])
            self.assertEqual(store, dict(agent['report_store'])['driver'])
            self.assertEqual('mc-compute', dict(agent['agent'])['host'])
        placement = mc_configs.parse_ini(mc_configs.agent_conf_path(
            self.s, 'placement').read_text())
        self.assertEqual('password', dict(placement['placement'])['auth_type'])

    def test_resource_classes_follow_the_ids(self) -> None:
        self.assertEqual('CUSTOM_PCI_8086_1515', self.s.resource_class('vf'))
        s = mc_settings.Settings(base=Path('/x'), venv=Path('/x/venv'),
                                 fake_pci_ids='abcd:00ef:10ca')
        self.assertEqual('CUSTOM_PCI_ABCD_00EF', s.resource_class('pf'))
        self.assertEqual('CUSTOM_PCI_ABCD_10CA', s.resource_class('vf'))

    def test_tempest_conf_turns_every_plugin_test_on(self) -> None:
        values = mc_tempest.passthrough_values(self.s)
        self.assertEqual('True', values['agent_enabled'])
        self.assertEqual('True', values['plugin_scheduler'])
        self.assertEqual('CUSTOM_PCI_8086_1515,CUSTOM_PCI_8086_1528',
                         values['resource_classes'])
        self.assertIn('mc_hostdevs.py --base ' + str(self.s.base),
                      values['device_change_command'])
        self.assertEqual(mc_tempest.PCI_FLAVOR_REJECT,
                         values['pci_flavor_reject'])

    def test_flavors_hold_the_agents_devices_where_placement_may(
            self) -> None:
        specs = {fid: extra for fid, _, _, extra in
                 mc_cloud.flavors(self.s)}
        for fid in (mc_tempest.PCI_FLAVOR, mc_tempest.PCI_FLAVOR_REJECT):
            self.assertEqual(
                '1', specs[fid]['resources1:CUSTOM_PCI_8086_1515'])
        # Placement must not answer the over-asking flavor before the
        # plugin's filter can say why.
        self.assertFalse([k for k in specs[mc_tempest.PCI_FLAVOR_OVER]
                          if k.startswith('resources')])


class ExpectedProvidersTest(testtools.TestCase):

    def test_one_provider_per_pf_with_vfs_and_per_whole_device(self) -> None:
        devices: list[dict[str, object]] = [
            {'address': '0000:01:00.0', 'dev_type': 'type-PF',
             'parent_address': None},
            {'address': '0000:02:00.1', 'dev_type': 'type-VF',
             'parent_address': '0000:02:00.0'},
            {'address': '0000:02:00.2', 'dev_type': 'type-VF',
             'parent_address': '0000:02:00.0'},
            {'address': '0000:05:00.0', 'dev_type': 'type-PCI',
             'parent_address': None}]
        self.assertEqual({'0000:01:00.0', '0000:02:00.0', '0000:05:00.0'},
                         mc_agent.expected_providers(devices))
