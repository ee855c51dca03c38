"""[sriov] vf_settings: parsing, the privileged allow-list, CLI errors."""

from __future__ import annotations

import json

import testtools
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from passthrough_plugin import exception
from passthrough_plugin.agent import netadmin
from passthrough_plugin.agent import netlink
from passthrough_plugin.agent import vf_settings
from passthrough_plugin.pci import pci_ids
from tests.unit.agent.fixtures import IGB_PF
from tests.unit.agent.test_cmd import CmdTestBase


def one(**fields: object) -> str:
    return json.dumps({'pf': 'enp1s0', 'vfs': {'0': fields}})


class ParseTest(testtools.TestCase):

    def bad(self, value: str) -> str:
        exc = self.assertRaises(exception.InvalidConfig, vf_settings.parse,
                                [value])
        self.assertNotIn('\n', exc.message)
        self.assertTrue(exc.message.startswith(
            'Invalid configuration [sriov] vf_settings='), exc.message)
        return exc.message

    def test_every_field(self) -> None:
        [item] = vf_settings.parse([json.dumps({
            'pf': '0000:01:00.0', 'all': {'spoofchk': True, 'trust': False,
                                          'link_state': 'auto'},
            'vfs': {'1': {'mac': '52-54-00-AB-CD-EF', 'vlan': 100,
                          'qos': 3, 'max_tx_rate': 1000,
                          'spoofchk': False}}})])
        self.assertEqual('0000:01:00.0', item.pf)
        self.assertEqual({'spoofchk': False, 'trust': False,
                          'link_state': 'auto',
                          'mac': '52:54:00:ab:cd:ef', 'vlan': (100, 3),
                          'rate': (0, 1000)}, item.for_vf(1))
        self.assertEqual({'spoofchk': True, 'trust': False,
                          'link_state': 'auto'}, item.for_vf(0))
        self.assertEqual('mac=52:54:00:ab:cd:ef vlan=100/3 spoofchk=false '
                         'trust=false link_state=auto rate=0/1000',
                         vf_settings.describe(item.for_vf(1)))

    def test_bad_mac(self) -> None:
        self.assertEqual(
            "Invalid configuration [sriov] vf_settings='52:54:00:zz:00:01': "
            "vfs.0.mac of PF enp1s0: not a MAC address; expected six hex "
            "octets such as 52:54:00:12:34:56",
            self.bad(one(mac='52:54:00:zz:00:01')))
        self.assertIn('unicast', self.bad(one(mac='01:00:5e:00:00:01')))
        self.assertIn('unicast', self.bad(one(mac='00:00:00:00:00:00')))
        self.assertIn('"vfs", not "all"', self.bad(json.dumps(
            {'pf': 'p', 'all': {'mac': '52:54:00:00:00:01'}})))
        self.assertIn('its own MAC', self.bad(json.dumps(
            {'pf': 'p', 'vfs': {'0': {'mac': '52:54:00:00:00:01'},
                                '1': {'mac': '52:54:00:00:00:01'}}})))

    def test_bad_vlan_and_numbers(self) -> None:
        self.assertEqual(
            "Invalid configuration [sriov] vf_settings='5000': vfs.0.vlan "
            "of PF enp1s0: a VLAN id is 0 (no VLAN) to 4094",
            self.bad(one(vlan=5000)))
        self.assertIn('0 to 7', self.bad(one(vlan=1, qos=8)))
        self.assertIn('needs a "vlan"', self.bad(one(qos=1)))
        self.assertIn('true or false', self.bad(one(trust='yes')))
        self.assertIn('auto, enable, disable',
                      self.bad(one(link_state='up')))
        self.assertIn('must not exceed max_tx_rate 10',
                      self.bad(one(min_tx_rate=20, max_tx_rate=10)))
        self.assertIn('Mbit/s', self.bad(one(max_tx_rate=-1)))
        self.assertIn('unknown key; valid keys: mac,',
                      self.bad(one(colour='red')))

    def test_bad_shape(self) -> None:
        self.assertIn('not JSON', self.bad('{"pf": '))
        self.assertIn('needs "pf"', self.bad('{"vfs": {}}'))
        self.assertIn('a VF index is 0 to 4095', self.bad(json.dumps(
            {'pf': 'p', 'vfs': {'x': {}}})))
        self.assertIn('valid keys: pf, all, vfs', self.bad(json.dumps(
            {'pf': 'p', 'vf': {}})))
        exc = self.assertRaises(exception.InvalidConfig, vf_settings.parse,
                                [one(vlan=1), one(vlan=2)])
        self.assertIn('PF given twice', exc.message)


