"""tools/cloud: nova.conf merging and template rendering of the mini cloud."""

from __future__ import annotations

import sys
from pathlib import Path

import fixtures
import testtools

CLOUD = Path(__file__).resolve().parents[3] / 'tools' / 'cloud'
sys.path.insert(0, str(CLOUD))

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
            'tempest.conf', s, image_id='i', **mc_tempest_values()))
        self.assertNotIn('${', mc_configs.render('nova-plugin.conf', s))
        self.assertNotIn('${', mc_configs.render(
            'passthrough-agent.conf', s, host='h', host_tree='/t',
            device_spec='', placement_auth=''))


def mc_tempest_values() -> dict[str, str]:
    """Every ``[passthrough]`` value tempest.conf takes, as blanks."""
    keys = ('pci_flavor', 'pci_flavor_over', 'pci_flavor_reject',
            'pci_flavor_pf', 'pci_flavor_anti_affinity', 'plugin_scheduler',
            'resource_classes', 'traits', 'agent_enabled', 'inventory',
            'device_change_command', 'map_command', 'report_command')
    return {k: 'x' for k in keys}


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

    def test_plugin_candidate_filter_after_nova_pci_filter(self) -> None:
        fs = self.nova['filter_scheduler']
        enabled = dict(fs)['enabled_filters'].split(',')
        self.assertEqual('PciPoolFilter', enabled[-1])
        self.assertIn('PciPassthroughFilter', enabled)
        self.assertIn(('available_filters',
                       'passthrough_plugin.scheduler.filters.all_filters'),
                      fs)
        self.assertIn(('weight_classes',
                       'passthrough_plugin.scheduler.weighers.all_weighers'),
                      fs)
        # nova reports PCI in Placement and claims there.
        self.assertEqual('True',
                         dict(self.nova['pci'])['report_in_placement'])
        self.assertEqual('True', dict(fs)['pci_in_placement'])
        # The scheduler reads the agents' reports in nova-inventory mode.
        self.assertEqual('placement',
                         dict(self.nova['report_store'])['driver'])
        self.assertEqual('nova',
                         dict(self.nova['placement_store'])['inventory'])
        self.assertEqual(str(self.s.reports_dir),
                         dict(self.nova['file_store'])['path'])

    def test_no_device_spec_tags_a_physical_network(self) -> None:
        # nova keeps physical_network-tagged devices out of Placement.
        for key, value in self.nova['pci']:
            if key == 'device_spec':
                self.assertNotIn('physical_network', value)

    def test_two_computes_each_with_its_own_name_and_state(self) -> None:
        self.assertEqual(('mc-compute', 'mc-compute2'),
                         mc_settings.COMPUTE_HOSTS)
        seen = set()
        for host, service in mc_settings.COMPUTE_SERVICES.items():
            self.assertIn(service, mc_cloud.SERVICES)
            conf = mc_configs.parse_ini(mc_configs.compute_conf_path(
                self.s, host).read_text())
            default = dict(conf['DEFAULT'])
            self.assertEqual(host, default['host'])
            seen.add(default['state_path'])
        self.assertEqual(2, len(seen))

    def test_agents_whitelist_what_nova_does_in_nova_inventory_mode(
            self) -> None:
        specs = [v for k, v in self.nova['pci'] if k == 'device_spec']
        self.assertEqual(2, len(specs))
        roots = set()
        for host in mc_settings.COMPUTE_HOSTS:
            agent = mc_configs.parse_ini(mc_configs.agent_conf_path(
                self.s, host).read_text())
            self.assertEqual(specs, [v for k, v in agent['pci']
                                     if k == 'device_spec'])
            self.assertEqual('placement',
                             dict(agent['report_store'])['driver'])
            self.assertEqual('nova',
                             dict(agent['placement_store'])['inventory'])
            self.assertEqual(str(self.s.reports_dir),
                             dict(agent['file_store'])['path'])
            self.assertEqual(host, dict(agent['agent'])['host'])
            roots.add(dict(agent['agent'])['sysfs_root'])
            self.assertEqual('password',
                             dict(agent['placement'])['auth_type'])
        self.assertEqual(2, len(roots))

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
        self.assertEqual('nova', values['inventory'])
        self.assertEqual('COMPUTE_MANAGED_PCI_DEVICE', values['traits'])
        self.assertEqual('CUSTOM_PCI_8086_1515,CUSTOM_PCI_8086_1528',
                         values['resource_classes'])
        for key in ('device_change_command', 'map_command',
                    'report_command'):
            self.assertIn('mc_hostdevs.py --base ' + str(self.s.base),
                          values[key])
        self.assertTrue(values['map_command'].endswith(' map'))
        self.assertTrue(values['report_command'].endswith(' report'))
        flavors = {fid for fid, _, _, _ in mc_cloud.flavors(self.s)}
        for key in ('pci_flavor', 'pci_flavor_over', 'pci_flavor_reject',
                    'pci_flavor_pf', 'pci_flavor_anti_affinity'):
            self.assertIn(values[key], flavors, key)
        text = mc_configs.render('tempest.conf', self.s, image_id='i',
                                 **values)
        self.assertIn('min_compute_nodes = 2', text)

    def test_flavors_carry_alias_and_plugin_keys_only(self) -> None:
        specs = {fid: extra for fid, _, _, extra in
                 mc_cloud.flavors(self.s)}
        for fid, extra in specs.items():
            self.assertEqual(
                [], [k for k in extra if not k.startswith(
                    ('pci_passthrough:alias', 'passthrough:'))], fid)
        self.assertEqual(
            {'pci_passthrough:alias': 'fake-vf:2',
             'passthrough:vf_anti_affinity': 'true'},
            specs[mc_tempest.PCI_FLAVOR_ANTI_AFFINITY])
