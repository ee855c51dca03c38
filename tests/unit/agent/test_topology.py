"""passthrough-agent topology on fake hosts: the tree, verdicts, holders."""

from __future__ import annotations

import datetime
import json
import os
import re

from oslo_config import cfg

from passthrough_plugin.agent import topology
from passthrough_plugin.cmd import agent_topology
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import pci_ids
from passthrough_plugin.store import file as file_store
from tests.unit.agent.fixtures import E1000, E1000E, IGB_PF, IGB_VFS, \
    NVME_PF, PCI_BRIDGE, VGA
from tests.unit.agent.test_cmd import CmdTestBase

PCI_IDS = '''\
# a few lines of the real file's format
8086  Intel Corporation
\t10c9  82576 Gigabit Network Connection
\t\t8086 0001  a subsystem line, skipped
\t10ca  82576 Virtual Function
1b36  Red Hat, Inc.
\t0010  QEMU NVM Express Controller
C 02  Network controller
\t00  Ethernet controller
\t\t00  a programming interface, skipped
C 06  Bridge
\t04  PCI bridge
'''
SPECS = '''
    [pci]
    device_spec = {"vendor_id": "8086", "product_id": "10c9"}
    device_spec = {"vendor_id": "8086", "product_id": "10ca"}
    device_spec = {"address": "%s"}
    [lifecycle]
    connection = sqlite:///%s
    '''


class TopologyBase(CmdTestBase):
    """A fake host listing the igb, its VFs and one e1000e; helpers."""

    def setUp(self) -> None:
        super().setUp()
        self.ledger_path = os.path.join(self.host.root, 'ledger.sqlite')
        self.write_config(SPECS % (E1000E[0], self.ledger_path))
        self.ids = os.path.join(self.host.root, 'pci.ids')
        with open(self.ids, 'w') as out:
            out.write(PCI_IDS)

    def topo(self, *extra: str) -> dict[str, object]:
        rc, out, err = self.run_cmd('topology', '--format', 'json',
                                    '--pci-ids', self.ids, *extra)
        self.assertEqual(0, rc, err)
        data: dict[str, object] = json.loads(out)
        return data

    def find(self, data: object, name: str) -> dict[str, object]:
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if node.get('name') == name:
                    return node
                stack.extend(node.get('children') or
                             node.get('numa_nodes') or [])
        self.fail('%s not in the topology' % name)

    def path_to(self, data: object, name: str) -> list[str]:
        def walk(node: dict[str, object], path: list[str]
                 ) -> list[str] | None:
            here = path + [str(node['name'])]
            if node['name'] == name:
                return here
            for child in node['children']:  # type: ignore[attr-defined]
                found = walk(child, here)
                if found:
                    return found
            return None

        for root in data['numa_nodes']:  # type: ignore[index]
            found = walk(root, [])
            if found:
                return found
        self.fail('%s not in the topology' % name)


