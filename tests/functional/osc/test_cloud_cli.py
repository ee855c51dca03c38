"""passthrough-scheduler and passthrough-billing against a tools/cloud cloud.

Flavors and servers are made in the cloud's real nova; the commands find
them through openstacksdk with a clouds.yaml of the test's own, as an
operator's ``--os-cloud`` would. The plugin reads the cloud's nova.conf
([pci] alias, [report_store], [file_store]), so the hosts are nova's and
their reports those the cloud's passthrough-agent published. Shares the
OSC tests' cloud (tests/functional/osc/cloud.py, one worker).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import socket

import fixtures
import openstack
import testtools
from oslo_config import cfg

from passthrough_plugin import connection
from passthrough_plugin import exception
from passthrough_plugin.cmd import billing as billing_cmd
from passthrough_plugin.cmd import scheduler as scheduler_cmd
from passthrough_plugin.conf import placement as placement_conf
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.store.placement.client import PlacementClient
from tests.functional.osc import cloud


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


class CliCloudTestCase(testtools.TestCase, cloud.NovaResources):
    """A clouds.yaml with the cloud as ``mini``; no OS_* of the caller."""

    prefix = 'cli'

    def setUp(self) -> None:
        super().setUp()
        try:
            cloud.ensure()
        except cloud.CloudError as exc:
            self.fail(str(exc))
        rc = cloud.openrc()
        for name in list(os.environ):
            if name.startswith('OS_'):
                self.useFixture(fixtures.EnvironmentVariable(name))
        auth = {'auth_url': rc['OS_AUTH_URL'], 'username': rc['OS_USERNAME'],
                'password': rc['OS_PASSWORD'],
                'project_name': rc['OS_PROJECT_NAME'],
                'user_domain_name': rc['OS_USER_DOMAIN_NAME'],
                'project_domain_name': rc['OS_PROJECT_DOMAIN_NAME']}
        region = rc.get('OS_REGION_NAME', 'RegionOne')
        down = dict(auth, auth_url='http://127.0.0.1:%d/v3' % _closed_port())
        clouds = {'clouds': {
            'mini': {'auth': auth, 'region_name': region},
            'badpw': {'auth': dict(auth, password='not-the-password'),
                      'region_name': region},
            'down': {'auth': down, 'region_name': region}}}
        tmp = self.useFixture(fixtures.TempDir()).path
        self.clouds_yaml = os.path.join(tmp, 'clouds.yaml')
        with open(self.clouds_yaml, 'w', encoding='utf-8') as out:
            json.dump(clouds, out)  # JSON is YAML
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', self.clouds_yaml))
        self.tmp = tmp
        self.setup_nova(openstack.connect(cloud='mini'))

    def scheduler(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = scheduler_cmd.main(['--config-file', self.nova_conf, *argv],
                                  out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def billing(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = billing_cmd.main(list(argv))
        return code, out.getvalue(), err.getvalue()


class ConnectionTest(CliCloudTestCase):

    def test_flavor_by_name_and_id_with_its_extra_specs(self) -> None:
        made = self.flavor({'pci_passthrough:alias': '%s:1' % self.vf})
        conn = connection.from_cloud('mini')
        self.addCleanup(conn.close)
        for key in (made.name, made.id):
            found = connection.lookup_flavor(conn, key)
            self.assertEqual(
                (made.id, made.name,
                 {'pci_passthrough:alias': '%s:1' % self.vf}),
                (found.id, found.name, dict(found.extra_specs)))

    def test_errors_are_one_line_naming_what_is_valid(self) -> None:
        made = self.flavor({})
        conn = connection.from_cloud('mini')
        self.addCleanup(conn.close)
        missing = self.assertRaises(
            exception.CloudObjectNotFound, connection.lookup_flavor, conn,
            'no-such-flavor')
        self.assertIn("No flavor 'no-such-flavor' in cloud mini", str(missing))
        self.assertIn(made.name, str(missing))
        self.assertRaises(exception.CloudObjectNotFound,
                          connection.lookup_server, conn, 'no-such-server')
        unknown = self.assertRaises(exception.UnknownCloud,
                                    connection.from_cloud, 'nope')
        self.assertIn('badpw, down, mini', str(unknown))
        self.assertIn(self.clouds_yaml, str(unknown))
        bad = connection.from_cloud('badpw')
        self.addCleanup(bad.close)
        refused = self.assertRaises(exception.CloudUnavailable,
                                    connection.lookup_flavor, bad, made.name)
        self.assertIn('credentials were refused (HTTP 401)', str(refused))
        down = connection.from_cloud('down')
        self.addCleanup(down.close)
        unreachable = self.assertRaises(
            exception.CloudUnavailable, connection.lookup_flavor, down,
            made.name)
        self.assertIn('cannot reach it', str(unreachable))
        for error in (missing, unknown, refused, unreachable):
            self.assertNotIn('\n', str(error))


class SchedulerExplainTest(CliCloudTestCase):

    def test_explain_a_flavor_by_name_and_by_id(self) -> None:
        made = self.flavor({'pci_passthrough:alias': '%s:1' % self.vf})
        code, out, err = self.scheduler('--os-cloud', 'mini', 'explain',
                                        '--flavor', made.name)
        self.assertEqual((0, ''), (code, err), out)
        lines = out.splitlines()
        self.assertEqual('flavor %s (%s): pci_passthrough:alias=%s:1' % (
            made.name, made.id, self.vf), lines[0])
        self.assertEqual(['HOST', 'FITS'], lines[1].split()[:2])
        self.assertEqual(self.hosts, sorted(
            line.split()[0] for line in lines[2:]))
        self.assertEqual({'yes'}, {line.split()[1] for line in lines[2:]})

        code, out, err = self.scheduler('--os-cloud', 'mini', 'explain',
                                        '--flavor', made.id, '--format',
                                        'json')
        self.assertEqual((0, ''), (code, err), out)
        answer = json.loads(out)
        self.assertEqual(made.name, answer['flavor']['name'])
        self.assertEqual(self.hosts, sorted(h['host']
                                            for h in answer['hosts']))
        for host in answer['hosts']:
            self.assertEqual(host['free_before'] - 1, host['free_after'])

        code, out, err = self.scheduler('--os-cloud', 'mini', 'explain',
                                        '--flavor', made.id,
                                        '--extra-spec',
                                        'pci_passthrough:alias=%s:99'
                                        % self.vf)
        self.assertEqual(1, code, out)
        self.assertEqual({'no'}, {line.split()[1]
                                  for line in out.splitlines()[2:]}, out)

    def test_cli_errors_are_one_line(self) -> None:
        for argv, expected in (
                (('--os-cloud', 'mini', 'explain', '--flavor', 'nope'),
                 "No flavor 'nope' in cloud mini"),
                (('--os-cloud', 'nope', 'explain', '--flavor', 'x'),
                 'Unknown cloud nope: clouds of %s: badpw, down, mini'
                 % self.clouds_yaml),
                (('--os-cloud', 'badpw', 'explain', '--flavor', 'x'),
                 'the credentials were refused (HTTP 401)'),
                (('explain', '--flavor', 'x'), 'Unknown cloud (none given)')):
            code, out, err = self.scheduler(*argv)
            self.assertNotEqual(0, code, argv)
            self.assertEqual('', out, argv)
            self.assertEqual(1, len(err.splitlines()), err)
            self.assertIn(expected, err)

    def test_where_a_server_could_go(self) -> None:
        made = self.flavor({'pci_passthrough:alias': '%s:1' % self.vf})
        name = self.name()
        server = self.boot(made, name)
        host = server.compute_host
        self.assertIn(host, self.hosts)

        code, out, err = self.scheduler('--os-cloud', 'mini', 'explain',
                                        '--server', name, '--format', 'json')
        self.assertEqual('', err)
        answer = json.loads(out)
        self.assertEqual({'id': server.id, 'name': name, 'host': host,
                          'flavor': made.name,
                          'flavor_devices': '1 x %s' % self.vf,
                          'with_hotplugged': '1 x %s' % self.vf},
                         answer['server'])
        # Everywhere but where it is.
        self.assertEqual(sorted(set(self.hosts) - {host}),
                         sorted(h['host'] for h in answer['hosts']))
        self.assertEqual(0 if answer['hosts'] else 1, code)

        code, out, err = self.scheduler('--os-cloud', 'mini', 'explain',
                                        '--server', server.id)
        self.assertEqual('', err)
        self.assertTrue(out.startswith(
            'server %s (%s) on %s, flavor %s: 1 x %s' % (
                name, server.id, host, made.name, self.vf)), out)

        # The bill names the server and its project when a cloud is named,
        # and is made from the ledger alone without one.
        url = 'sqlite:///%s/ledger.sqlite' % self.tmp
        at = datetime.datetime(2026, 11, 2, 8, 0, tzinfo=datetime.UTC)
        ledger = ledger_mod.Ledger(url)
        try:
            with ledger.begin() as txn:
                txn.add_instance(server.id, server.project_id, host, {}, at)
                txn.start(txn.instance(server.id), host, '0000:02:00.1',
                          resource_class='CUSTOM_PCI_8086_1515',
                          source='flavor', at=at)
        finally:
            ledger.close()
        period = ('--ledger', url, 'report', '--from', '2026-11-02', '--to',
                  '2026-11-03')
        code, out, err = self.billing(*period, '--os-cloud', 'mini',
                                      '--format', 'json')
        self.assertEqual((0, ''), (code, err))
        report = json.loads(out)
        self.assertEqual(
            [(server.project_id, 'admin', server.id, name, 'flavor', 57600)],
            [(r['project'], r['project_name'], r['instance'],
              r['instance_name'], r['source'], r['seconds'])
             for r in report['lines']])
        self.assertEqual({'admin'},
                         {t['project_name'] for t in report['totals']})
        code, out, err = self.billing(*period, '--os-cloud', 'mini')
        self.assertEqual((0, ''), (code, err))
        self.assertIn('| Instance name |', out)
        self.assertIn(' %s ' % name, out)

        code, out, err = self.billing(*period)
        self.assertEqual((0, ''), (code, err))
        self.assertNotIn('Instance name', out)
        self.assertIn(server.id, out)
        code, out, err = self.billing(*period, '--os-cloud', 'down')
        self.assertEqual(1, code, out)
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertIn('cannot reach it', err)


class PlacementConfTest(CliCloudTestCase):
    """nova.conf's [placement] (keystone password auth, the catalog) still
    reaches Placement, now through an openstacksdk connection."""

    def _conf(self, *extra: str) -> cfg.ConfigOpts:
        """The cloud's nova.conf, then ``extra`` lines of [placement]."""
        files = ['--config-file', self.nova_conf]
        if extra:
            path = os.path.join(self.tmp, 'placement.conf')
            with open(path, 'w', encoding='utf-8') as out:
                out.write('[placement]\n' + ''.join(
                    line + '\n' for line in extra))
            files += ['--config-file', path]
        conf = cfg.ConfigOpts()
        placement_conf.register_opts(conf)
        conf(files)
        return conf

    def test_nova_conf_placement_section_works_unchanged(self) -> None:
        client = PlacementClient.from_conf(self._conf())
        names = {rp.name for rp in client.list_providers()}
        self.assertLessEqual(set(self.hosts), names)
        # The catalog's URL, learnt after the first reply, names it.
        self.assertTrue(client.endpoint.startswith('http://127.0.0.1:'),
                        client.endpoint)

    def test_refused_credentials_are_placement_unavailable(self) -> None:
        client = PlacementClient.from_conf(self._conf('password = wrong'))
        error = self.assertRaises(exception.PlacementUnavailable,
                                  client.list_providers)
        self.assertIn('the placement endpoint in the catalog of http://'
                      '127.0.0.1:', str(error))
        self.assertIn('Unauthorized', str(error))
        self.assertNotIn('\n', str(error))
