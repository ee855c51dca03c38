"""What passthrough-agent refuses (issue 12), end to end on a fake host."""

from __future__ import annotations

import json
import os

from oslo_config import cfg

from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.store import loader
from tests.unit.agent.fixtures import IGB_PF, IGB_VFS, NVME_PF
from tests.unit.agent.test_cmd import CmdTestBase

VF_SPEC = '''
    [pci]
    device_spec = {"vendor_id": "8086", "product_id": "10ca"}
    '''


class RefusalTest(CmdTestBase):

    def one_line(self, rc: int, out: str, err: str, code: int = 1) -> str:
        self.assertEqual((code, ''), (rc, out), err)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertNotIn('Traceback', err)
        return err

    # -- item 2: the chain above a device ------------------------------------
    def test_bind_names_the_chain_and_force_takes_it(self) -> None:
        self.run_cmd('configure-vfs', IGB_PF, '2')
        self.host.tree.add_virtual_netdev('bond0', 'bond')
        self.host.tree.enslave('enp1s0v0', 'bond0')
        self.host.tree.add_route('bond0')
        err = self.one_line(*self.run_cmd('bind', IGB_VFS[0]))
        self.assertIn('enp1s0v0 -> bond0 -> 10.0.0.0/24 route', err)
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[0]))
        rc, _out, err = self.run_cmd('bind', IGB_VFS[0], '--force')
        self.assertEqual(0, rc, err)
        self.assertEqual('vfio-pci', self.host.driver(IGB_VFS[0]))

    def test_bind_of_an_nvme_with_swap_is_refused(self) -> None:
        self.host.tree.swapon('/dev/nvme0n1')
        err = self.one_line(*self.run_cmd('bind', NVME_PF))
        self.assertIn('nvme0n1 -> active swap', err)

    # -- item 3: VFs in use are not destroyed --------------------------------
    def test_configure_vfs_keeps_vfs_bound_to_vfio(self) -> None:
        self.run_cmd('configure-vfs', IGB_PF, '2')
        self.assertEqual(0, self.run_cmd('bind', IGB_VFS[1])[0])
        writes = len(self.host.kernel.writes)
        for count in ('0', '4'):
            err = self.one_line(*self.run_cmd('configure-vfs', IGB_PF,
                                              count))
            self.assertIn('%s (bound to vfio-pci)' % IGB_VFS[1], err)
            self.assertIn('--force', err)
        self.assertEqual(writes, len(self.host.kernel.writes))
        self.assertEqual('2', (self.host.tree.dev(IGB_PF) / 'sriov_numvfs')
                         .read_text().strip())
        rc, out, err = self.run_cmd('configure-vfs', IGB_PF, '0', '--force',
                                    '--format', 'json')
        self.assertEqual((0, {IGB_PF: []}), (rc, json.loads(out)), err)

    def test_run_does_not_apply_a_count_that_removes_bound_vfs(self) -> None:
        self.run_cmd('configure-vfs', IGB_PF, '2')
        self.assertEqual(0, self.run_cmd('bind', IGB_VFS[0])[0])
        self.write_config('''
            [sriov]
            vf_count = enp1s0=4
            ''')
        rc, _out, err = self.run_cmd('run', '--once')
        self.assertEqual(0, rc, err)
        self.assertIn('%s (bound to vfio-pci)' % IGB_VFS[0], err)
        self.assertEqual(('2', 'vfio-pci'), (
            (self.host.tree.dev(IGB_PF) / 'sriov_numvfs').read_text().strip(),
            self.host.driver(IGB_VFS[0])))

    def test_configure_vfs_keeps_vfs_held_by_an_instance(self) -> None:
        self.write_config(VF_SPEC)
        self.run_cmd('configure-vfs', IGB_PF, '2')
        self.assertEqual(0, self.run_cmd('report')[0])
        conf = cfg.ConfigOpts()
        store_conf.register_opts(conf)
        conf(['--config-file', self.config], project='passthrough-plugin')
        loader.load_store(conf).claim('compute-1', 'instance-1',
                                      [IGB_VFS[0]])
        err = self.one_line(*self.run_cmd('configure-vfs', IGB_PF, '0'))
        self.assertIn('%s (held by instance-1)' % IGB_VFS[0], err)
        self.assertEqual(IGB_VFS[:2], sorted(
            os.path.basename(os.readlink(self.host.tree.dev(IGB_PF) / n))
            for n in ('virtfn0', 'virtfn1')))
        # The same count again changes nothing and is not refused.
        self.assertEqual(0, self.run_cmd('configure-vfs', IGB_PF, '2')[0])

    # -- item 7: hostile sysfs and journal -----------------------------------
    def test_sriov_numvfs_holding_x(self) -> None:
        (self.host.tree.dev(IGB_PF) / 'sriov_numvfs').write_text('x\n')
        for argv in (('configure-vfs', IGB_PF, '2'), ('discover',)):
            err = self.one_line(*self.run_cmd(*argv))
            self.assertIn("sriov_numvfs: it holds 'x', not a count", err)

    def test_journal_of_the_wrong_shape(self) -> None:
        os.makedirs(os.path.dirname(self.host.state_path))
        for text in ('[]', '{"bound": []}', '{"bound": {"x": 1}}',
                     '{"pending": "bind"}', '{"restore_failed": 7}',
                     '{"bound": {"%s": {"address": "%s"}}}' % (
                         IGB_VFS[0], IGB_VFS[0]),
                     '{"bound": {"../../etc": {"address": "../../etc", '
                     '"binder": "vfio-pci"}}}', '"', '\xff'):
            with open(self.host.state_path, 'w',
                      encoding='latin-1') as out:
                out.write(text)
            err = self.one_line(*self.run_cmd('unbind', IGB_PF))
            self.assertIn(self.host.state_path, err, text)
            rc, out, err = self.run_cmd('doctor', '--format', 'json')
            check, = [c for c in json.loads(out)['checks']
                      if c['name'] == 'agent-journal']
            self.assertEqual((1, 'agent-journal', 'fail'),
                             (rc, check['name'], check['status']), text)