class TopologyTest(TopologyBase):

    def test_vfs_hang_under_their_pf_in_its_group_on_its_numa_node(
            self) -> None:
        self.host.tree.create_vfs(IGB_PF, 2)
        data = self.topo()
        self.assertEqual(['NUMA node 0', 'pci0000:00', 'IOMMU group 2',
                          IGB_PF, IGB_VFS[1]], self.path_to(data, IGB_VFS[1]))
        pf = self.find(data, IGB_PF)
        self.assertEqual(('PF', 'Intel Corporation',
                          '82576 Gigabit Network Connection', 'igb',
                          ['enp1s0'], {'enabled': 2, 'total': 8}),
                         (pf['role'], pf['vendor'], pf['device'],
                          pf['driver'], pf['netdevs'], pf['vfs']))
        # The PF: what bind would refuse, in its words.
        self.assertEqual('not assignable', pf['assignable'])
        self.assertEqual(['it is an SR-IOV PF with 2 VFs enabled; set its '
                          'VF count to 0 first'], pf['why'])
        vf = self.find(data, IGB_VFS[0])
        self.assertEqual(('VF', 'assignable', [], '82576 Virtual Function'),
                         (vf['role'], vf['assignable'], vf['why'],
                          vf['device']))
        self.assertEqual({'id': 0, 'socket': 0},
                         {k: self.find(data, 'NUMA node 0')[k]
                          for k in ('id', 'socket')})

    def test_a_group_with_an_unlisted_member_is_not_assignable(self) -> None:
        data = self.topo()
        group = self.find(data, 'IOMMU group 5')
        self.assertFalse(group['viable'])
        self.assertEqual(['%s cannot be assigned with the rest' % E1000E[1]],
                         group['why'])
        listed = self.find(data, E1000E[0])
        self.assertEqual('not assignable', listed['assignable'])
        self.assertEqual(['in an IOMMU group with devices that cannot be '
                          'assigned (%s)' % E1000E[1]], listed['why'])
        other = self.find(data, E1000E[1])
        self.assertEqual([topology.NOT_LISTED], other['why'])

    def test_bridges_stay_with_the_host_and_the_console_is_named(
            self) -> None:
        data = self.topo()
        bridge = self.find(data, PCI_BRIDGE)
        self.assertEqual(('bridge', 'host', 'PCI bridge'),
                         (bridge['kind'], bridge['assignable'],
                          bridge['class_name']))
        # Its group still counts its other members.
        self.assertEqual([PCI_BRIDGE] + E1000,
                         self.find(data, 'IOMMU group 4')['members'])
        vga = self.find(data, VGA)
        self.assertIn('it is the boot VGA device (the console)', vga['why'])

    def test_a_route_on_a_netdev_is_a_host_use(self) -> None:
        # The fake tree's network (its /proc files): no kernel behind it.
        self.host.tree.add_route('enp1s0')
        pf = self.find(self.topo(), IGB_PF)
        self.assertEqual('not assignable', pf['assignable'])
        self.assertEqual(['the host uses it: enp1s0 -> 10.0.0.0/24 route'],
                         pf['why'])

    def test_holders_from_journal_store_and_ledger(self) -> None:
        self.host.tree.create_vfs(IGB_PF, 2)
        rc, _out, err = self.run_cmd('bind', IGB_VFS[0])
        self.assertEqual(0, rc, err)
        rc, _out, err = self.run_cmd('report')
        self.assertEqual(0, rc, err)
        conf = cfg.ConfigOpts()
        conf.register_opts([cfg.StrOpt('path')], group='file_store')
        conf.set_override('path', self.store_dir, group='file_store')
        file_store.FileReportStore(conf).claim('compute-1', 'inst-1',
                                               [IGB_VFS[1]])
        ledger = ledger_mod.Ledger('sqlite:///' + self.ledger_path)
        at = datetime.datetime(2026, 11, 29, 12, 0,
                               tzinfo=datetime.timezone.utc)
        with ledger.begin() as tx:
            row = tx.add_instance('inst-2', 'proj', 'compute-1', {}, at)
            tx.start(tx.instance(row.uuid), 'compute-1', IGB_VFS[0],
                     resource_class='CUSTOM_PCI_8086_10CA', source='flavor',
                     at=at)
        ledger.close()
        data = self.topo()
        bound = self.find(data, IGB_VFS[0])
        self.assertEqual([
            'the agent (bound with vfio-pci; igbvf restores it)',
            'instance inst-2 since 2026-11-29T12:00:00+00:00 (ledger, '
            'flavor)'],
            bound['held_by'])
        claimed = self.find(data, IGB_VFS[1])
        self.assertEqual(['instance inst-1 (claimed, flavor)'],
                         claimed['held_by'])
        self.assertEqual(('in use', ['in use']),
                         (claimed['assignable'], claimed['why']))
        self.assertEqual([], data['notes'])
        # --offline: the journal only, and nothing looked up elsewhere.
        offline = self.topo('--offline')
        self.assertEqual(['the agent (bound with vfio-pci; igbvf restores '
                          'it)'], self.find(offline, IGB_VFS[0])['held_by'])
        self.assertEqual([], self.find(offline, IGB_VFS[1])['held_by'])

    def test_missing_store_report_and_ledger_are_notes(self) -> None:
        data = self.topo()
        self.assertEqual([
            'the report store has no report of compute-1 yet: no claims '
            'known', 'no ledger at %s' % self.ledger_path], data['notes'])
        # Reading never creates the ledger.
        self.assertFalse(os.path.exists(self.ledger_path))

    def test_text_tree(self) -> None:
        self.host.tree.create_vfs(IGB_PF, 1)
        rc, out, err = self.run_cmd('topology', '--pci-ids', self.ids)
        self.assertEqual(0, rc, err)
        lines = out.splitlines()
        self.assertEqual('compute-1: IOMMU on, interrupt remapping on; '
                         'names from %s' % self.ids, lines[0])
        self.assertIn('NUMA node 0 (socket 0)', lines)
        start = lines.index('NUMA node 0 (socket 0)')
        self.assertEqual([
            '└─ pci0000:00 (PCI root bus)',
            '   └─ IOMMU group 2 (viable)',
            '      └─ %s PF 8086:10c9 Intel Corporation 82576 Gigabit '
            'Network Connection | driver igb | enp1s0 | VFs 1/8 | not '
            'assignable: it is an SR-IOV PF with 1 VFs enabled; set its VF '
            'count to 0 first' % IGB_PF,
            '         └─ %s VF 8086:10ca Intel Corporation 82576 Virtual '
            'Function | driver igbvf | enp1s0v0 | group 6 | assignable'
            % IGB_VFS[0]], lines[start + 1:start + 5])
        self.assertIn('NUMA node - (no NUMA affinity)', lines)

    def test_dot_is_one_connected_graph_per_numa_node(self) -> None:
        self.host.tree.create_vfs(IGB_PF, 2)
        rc, out, err = self.run_cmd('topology', '--format', 'dot')
        self.assertEqual(0, rc, err)
        self.assertTrue(out.startswith('digraph topology {'), out)
        self.assertEqual('}', out.strip().splitlines()[-1])
        nodes = re.findall(r'^  (n\d+) \[label=', out, re.M)
        edges = re.findall(r'^  (n\d+) -> (n\d+);$', out, re.M)
        roots = re.findall(r'^  (n\d+) \[label="NUMA node', out, re.M)
        # A forest: every node but the NUMA roots has exactly one parent.
        self.assertEqual(len(nodes) - len(roots), len(edges))
        self.assertEqual(sorted(set(nodes) - set(roots)),
                         sorted(child for _p, child in edges))
        self.assertIn('fillcolor=palegreen', out)
        self.assertIn('fillcolor=lightpink', out)
        # Labels are quoted: a quote in a name cannot end them.
        self.assertEqual('"a \\"b\\"\\nc"', agent_topology._quote('a "b"\nc'))

    def test_without_pci_ids_ids_only(self) -> None:
        rc, out, err = self.run_cmd('topology', '--format', 'json',
                                    '--pci-ids', os.path.join(
                                        self.host.root, 'missing.ids'))
        self.assertEqual(1, rc)
        self.assertIn('missing.ids', err)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        topo = topology.build(self.host.fs, *self._scan_report(),
                              ids=pci_ids.PciIds())
        node = topo.device(NVME_PF)
        assert node is not None
        self.assertEqual((None, None, '1b36', '0010'),
                         (node.attrs['vendor'], node.attrs['device'],
                          node.attrs['vendor_id'], node.attrs['product_id']))
        self.assertIn('no pci.ids found: ids only',
                      agent_topology.render_text(topo).splitlines()[0])

    def _scan_report(self) -> tuple[object, object]:
        from passthrough_plugin.agent import discovery
        from passthrough_plugin.pci import device_spec

        scan = discovery.scan(self.host.fs)
        return scan, discovery.build_report(
            self.host.fs, device_spec.DeviceSpecList([]), 'h', scan)


