"""The installed entry points load, and OSC lists and explains the commands."""

from __future__ import annotations

import importlib.metadata
import os

from cliff import command as cliff_command

from passthrough_plugin.osc import plugin
from tests.functional.osc import base

GROUP = 'openstack.passthrough.v1'


class EntryPointsTest(base.OscTestCase):

    def test_the_installed_entry_points_load(self) -> None:
        extensions = {ep.name: ep for ep in importlib.metadata.entry_points(
            group='openstack.cli.extension')}
        self.assertIs(plugin, extensions['passthrough'].load())
        commands = {ep.name: ep.load() for ep in
                    importlib.metadata.entry_points(group=GROUP)}
        for name in ('pci_host_list', 'pci_host_show', 'pci_explain',
                     'pci_server_map', 'pci_billing_report'):
            self.assertIn(name, commands)
        for name, found in commands.items():
            self.assertTrue(issubclass(found, cliff_command.Command), name)
        # OSC derives the group from these.
        self.assertEqual((GROUP, '1'), (
            'openstack.%s.v%s' % (plugin.API_NAME, plugin.DEFAULT_API_VERSION),
            plugin.DEFAULT_API_VERSION))

    def test_openstack_lists_and_explains_them(self) -> None:
        listed = self.osc('command', 'list', '--group', GROUP, '-f',
                          'json').json()
        names = {c for group in listed for c in group['Commands']}
        self.assertTrue({'pci host list', 'pci host show', 'pci explain',
                         'pci server map', 'pci billing report'} <= names,
                        names)
        shown = self.osc('help', 'pci', 'explain').out
        self.assertIn('--flavor <flavor>', shown)
        self.assertIn('-f {csv,json,table,value,yaml}', shown)
        top = self.osc('--help').out
        self.assertIn('--passthrough-config-file <path>', top)


class ConfigFileTest(base.OscTestCase):

    def test_bad_files_are_one_line_naming_the_file(self) -> None:
        garbage = self.write_config('garbage [[[\n', 'garbage.conf')
        binary = os.path.join(self.tmp, 'binary.conf')
        with open(binary, 'wb') as handle:
            handle.write(b'\xff\xfe[x]\n')
        for path, reason in (
                (garbage, 'not an oslo.config INI file: '),
                (binary, 'not UTF-8 text; an oslo.config INI file'),
                (self.tmp, 'cannot read it: Is a directory')):
            bad = self.osc('--passthrough-config-file', path, 'pci', 'host',
                           'list', code=1)
            lines = bad.err.splitlines()
            self.assertEqual(1, len(lines), bad.err)
            self.assertTrue(lines[0].startswith(
                "Invalid configuration [-] --passthrough-config-file='%s': "
                "%s" % (path, reason)), lines[0])
            self.assertEqual('', bad.out)

    def test_unknown_store_driver_names_the_installed_ones(self) -> None:
        path = self.write_config('[report_store]\ndriver = nope\n')
        bad = self.osc('--passthrough-config-file', path, 'pci', 'host',
                       'list', code=1)
        self.assertEqual(["Invalid configuration [report_store] "
                          "driver='nope': no such report store; installed: "
                          "file, placement"], bad.err.splitlines())
