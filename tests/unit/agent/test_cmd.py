"""passthrough-agent end to end on a fake host: output, exit codes, errors."""

from __future__ import annotations

import json
import os
import textwrap

import fixtures
import testtools
from oslo_config import cfg

from passthrough_plugin.cmd import agent as cmd
from passthrough_plugin.pci import report as report_mod
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import E1000E, IGB_PF, IGB_VFS, NVME_PF


class CmdTestBase(testtools.TestCase):

    iommu = True
    privileged: agent_fixtures.Privileged | None = None

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost(
            iommu=self.iommu, privileged=self.privileged))
        self.store_dir = os.path.join(self.host.root, 'reports')
        self.config = os.path.join(self.host.root, 'agent.conf')
        self.write_config('')

    def write_config(self, extra: str) -> None:
        with open(self.config, 'w') as out:
            out.write(textwrap.dedent('''
                [agent]
                host = compute-1
                [file_store]
                path = %s
                ''') % self.store_dir + textwrap.dedent(extra))

    def run_cmd(self, *argv: str) -> tuple[int, str, str]:
        out = self.useFixture(fixtures.StringStream('stdout')).stream
        err = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err))
        command, rest = argv[0], list(argv[1:])
        rc = cmd.main([command, '--config-file', self.config,
                       '--sysfs-root', str(self.host.tree.sys),
                       '--proc-root', str(self.host.tree.proc),
                       '--state-path', self.host.state_path] + rest,
                      conf=cfg.ConfigOpts(), kernel=self.host.kernel)
        out.seek(0)
        err.seek(0)
        return rc, out.read(), err.read()


class CmdTest(CmdTestBase):

    def test_discover_json_is_a_valid_report(self) -> None:
        self.write_config('''
            [pci]
            device_spec = {"vendor_id": "8086", "product_id": "10ca"}
            device_spec = {"address": "0000:01:00.0"}
            ''')
        self.assertEqual(0, self.run_cmd('configure-vfs', 'enp1s0', '2')[0])
        rc, out, err = self.run_cmd('discover', '--format', 'json')
        self.assertEqual((0, ''), (rc, err))
        report = report_mod.HostReport.from_dict(json.loads(out))
        self.assertEqual('compute-1', report.host)
        self.assertEqual([IGB_PF] + IGB_VFS[:2],
                         sorted(d.address for d in report.devices))

    def test_discover_table_all(self) -> None:
        rc, out, _err = self.run_cmd('discover', '--all')
        self.assertEqual(0, rc)
        self.assertIn('(not listed)', out)
        self.assertIn('%s  8086:10c9' % IGB_PF, out)
        self.assertIn('IOMMU: on', out)

    def test_discover_all_json_keeps_a_valid_report(self) -> None:
        rc, out, _err = self.run_cmd('discover', '--all', '--format', 'json')
        self.assertEqual(0, rc)
        data = json.loads(out)
        report_mod.HostReport.from_dict(data['report'])
        self.assertEqual(9, len(data['all_devices']))
        pf = {d['address']: d for d in data['all_devices']}[IGB_PF]
        self.assertEqual(('type-PF', 8, ['enp1s0']),
                         (pf['dev_type'], pf['total_vfs'], pf['netdevs']))

    def test_configure_vfs_from_config(self) -> None:
        self.write_config('''
            [sriov]
            vf_count = enp1s0=2
            vf_count = 0000:02:00.0=2
            ''')
        rc, out, _err = self.run_cmd('configure-vfs', '--format', 'json')
        self.assertEqual(0, rc)
        self.assertEqual({IGB_PF: IGB_VFS[:2],
                          NVME_PF: ['0000:02:00.1', '0000:02:00.2']},
                         json.loads(out))

    def test_bind_unbind_round_trip(self) -> None:
        self.run_cmd('configure-vfs', IGB_PF, '1')
        rc, out, _err = self.run_cmd('bind', IGB_VFS[0], '--format', 'json')
        self.assertEqual(0, rc)
        self.assertEqual('vfio-pci', json.loads(out)['devices'][0]['driver'])
        rc, out, _err = self.run_cmd('unbind', IGB_VFS[0])
        self.assertEqual(0, rc)
        self.assertIn('%s  igbvf' % IGB_VFS[0], out)

    def test_refused_group_exits_1_with_one_line(self) -> None:
        rc, out, err = self.run_cmd('bind', E1000E[0])
        self.assertEqual((1, ''), (rc, out))
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertIn('member %s' % E1000E[1], err)

    def test_hostdev_xml(self) -> None:
        rc, out, _err = self.run_cmd('hostdev-xml', '02:00.0',
                                     '--guest-address', '0000:00:07.0',
                                     '--format', 'json')
        self.assertEqual(0, rc)
        data = json.loads(out)
        self.assertIn("<address domain='0x0000' bus='0x02' slot='0x00' "
                      "function='0x0'/>", data['xml'])
        self.assertIn("<address type='pci' domain='0x0000' bus='0x00' "
                      "slot='0x07' function='0x0'/>", data['xml'])
        self.assertEqual(['-device', 'vfio-pci,host=0000:02:00.0,'
                          'bus=pcie.0,addr=0x7.0x0'], data['qemu'])

    def test_doctor_passes(self) -> None:
        rc, out, _err = self.run_cmd('doctor')
        self.assertEqual(0, rc, out)
        self.assertIn('PASS    iommu-groups', out)

    def test_report_and_run_publish_to_the_store(self) -> None:
        rc, out, err = self.run_cmd('report', '--format', 'json')
        self.assertEqual(0, rc, err)
        self.assertEqual('compute-1', json.loads(out)['host'])
        self.assertTrue(os.listdir(self.store_dir))
        rc, _out, err = self.run_cmd('run', '--once')
        self.assertEqual(0, rc, err)