class PciIdsTest(CmdTestBase):

    def test_parse(self) -> None:
        ids = pci_ids.PciIds.parse(PCI_IDS, 'x')
        self.assertEqual('Intel Corporation', ids.vendor('8086'))
        self.assertEqual('82576 Virtual Function',
                         ids.device('8086', '10CA'))
        self.assertIsNone(ids.device('1b36', '10ca'))
        self.assertEqual('Ethernet controller', ids.class_name('020000'))
        self.assertEqual('Bridge', ids.class_name('068000'))
        self.assertIsNone(ids.class_name('ff0000'))


class NestedTreeTest(TopologyBase):
    """A sysfs laid out as the kernel does it behind ports and bridges
    (the fake builder keeps devices flat): the tree follows the device
    directories, VFs go under their PF."""

    def test_ports_and_bridges_nest(self) -> None:
        sys_root = self.host.tree.sys
        top = sys_root / 'devices/pci0000:00'
        layout = {
            '0000:00:1c.0': ('', '060400', 20, None),
            '0000:0a:00.0': ('0000:00:1c.0', '060400', 20, None),
            '0000:0b:00.0': ('0000:00:1c.0/0000:0a:00.0', '020000', 21,
                             None),
            '0000:0b:00.4': ('0000:00:1c.0/0000:0a:00.0', '020000', 22,
                             '0000:0b:00.0'),
        }
        for address, (parent, klass, group, physfn) in layout.items():
            path = top / parent / address
            path.mkdir(parents=True)
            (path / 'uevent').write_text(
                'PCI_CLASS=%s\nPCI_ID=8086:1572\n' % klass)
            (sys_root / 'bus/pci/devices' / address).symlink_to(path)
            gdir = sys_root / 'kernel/iommu_groups' / str(group)
            (gdir / 'devices').mkdir(parents=True, exist_ok=True)
            (path / 'iommu_group').symlink_to(gdir)
            (gdir / 'devices' / address).symlink_to(path)
            if physfn:
                (path / 'physfn').symlink_to(top / parent / physfn)
        (top / '0000:00:1c.0/0000:0a:00.0/0000:0b:00.0/sriov_totalvfs'
         ).write_text('4\n')
        (top / '0000:00:1c.0/0000:0a:00.0/0000:0b:00.0/sriov_numvfs'
         ).write_text('1\n')
        data = self.topo('--offline')
        self.assertEqual(['NUMA node -', 'pci0000:00', '0000:00:1c.0',
                          '0000:0a:00.0', 'IOMMU group 21', '0000:0b:00.0',
                          '0000:0b:00.4'],
                         self.path_to(data, '0000:0b:00.4'))
        self.assertEqual(('root port', 'bridge', 'VF'), tuple(
            self.find(data, a)['role'] for a in (
                '0000:00:1c.0', '0000:0a:00.0', '0000:0b:00.4')))
        self.assertEqual(22, self.find(data, '0000:0b:00.4')['iommu_group'])
