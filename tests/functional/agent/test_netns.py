"""rtnetlink on real interfaces in a network namespace the test creates.

The safety checks read what uses an interface (addresses, routes, bridge
masters, macvlans) through pyroute2; VF settings are netlink messages the
kernel must accept as well-formed. The interfaces carry the fake host's
netdev names, so the fake tree's PCI devices meet real links. (dummy,
bond and vlan need modules this CI kernel may lack: the kernel guest
tests them, tests/functional/kernel/test_topology_in_guest.py.)
"""

from __future__ import annotations

import json
import subprocess
import uuid

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import netlink
from passthrough_plugin.agent import safety
from passthrough_plugin.agent import vf_settings
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import E1000, IGB_PF


class NetNamespace(fixtures.Fixture):
    """``ip netns add`` a namespace of this test; deleted at cleanup."""

    def _setUp(self) -> None:
        self.name = 'pt-test-%s' % uuid.uuid4().hex[:8]
        self.ip('netns', 'add', self.name, netns=False)
        self.addCleanup(self.ip, 'netns', 'del', self.name, netns=False)

    def ip(self, *argv: str, netns: bool = True) -> None:
        cmd = ['ip'] + (['-n', self.name] if netns else []) + list(argv)
        done = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=60, check=False)
        if done.returncode:
            raise AssertionError('%s failed: %s' % (' '.join(cmd),
                                                    done.stderr.strip()))


class NetlinkSafetyTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.ns = self.useFixture(NetNamespace())
        self.host = self.useFixture(agent_fixtures.FakeHost())
        ip = self.ns.ip
        # The igb PF's netdev is a bridge port; the bridge has the address.
        ip('link', 'add', 'enp1s0', 'type', 'veth', 'peer', 'name', 'p0')
        ip('link', 'add', 'br0', 'type', 'bridge')
        ip('link', 'set', 'enp1s0', 'master', 'br0')
        ip('addr', 'add', '10.1.0.1/24', 'dev', 'br0')
        # One e1000 port carries a macvlan with a global IPv6 address, the
        # other the default route; the peer only link-local (harmless).
        ip('link', 'add', 'ens4f0', 'type', 'veth', 'peer', 'name',
           'ens4f1')
        ip('link', 'add', 'link', 'ens4f0', 'name', 'mv0', 'type',
           'macvlan')
        ip('addr', 'add', '2001:db8::5/64', 'dev', 'mv0')
        for name in ('enp1s0', 'p0', 'br0', 'ens4f0', 'ens4f1', 'mv0'):
            ip('link', 'set', name, 'up')
        ip('addr', 'add', '192.0.2.2/32', 'dev', 'ens4f1')
        ip('route', 'add', 'default', 'dev', 'ens4f1')
        self.net = netlink.read_state(self.ns.name)
        self.usage = safety.HostUsage(self.host.fs, net=self.net)

    def reasons(self, address: str) -> list[str]:
        from passthrough_plugin.agent import discovery

        info = discovery.read_device(self.host.fs, address)
        assert info is not None
        return safety.reasons(self.usage, info)

    def test_links_masters_and_stacked_devices(self) -> None:
        self.assertEqual('bridge', self.net.links['br0'].kind)
        self.assertEqual(['br0'], self.net.uppers('enp1s0'))
        self.assertEqual(['mv0'], self.net.uppers('ens4f0'))
        # A veth's IFLA_LINK names its peer, which is not stacked on it.
        self.assertEqual([], self.net.uppers('ens4f1'))
        self.assertEqual([], self.net.uppers('p0'))

    def test_chains_through_bridge_macvlan_and_route(self) -> None:
        self.assertEqual(['enp1s0 -> br0 -> 10.1.0.0/24 route',
                          'enp1s0 -> br0 -> address 10.1.0.1/24'],
                         self.reasons(IGB_PF))
        self.assertEqual(['ens4f0 -> mv0 -> 2001:db8::/64 route',
                          'ens4f0 -> mv0 -> address 2001:db8::5/64'],
                         self.reasons(E1000[0]))
        self.assertEqual(['ens4f1 -> default route',
                          'ens4f1 -> address 192.0.2.2/32'],
                         self.reasons(E1000[1]))

    def test_released_interface_is_safe_again(self) -> None:
        self.ns.ip('link', 'set', 'enp1s0', 'nomaster')
        self.ns.ip('route', 'del', 'default')
        self.ns.ip('addr', 'flush', 'dev', 'ens4f1')
        self.usage = safety.HostUsage(self.host.fs, net=netlink.read_state(
            self.ns.name))
        self.assertEqual([], self.reasons(IGB_PF))
        self.assertEqual([], self.reasons(E1000[1]))


class VfSettingsNetlinkTest(testtools.TestCase):
    """VF settings on a real link the kernel answers for: a veth has no
    VFs, so the kernel parses each message and refuses it as unsupported
    (a malformed message is EINVAL instead); igb VFs take them in the
    kernel guest."""

    def setUp(self) -> None:
        super().setUp()
        self.ns = self.useFixture(NetNamespace())
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.ns.ip('link', 'add', 'enp1s0', 'type', 'veth', 'peer', 'name',
                   'p0')
        self.host.tree.create_vfs(IGB_PF, 2)

    def test_each_field_reaches_the_kernel(self) -> None:
        setter = vf_settings.direct_setter(self.ns.name)
        for field, value in (('mac', '52:54:00:12:34:56'), ('vlan', (5, 1)),
                             ('spoofchk', True), ('trust', False),
                             ('link_state', 'disable'), ('rate', (0, 100))):
            exc = self.assertRaises(exception.AgentError, setter, 'enp1s0',
                                    1, field, value)
            self.assertIn('enp1s0 VF 1: setting %s=%s failed (the PF driver '
                          'does not offer this setting' % (
                              field, netlink.show(value)), exc.message)
        with netlink.session(self.ns.name) as ipr:
            self.assertEqual({}, netlink.read_vfs(
                ipr, netlink.link_index(ipr, 'enp1s0')))

    def test_apply_names_pf_vf_and_field(self) -> None:
        settings = vf_settings.parse([json.dumps(
            {'pf': 'enp1s0', 'all': {'spoofchk': True},
             'vfs': {'1': {'vlan': 7}}})])
        exc = self.assertRaises(
            exception.AgentError, vf_settings.apply, self.host.fs, settings,
            setter=vf_settings.direct_setter(self.ns.name),
            netns=self.ns.name)
        self.assertEqual('Agent error: enp1s0 VF 0: setting spoofchk=true '
                         'failed (the PF driver does not offer this setting:'
                         ' Operation not supported)', exc.message)

    def test_unknown_interface(self) -> None:
        exc = self.assertRaises(
            exception.AgentError, vf_settings.direct_setter(self.ns.name),
            'enp9s9', 0, 'trust', True)
        self.assertEqual('Agent error: network interface enp9s9 not found',
                         exc.message)