class BadInputTest(CmdTestBase):
    """Bad input: one clear line naming the field and value, exit 2."""

    def assert_usage(self, needle: str, *argv: str) -> None:
        rc, out, err = self.run_cmd(*argv)
        self.assertEqual((2, ''), (rc, out), err)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertNotIn('Traceback', err)
        self.assertIn(needle, err)

    def test_bad_address(self) -> None:
        self.assert_usage("Invalid PCI address '0000:01:10.9' in ADDRESS "
                          "argument", 'bind', '0000:01:10.9')

    def test_bad_guest_address(self) -> None:
        self.assert_usage("'00:40.0' in --guest-address", 'hostdev-xml',
                          IGB_PF, '--guest-address', '00:40.0')

    def test_missing_device(self) -> None:
        self.assert_usage('PCI device 0000:7f:00.0 not found', 'hostdev-xml',
                          '7f:00.0')
        self.assert_usage('PCI device 0000:7f:00.0 not found', 'bind',
                          '7f:00.0')

    def test_malformed_device_spec(self) -> None:
        self.write_config('''
            [pci]
            device_spec = {"vendor_id": "80861"}
            ''')
        self.assert_usage("vendor_id '80861'", 'discover')

    def test_bad_vf_count(self) -> None:
        self.assert_usage('sriov_totalvfs is 2', 'configure-vfs', NVME_PF,
                          '5')
        self.assert_usage('give both PF and COUNT', 'configure-vfs', NVME_PF)

    def test_bad_vf_count_option(self) -> None:
        self.write_config('''
            [sriov]
            vf_count = enp1s0:4
            ''')
        self.assert_usage("[sriov] vf_count='enp1s0:4'", 'discover')

    def test_missing_config_file(self) -> None:
        os.unlink(self.config)
        self.assert_usage('agent.conf', 'discover')

    def test_unknown_binder(self) -> None:
        self.assert_usage("binder='vfio'", 'bind', IGB_PF, '--binder', 'vfio')

    def test_unknown_format(self) -> None:
        self.assert_usage("invalid choice: 'xml'", 'doctor', '--format',
                          'xml')


class NoIommuCmdTest(CmdTestBase):

    iommu = False

    def test_doctor_fails(self) -> None:
        rc, out, _err = self.run_cmd('doctor', '--format', 'json')
        self.assertEqual(1, rc)
        self.assertFalse(json.loads(out)['ok'])

