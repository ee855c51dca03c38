"""The shipped unit and sudoers line keep privsep the only privileged part."""

from __future__ import annotations

import os
import pathlib
import re
import tempfile

import testtools

from passthrough_plugin.agent import netadmin
from passthrough_plugin.agent import privsep

ETC = pathlib.Path(__file__).resolve().parents[3] / 'etc' / 'systemd'
CONF = '/etc/passthrough-plugin/passthrough-plugin.conf'


def _service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (ETC / 'passthrough-agent.service').read_text().splitlines():
        if '=' in line and not line.startswith(('#', '[')):
            key, _sep, value = line.partition('=')
            values.setdefault(key.strip(), []).append(value.strip())
    return values


class UnitTest(testtools.TestCase):

    def test_the_agent_runs_unprivileged_and_confined(self) -> None:
        unit = _service()
        self.assertEqual(['passthrough'], unit['User'])
        self.assertEqual(['strict'], unit['ProtectSystem'])
        self.assertEqual({'CAP_SETUID', 'CAP_SETGID', 'CAP_AUDIT_WRITE',
                          'CAP_NET_ADMIN'},
                         set(unit['CapabilityBoundingSet'][0].split()))
        self.assertEqual([''], unit['AmbientCapabilities'])
        # The helper (same mount namespace) must be able to write /sys.
        self.assertNotIn('ProtectKernelTunables', unit)
        for key in ('PrivateTmp', 'PrivateDevices', 'ProtectHome',
                    'ProtectKernelModules', 'RestrictSUIDSGID'):
            self.assertEqual(['yes'], unit[key], key)
        # Only module loading runs with full privileges ("+").
        privileged = [c for c in unit['ExecStartPre'] + unit['ExecStart']
                      if c.startswith('+')]
        self.assertEqual(['+/sbin/modprobe -a vfio vfio_pci '
                          'vfio_iommu_type1'], privileged)
        sysusers = (ETC / 'passthrough-agent.sysusers.conf').read_text()
        self.assertIn('\nu passthrough ', sysusers)

    def test_privsep_keeps_no_capability(self) -> None:
        self.assertEqual(
            [], list(privsep.sysfs_admin.conf.capabilities))

    def test_vf_settings_helper_keeps_net_admin_only(self) -> None:
        self.assertEqual([12],  # CAP_NET_ADMIN
                         list(netadmin.net_admin.conf.capabilities))


class SudoersTest(testtools.TestCase):
    """The sudoers regular expression admits the command oslo.privsep
    builds and nothing more (checked with Python's re, which agrees with
    sudo's POSIX ERE on this pattern)."""

    def setUp(self) -> None:
        super().setUp()
        lines = [ln for ln in (ETC / 'passthrough-agent.sudoers')
                 .read_text().splitlines() if ln.startswith('passthrough ')]
        # One line per privileged context: sysfs_admin, net_admin.
        self.assertEqual(2, len(lines))
        self.patterns = [ln.partition('NOPASSWD: ')[2].partition(' ')[2]
                         for ln in lines]
        line = [ln for ln in lines if 'sysfs_admin' in ln]
        command, _sep, self.pattern = line[0].partition(
            'NOPASSWD: ')[2].partition(' ')
        self.assertEqual('/usr/bin/privsep-helper', command)
        self.assertTrue(self.pattern.startswith('^')
                        and self.pattern.endswith('$'))

    def args(self, sockpath: str) -> str:
        cmd = ['sudo', '/usr/bin/privsep-helper', '--config-file', CONF]
        self.assertEqual(privsep.__name__ + '.sysfs_admin',
                         privsep.sysfs_admin.pypath)
        cmd += ['--privsep_context', privsep.sysfs_admin.pypath,
                '--privsep_sock_path', sockpath]
        return ' '.join(cmd[2:])

    def test_matches_what_oslo_privsep_runs(self) -> None:
        for _n in range(20):
            # oslo.privsep's mkdtemp(); under the unit TMPDIR is unset.
            directory = tempfile.mkdtemp(dir='/tmp')
            os.rmdir(directory)
            sock = os.path.join(directory, 'privsep.sock')
            self.assertTrue(re.match(self.pattern, self.args(sock)), sock)

    def test_refuses_anything_slipped_in(self) -> None:
        for sock in ('/tmp/tmpab/privsep.sock --config-file /tmp/x.conf',
                     '/tmp/tmpab/privsep.sock --log-config-append /tmp/x',
                     '/tmp/../etc/privsep.sock',
                     '/home/x/tmpab/privsep.sock'):
            self.assertIsNone(re.match(self.pattern, self.args(sock)), sock)
        other = self.args('/tmp/tmpab/privsep.sock').replace(
            CONF, '/tmp/evil.conf')
        self.assertIsNone(re.match(self.pattern, other))

    def test_each_line_admits_its_own_context_only(self) -> None:
        sock = '/tmp/tmpab/privsep.sock'
        for context, pattern in zip(
                (privsep.sysfs_admin, netadmin.net_admin), self.patterns,
                strict=True):
            args = self.args(sock).replace(privsep.sysfs_admin.pypath,
                                           context.pypath)
            self.assertTrue(re.match(pattern, args), context.pypath)
        self.assertIsNone(re.match(self.patterns[1], self.args(sock)))
