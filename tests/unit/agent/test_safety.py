"""Binding refuses devices the host uses through a layer above them."""

from __future__ import annotations

import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import binding
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import safety
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import IGB_PF, IGB_VFS, NVME_PF

VF = IGB_VFS[0]
NIC = 'enp1s0v0'  # VF's interface


class SafetyTestBase(testtools.TestCase):

    privileged: agent_fixtures.Privileged | None = None

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost(
            privileged=self.privileged))
        self.tree = self.host.tree
        self.tree.create_vfs(IGB_PF, 2)

    def refusal(self, address: str) -> str:
        gb = binding.GroupBinding(self.host.fs, self.host.journal())
        e = self.assertRaises(exception.DeviceBusy, gb.bind, [address])
        self.assertEqual([], self.host.kernel.writes)
        self.assertIn('use --force', e.message)
        return e.message

    def chains(self, address: str) -> list[str]:
        scan = discovery.scan(self.host.fs)
        return safety.reasons(safety.HostUsage(self.host.fs),
                              scan.devices[address])

    def bind(self, address: str, force: bool = False) -> None:
        binding.GroupBinding(self.host.fs, self.host.journal(),
                             force=force).bind([address])
        self.assertEqual('vfio-pci', self.host.driver(address))


class NetworkStackTest(SafetyTestBase):

    def test_slave_of_a_routed_bond(self) -> None:
        self.tree.add_virtual_netdev('bond0', 'bond')
        self.tree.enslave(NIC, 'bond0')
        self.tree.add_route('bond0')
        self.assertIn('enp1s0v0 -> bond0 -> 10.0.0.0/24 route',
                      self.refusal(VF))

    def test_slave_of_an_unaddressed_bond_is_taken(self) -> None:
        self.tree.add_virtual_netdev('bond0', 'bond')
        self.tree.enslave(NIC, 'bond0')
        self.tree.add_route('bond1')
        self.assertEqual([], self.chains(VF))
        self.bind(VF)

    def test_port_of_a_bridge_whose_vlan_has_an_address(self) -> None:
        self.tree.add_virtual_netdev('br0', 'bridge')
        self.tree.add_virtual_netdev('br0.100')
        self.tree.enslave(NIC, 'br0')
        self.tree.stack('br0', 'br0.100')
        self.tree.add_inet6('br0.100')
        self.assertIn('enp1s0v0 -> br0 -> br0.100 -> address 2001:db8::1',
                      self.refusal(VF))

    def test_team_port_with_a_default_route(self) -> None:
        self.tree.add_virtual_netdev('team0')
        self.tree.enslave(NIC, 'team0')
        with open(self.tree.proc / 'net/route', 'a') as out:
            out.write('team0\t00000000\t0100000A\t0003\t0\t0\t0\t'
                      '00000000\t0\t0\t0\n')
        self.assertEqual(['enp1s0v0 -> team0 -> default route'],
                         self.chains(VF))

    def test_ipv6_route_and_own_routes(self) -> None:
        self.tree.add_virtual_netdev('bond0', 'bond')
        self.tree.enslave(NIC, 'bond0')
        with open(self.tree.proc / 'net/ipv6_route', 'a') as out:
            out.write('20010db8000000000000000000000000 40 '
                      '00000000000000000000000000000000 00 '
                      '00000000000000000000000000000000 00000100 '
                      '00000001 00000000 00000001    bond0\n')
        self.assertEqual(['enp1s0v0 -> bond0 -> 2001:db8::/64 route'],
                         self.chains(VF))

    def test_a_loop_in_the_stack_ends(self) -> None:
        self.tree.add_virtual_netdev('bond0', 'bond')
        self.tree.enslave(NIC, 'bond0')
        self.tree.stack('bond0', NIC)
        self.tree.add_route('bond0')
        self.assertEqual(['enp1s0v0 -> bond0 -> 10.0.0.0/24 route'],
                         self.chains(VF))

    def test_force_takes_it_anyway(self) -> None:
        self.tree.add_virtual_netdev('bond0', 'bond')
        self.tree.enslave(NIC, 'bond0')
        self.tree.add_route('bond0')
        self.bind(VF, force=True)


class BlockStackTest(SafetyTestBase):

    def test_active_swap_on_the_disk(self) -> None:
        self.tree.swapon('/dev/nvme0n1')
        self.assertIn('nvme0n1 -> active swap', self.refusal(NVME_PF))

    def test_swap_on_a_partition(self) -> None:
        self.tree.add_partition('nvme0n1', 'nvme0n1p2')
        self.tree.swapon('/dev/nvme0n1p2')
        self.assertEqual(['nvme0n1 -> nvme0n1p2 -> active swap'],
                         self.chains(NVME_PF))

    def test_lvm_volume_on_a_partition_mounted(self) -> None:
        self.tree.add_partition('nvme0n1', 'nvme0n1p1')
        majmin = self.tree.add_holder('nvme0n1p1', 'dm-0', 'vg0-root')
        self.tree.mount(majmin, '/')
        self.assertIn('nvme0n1 -> nvme0n1p1 -> dm-0 (vg0-root) -> mounted '
                      'on /', self.refusal(NVME_PF))

    def test_swap_on_lvm_by_mapper_name(self) -> None:
        self.tree.add_holder('nvme0n1', 'dm-1', 'vg0-swap')
        self.tree.swapon('/dev/mapper/vg0-swap')
        self.assertEqual(['nvme0n1 -> dm-1 (vg0-swap) -> active swap'],
                         self.chains(NVME_PF))

    def test_md_or_multipath_holder_alone_is_use(self) -> None:
        self.tree.add_holder('nvme0n1', 'md127')
        self.assertEqual(['nvme0n1 -> md127 (a holder)'],
                         self.chains(NVME_PF))

    def test_unused_disk_and_partition_are_taken(self) -> None:
        self.tree.add_partition('nvme0n1', 'nvme0n1p1')
        self.tree.swapon('/dev/sda2')
        self.assertEqual([], self.chains(NVME_PF))
        self.bind(NVME_PF)
