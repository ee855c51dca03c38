"""nova's remote_managed checks of a spec naming one device (a PF)."""

from __future__ import annotations

import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.pci import device_spec
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import IGB_PF


def report(host: agent_fixtures.FakeHost, spec: str) -> object:
    specs = device_spec.DeviceSpecList.from_config([spec])
    return discovery.build_report(host.fs, specs, 'compute-1')


class RemoteManagedPfTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.host.tree.create_vfs(IGB_PF, 2)

    def refused(self, spec: str) -> str:
        exc = self.assertRaises(exception.InvalidDeviceSpec, report,
                                self.host, spec)
        return str(exc.message)

    def test_the_pf_itself_is_refused_with_novas_reason(self) -> None:
        for spec in ('{"devname": "enp1s0", "remote_managed": "true"}',
                     '{"devname": "enp1s0", "remote_managed": "true", '
                     '"product_id": "10c9"}',
                     '{"address": "%s", "remote_managed": "true"}' % IGB_PF):
            message = self.refused(spec)
            self.assertIn('remote_managed names PF %s, and only VFs can be '
                          "remote managed; give the VFs' product_id 10ca"
                          % IGB_PF, message)
            self.assertIn('nova refuses it too: '
                          'PciDeviceInvalidPFRemoteManaged', message)

    def test_ids_of_neither_pf_nor_vfs(self) -> None:
        self.assertIn('are not the ids 8086:10ca of its VFs (nova refuses it '
                      'too)', self.refused(
                          '{"devname": "enp1s0", "remote_managed": "true", '
                          '"product_id": "1234"}'))

    def test_an_interface_that_is_not_there(self) -> None:
        self.assertIn("interface 'eth9', which is not on this host (nova "
                      'refuses it too: PciDeviceRemoteManagedNotPresent)',
                      self.refused('{"devname": "eth9", '
                                   '"remote_managed": "true"}'))

    def test_the_vfs_of_a_pf(self) -> None:
        # the VFs' product id: the VFs (those with a VPD serial) are meant
        for spec in ('{"devname": "enp1s0", "remote_managed": "true", '
                     '"product_id": "10ca"}',
                     '{"address": "%s", "remote_managed": "true", '
                     '"product_id": "10ca"}' % IGB_PF):
            report(self.host, spec)

    def test_not_remote_managed_is_not_checked(self) -> None:
        report(self.host, '{"devname": "eth9"}')
        report(self.host, '{"devname": "enp1s0", "remote_managed": "no"}')