class NetadminCheckTest(testtools.TestCase):
    """The privileged side re-checks what it is handed."""

    def test_allowed(self) -> None:
        self.assertEqual((100, 0), netadmin.check('enp1s0', 0, 'vlan',
                                                  [100, 0]))
        self.assertTrue(netadmin.check('enp1s0', 3, 'trust', True))

    def test_refused(self) -> None:
        for args in (('../etc', 0, 'mac', '52:54:00:00:00:01'),
                     ('enp1s0', -1, 'trust', True),
                     ('enp1s0', True, 'trust', True),
                     ('enp1s0', 0, 'vlan', [4095, 0]),
                     ('enp1s0', 0, 'mac', 'ff:ff'),
                     ('enp1s0', 0, 'ifname', 'x'),
                     ('enp1s0', 0, 'link_state', 'up'),
                     ('enp1s0', 0, 'trust', 1)):
            self.assertRaises(PermissionError, netadmin.check, *args)

    def test_vf_message(self) -> None:
        self.assertEqual({'vf': 2, 'vlan': {'vlan': 10, 'qos': 1}},
                         netlink.vf_message(2, 'vlan', (10, 1)))
        self.assertEqual({'vf': 0, 'link_state': 2},
                         netlink.vf_message(0, 'link_state', 'disable'))
        self.assertEqual({'vf': 1, 'rate': {'min_tx_rate': 0,
                                            'max_tx_rate': 50}},
                         netlink.vf_message(1, 'rate', (0, 50)))


class ConfigureVfsErrorsTest(CmdTestBase):
    """Bad settings are one line naming the field, exit 2, before any
    change to the host."""

    def check(self, settings: str, expected: str) -> None:
        self.write_config('[sriov]\nvf_settings = %s\n' % settings)
        rc, out, err = self.run_cmd('configure-vfs', IGB_PF, '2')
        self.assertEqual((2, ''), (rc, out), err)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertIn(expected, err)

    def test_bad_mac_and_vlan(self) -> None:
        self.check(one(mac='52:54:00:00:00'), 'vfs.0.mac of PF enp1s0: '
                   'not a MAC address')
        self.check(one(vlan=5000), "vf_settings='5000': vfs.0.vlan of PF "
                   'enp1s0: a VLAN id is 0 (no VLAN) to 4094')
        self.assertEqual(
            '0', (self.host.tree.dev(IGB_PF) / 'sriov_numvfs').read_text(
            ).strip())

    def test_unknown_pf(self) -> None:
        self.write_config('[sriov]\nvf_settings = %s\n' % json.dumps(
            {'pf': 'enp9s9', 'vfs': {'0': {'vlan': 5}}}))
        rc, _out, err = self.run_cmd('configure-vfs')
        self.assertEqual(2, rc, err)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertIn("vf_settings='enp9s9': \"pf\": no such PF on this "
                      "host", err)

    def test_a_vf_the_pf_does_not_have(self) -> None:
        self.write_config('[sriov]\nvf_settings = %s\n' % json.dumps(
            {'pf': IGB_PF, 'vfs': {'5': {'vlan': 5}}}))
        rc, _out, err = self.run_cmd('configure-vfs', IGB_PF, '2')
        self.assertEqual(1, rc, err)
        self.assertIn('names VF 5, but it has 2 VFs (0 to 1)', err)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 5000) |
    st.sampled_from(['52:54:00:12:34:56', 'auto', 'enp1s0', 'x', '0']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(['pf', 'all', 'vfs', '0', '1', 'mac', 'vlan', 'qos',
                         'trust', 'spoofchk', 'link_state', 'min_tx_rate',
                         'max_tx_rate', 'colour']), inner, max_size=5),
    max_leaves=12)
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class PropertyTest(testtools.TestCase):

    @RELAXED
    @given(st.lists(JSON.map(json.dumps) | st.text(max_size=40), max_size=3))
    def test_any_value_parses_or_is_one_line_naming_the_option(
            self, values: list[str]) -> None:
        try:
            parsed = vf_settings.parse(values)
        except exception.InvalidConfig as exc:
            self.assertTrue(exc.message.startswith(
                'Invalid configuration [sriov] vf_settings='), exc.message)
            self.assertNotIn('\n', exc.message)
        else:
            self.assertEqual(len(values), len(parsed))
            for item in parsed:
                for vf in list(item.vfs) + [0]:
                    for field, value in item.for_vf(vf).items():
                        # What is parsed, the privileged side accepts.
                        netadmin.check('enp1s0', vf, field, value)

    @RELAXED
    @given(st.text(alphabet='0123456789abcdefC \t\n#x', max_size=300))
    def test_pci_ids_parses_any_text(self, text: str) -> None:
        ids = pci_ids.PciIds.parse(text)
        for (vendor, _product), name in ids.devices.items():
            self.assertEqual(4, len(vendor))
            self.assertTrue(name)
