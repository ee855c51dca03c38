"""tools/cloud: nova.conf merging and template rendering of the mini cloud."""

from __future__ import annotations

import sys
from pathlib import Path

import testtools

CLOUD = Path(__file__).resolve().parents[3] / 'tools' / 'cloud'
sys.path.insert(0, str(CLOUD))

import mc_configs  # noqa: E402
import mc_procs  # noqa: E402
import mc_settings  # noqa: E402

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
                                 fake_pci_ids='8086:1528:1515')
        conf = mc_configs.parse_ini(mc_configs.render('nova.conf', s))
        self.assertEqual('minicloud_hexpci.HexPciFakeDriver',
                         dict(conf['DEFAULT'])['compute_driver'])


class RenderTest(testtools.TestCase):

    def test_nova_conf_uses_the_fake_pci_driver_and_offset_ports(self) -> None:
        s = mc_settings.Settings(base=Path('/x'), venv=Path('/x/venv'),
                                 port_offset=100)
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
            pci_flavor_over='o', plugin_scheduler='False',
            resource_classes='', traits=''))
