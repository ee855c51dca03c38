"""``[pci] device_spec``: nova's documented examples and each rule."""

from __future__ import annotations

import json
import os
from typing import Any

import fixtures
import testtools
from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.conf import pci as pci_conf
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import device_spec
from tests.unit.pci.fakes import case

A = addr.PciAddress.parse
PF = A('0000:81:00.0')
VF = A('0000:81:02.1')
OTHER = A('0000:0a:00.1')


def specs(*entries: Any) -> device_spec.DeviceSpecList:
    return device_spec.DeviceSpecList.from_config(
        [e if isinstance(e, str) else json.dumps(e) for e in entries])


def one(entry: Any) -> device_spec.DeviceSpec:
    parsed = specs(entry)
    assert len(parsed) == 1
    return parsed.specs[0]


class NovaDocumentedExamplesTest(testtools.TestCase):
    """The valid examples of nova/conf/pci.py ``device_spec`` help."""

    def test_devname(self) -> None:
        spec = one({"devname": "eth0", "physical_network": "physnet"})
        self.assertEqual('eth0', spec.devname)
        self.assertEqual({'physical_network': 'physnet'}, spec.tags)
        self.assertTrue(spec.match(OTHER, 0x8086, 0x10ca, devname='eth0'))
        self.assertFalse(spec.match(OTHER, 0x8086, 0x10ca, devname='eth1'))
        self.assertFalse(spec.match(OTHER, 0x8086, 0x10ca))

    def test_glob_any_domain_and_function(self) -> None:
        spec = one({"address": "*:0a:00.*"})
        self.assertTrue(spec.match(A('0000:0a:00.3'), 1, 2))
        self.assertTrue(spec.match(A('0001:0a:00.0'), 1, 2))
        self.assertFalse(spec.match(A('0000:0b:00.0'), 1, 2))

    def test_glob_empty_fields(self) -> None:
        spec = one({"address": ":0a:00.", "physical_network": "physnet1"})
        self.assertTrue(spec.match(A('0000:0a:00.7'), 1, 2))
        self.assertFalse(spec.match(A('0000:0a:01.0'), 1, 2))
        self.assertEqual('*:0a:00.*', spec.address.to_config())

    def test_ids_only(self) -> None:
        spec = one({"vendor_id": "1137", "product_id": "0071"})
        self.assertEqual((0x1137, 0x71), (spec.vendor_id, spec.product_id))
        self.assertTrue(spec.match(OTHER, 0x1137, 0x0071))
        self.assertFalse(spec.match(OTHER, 0x1137, 0x0072))
        self.assertFalse(spec.match(OTHER, 0x1138, 0x0071))
        self.assertEqual({}, spec.tags)

    def test_ids_and_exact_address(self) -> None:
        spec = one({"vendor_id": "1137", "product_id": "0071",
                    "address": "0000:0a:00.1",
                    "physical_network": "physnet1"})
        self.assertEqual(OTHER, spec.exact)
        self.assertTrue(spec.match(OTHER, 0x1137, 0x71))
        self.assertFalse(spec.match(A('0000:0a:00.2'), 0x1137, 0x71))

    def test_regex_functions_2_to_7(self) -> None:
        spec = one({"address": {"domain": ".*", "bus": "02", "slot": "01",
                                "function": "[2-7]"},
                    "physical_network": "physnet1"})
        self.assertTrue(spec.match(A('0000:02:01.2'), 1, 2))
        self.assertFalse(spec.match(A('0000:02:01.1'), 1, 2))
        self.assertIsNone(spec.exact)

    def test_regex_slots(self) -> None:
        spec = one({"address": {"domain": ".*", "bus": "02",
                                "slot": "0[1-2]", "function": ".*"},
                    "physical_network": "physnet1"})
        self.assertTrue(spec.match(A('0000:02:02.0'), 1, 2))
        self.assertFalse(spec.match(A('0000:02:03.0'), 1, 2))

    def test_trusted(self) -> None:
        spec = one({"devname": "eth0", "physical_network": "physnet1",
                    "trusted": "true"})
        self.assertEqual('true', spec.tags['trusted'])

    def test_remote_managed(self) -> None:
        spec = one({"vendor_id": "a2d6", "product_id": "15b3",
                    "remote_managed": "true"})
        self.assertEqual('true', spec.tags['remote_managed'])
        self.assertIn(('remote_managed', 'true'), spec.pool_tags)
        spec = one({"vendor_id": "a2d6", "product_id": "15b3",
                    "address": "0000:82:00.0",
                    "physical_network": "physnet1",
                    "remote_managed": "true"})
        self.assertEqual(A('0000:82:00.0'), spec.exact)

    def test_resource_class_and_traits(self) -> None:
        spec = one({"vendor_id": "1002", "product_id": "6929",
                    "address": "0000:82:00.0", "resource_class": "PGPU",
                    "traits": "HW_GPU_API_VULKAN,my-awesome-gpu"})
        self.assertEqual('PGPU', spec.resource_class)
        self.assertEqual(frozenset({'HW_GPU_API_VULKAN',
                                    'CUSTOM_MY_AWESOME_GPU'}), spec.traits)
        # placement tags are not pool tags (nova's ignored_pool_tags)
        self.assertEqual((), spec.pool_tags)

    def test_managed_no(self) -> None:
        spec = one({"vendor_id": "10de", "product_id": "25b6",
                    "address": "0000:25:00.4", "managed": "no"})
        self.assertEqual('false', spec.tags['managed'])
        spec = one({"vendor_id": "10de", "product_id": "25b6",
                    "address": "0000:25:00.4",
                    "resource_class": "CUSTOM_A16_16A", "managed": "no"})
        self.assertEqual('CUSTOM_A16_16A', spec.resource_class)
        self.assertEqual((('managed', 'false'),), spec.pool_tags)

    def test_list_of_dicts(self) -> None:
        parsed = specs('[{"product_id":"0001", "vendor_id":"8086"},'
                       ' {"product_id":"0002", "vendor_id":"8086"}]')
        self.assertEqual(2, len(parsed))
        self.assertIs(parsed.specs[1], parsed.match(OTHER, 0x8086, 2))
        self.assertIsNone(parsed.match(OTHER, 0x8086, 3))

    def test_documented_invalid_devname_with_address(self) -> None:
        exc = self.assertRaises(
            exception.InvalidDeviceSpec, specs,
            {"devname": "eth0", "physical_network": "physnet",
             "address": "*:0a:00.*"})
        self.assertIn('"devname" and "address" are mutually exclusive',
                      exc.message)
        self.assertIn('[pci] device_spec value 1', exc.message)


class IdTest(testtools.TestCase):

    VALID = [('8086', 0x8086), ('*', None), ('ABCD', 0xabcd),
             ('0', 0), ('ffff', 0xffff), (' 15b3 ', 0x15b3)]

    def test_valid(self) -> None:
        for text, expected in self.VALID:
            for field in ('vendor_id', 'product_id'):
                with case(f'{field}={text!r}'):
                    spec = one({field: text})
                    self.assertEqual(expected, getattr(spec, field))

    # int(x, 16) would take the last four; nova does, the core does not.
    INVALID = ['10000', 'xyz', '', '12 34', '-1', '0xfffff', '8086a',
               '0x12', '+12', '1_2', '\u0663', '12\n3']

    def test_invalid(self) -> None:
        for text in self.INVALID:
            for field in ('vendor_id', 'product_id'):
                with case(f'{field}={text!r}'):
                    exc = self.assertRaises(exception.InvalidDeviceSpec,
                                            one, {field: text})
                    self.assertIn(f'{field} {text!r}', exc.message)
                    self.assertIn('(0000-ffff) or "*"', exc.message)

    def test_not_a_string(self) -> None:
        for value in (8086, None, ['8086'], True):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidDeviceSpec, one,
                                        {'vendor_id': value})
                self.assertIn(f'vendor_id {value!r} must be a string of 4 hex '
                              'digits or "*"', exc.message)

    def test_id_match(self) -> None:
        spec = one({'vendor_id': '8086', 'product_id': '*'})
        self.assertTrue(spec.match(OTHER, 0x8086, 0x1234))
        self.assertFalse(spec.match(OTHER, 0x8087, 0x1234))


class AddressRulesTest(testtools.TestCase):

    def test_exact_pf_address_covers_its_vfs(self) -> None:
        spec = one({'address': '0000:81:00.0'})
        self.assertTrue(spec.match(PF, 1, 2))
        self.assertTrue(spec.match(VF, 1, 3, parent=PF))
        self.assertFalse(spec.match(VF, 1, 3))
        self.assertFalse(spec.match(VF, 1, 3, parent=A('0000:82:00.0')))

    def test_exact_regex_pf_address_covers_its_vfs(self) -> None:
        spec = one({'address': {'domain': '0000', 'bus': '81', 'slot': '00',
                                'function': '0'}})
        self.assertEqual(PF, spec.exact)
        self.assertTrue(spec.match(VF, 1, 3, parent=PF))

    def test_glob_pf_address_does_not_cover_vfs(self) -> None:
        for glob in ('0000:81:00.*', '81:00.', '*:81:00.0'):
            with case(glob):
                spec = one({'address': glob})
                self.assertTrue(spec.match(PF, 1, 2))
                self.assertFalse(spec.match(VF, 1, 3, parent=PF))

    def test_ids_still_apply_to_vfs_of_a_pf_address(self) -> None:
        spec = one({'address': '0000:81:00.0', 'vendor_id': '8086',
                    'product_id': '154c'})
        self.assertTrue(spec.match(VF, 0x8086, 0x154c, parent=PF))
        self.assertFalse(spec.match(PF, 0x8086, 0x1572))

    def test_pf_devname_covers_its_vfs(self) -> None:
        spec = one({'devname': 'ens1f0'})
        self.assertTrue(spec.match(PF, 1, 2, devname='ens1f0'))
        self.assertTrue(spec.match(VF, 1, 3, parent=PF,
                                   parent_devname='ens1f0'))
        self.assertFalse(spec.match(VF, 1, 3, parent=PF,
                                    parent_devname='ens1f1'))
        # a VF's own name does not need the parent's
        self.assertTrue(spec.match(VF, 1, 3, parent=PF, devname='ens1f0'))
        # without a parent, the parent name means nothing
        self.assertFalse(spec.match(VF, 1, 3, parent_devname='ens1f0'))

    def test_devname_and_address_error(self) -> None:
        for extra in ({'address': '0000:81:00.0'},
                      {'address': {'bus': '81'}}, {'address': ''}):
            with case(repr(extra)):
                exc = self.assertRaises(exception.InvalidDeviceSpec, one,
                                        dict(extra, devname='eth0'))
                self.assertIn('mutually exclusive', exc.message)

    def test_bad_devname(self) -> None:
        for value in ('', '  ', 5, ['eth0']):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidDeviceSpec, one,
                                        {'devname': value})
                self.assertIn(f'devname {value!r} must be a non-empty '
                              'interface name', exc.message)

    def test_bad_address_names_item_and_field(self) -> None:
        exc = self.assertRaises(exception.InvalidDeviceSpec, specs,
                                {'vendor_id': '8086'},
                                {'address': '0000:00:20.0'})
        self.assertIn('[pci] device_spec value 2', exc.message)
        self.assertIn('slot 20 is greater than 1f', exc.message)
        self.assertIn("'0000:00:20.0'", exc.message)
        exc = self.assertRaises(exception.InvalidDeviceSpec, one,
                                {'address': {'bus': '('}})
        self.assertIn('address.bus', exc.message)

    def test_no_address_matches_everything(self) -> None:
        spec = one({})
        self.assertTrue(spec.match(A('ffff:ff:1f.7'), 0, 0))
        self.assertIsNone(spec.exact)


class FirstMatchTest(testtools.TestCase):

    def test_first_match_wins(self) -> None:
        parsed = specs({'vendor_id': '8086', 'physical_network': 'a'},
                       {'address': '0000:81:*.*', 'physical_network': 'b'},
                       [{'physical_network': 'c'}])
        self.assertEqual({'physical_network': 'a'},
                         parsed.match(PF, 0x8086, 1).tags)
        self.assertEqual({'physical_network': 'b'},
                         parsed.match(PF, 0x15b3, 1).tags)
        self.assertEqual({'physical_network': 'c'},
                         parsed.match(OTHER, 0x15b3, 1).tags)

    def test_no_match(self) -> None:
        parsed = specs({'vendor_id': '8086'})
        self.assertIsNone(parsed.match(OTHER, 0x15b3, 1))
        self.assertIsNone(specs().match(OTHER, 0x8086, 1))
        self.assertEqual(0, len(specs()))


class TagTest(testtools.TestCase):

    BOOLS = [('true', 'true'), ('yes', 'true'), ('Yes', 'true'),
             ('ON', 'true'), ('1', 'true'), (True, 'true'), (1, 'true'),
             ('false', 'false'), ('no', 'false'), ('Off', 'false'),
             ('0', 'false'), (False, 'false'), (' n ', 'false')]

    def test_boolean_tags_normalised(self) -> None:
        for tag in device_spec.BOOL_TAGS:
            for value, expected in self.BOOLS:
                with case(f'{tag}={value!r}'):
                    self.assertEqual(expected, one({tag: value}).tags[tag])

    def test_bad_boolean_names_the_tag(self) -> None:
        for tag in device_spec.BOOL_TAGS + ('trusted', 'remote_managed'):
            for value in ('maybe', '', '2', 'truee'):
                with case(f'{tag}={value!r}'):
                    exc = self.assertRaises(exception.InvalidDeviceSpec,
                                            one, {tag: value})
                    self.assertIn(f'tag {tag}={value!r} is not a boolean; '
                                  'use true or false', exc.message)

    def test_trusted_and_remote_managed_kept_as_given(self) -> None:
        spec = one({'trusted': 'yes', 'remote_managed': 'False'})
        self.assertEqual({'trusted': 'yes', 'remote_managed': 'False'},
                         spec.tags)

    def test_unknown_tags_kept_as_strings(self) -> None:
        spec = one({'physical_network': 'physnet1', 'my_tag': 'x',
                    'number': 5, 'flag': True, 'float': 1.5})
        self.assertEqual({'physical_network': 'physnet1', 'my_tag': 'x',
                          'number': '5', 'flag': 'true', 'float': '1.5'},
                         spec.tags)
        self.assertEqual(tuple(sorted(spec.tags.items())), spec.pool_tags)

    def test_null_tags_are_unset(self) -> None:
        # nova's documented example (invalid there only because
        # remote_managed is set on a PF, which needs sysfs to tell)
        spec = one({"address": "0000:82:00.0", "product_id": "a2d6",
                    "vendor_id": "15b3", "physical_network": None,
                    "remote_managed": "true"})
        self.assertEqual({'remote_managed': 'true'}, spec.tags)
        for tag in device_spec.BOOL_TAGS + ('trusted', 'my_tag'):
            with case(tag):
                self.assertEqual({}, one({tag: None}).tags)

    def test_structured_tag_values_rejected(self) -> None:
        for value in ({'a': 1}, [1, 2]):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidDeviceSpec, one,
                                        {'physical_network': value})
                self.assertIn(
                    f'tag physical_network={value!r} must be a string',
                    exc.message)

    def test_empty_tag_name(self) -> None:
        exc = self.assertRaises(exception.InvalidDeviceSpec, one, {'': 'x'})
        self.assertIn("tag name '' must be a non-empty string", exc.message)

    def test_resource_class_and_traits(self) -> None:
        spec = one({'resource_class': 'CUSTOM_NVME',
                    'traits': 'nvme-crypto, HW_GPU_API_VULKAN ,,',
                    'physical_network': 'p'})
        self.assertEqual('CUSTOM_NVME', spec.resource_class)
        self.assertEqual(frozenset({'CUSTOM_NVME_CRYPTO',
                                    'HW_GPU_API_VULKAN'}), spec.traits)
        self.assertEqual((('physical_network', 'p'),), spec.pool_tags)
        plain = one({})
        self.assertIsNone(plain.resource_class)
        self.assertEqual(frozenset(), plain.traits)

    def test_to_dict_is_the_source(self) -> None:
        entry = {'vendor_id': '8086', 'address': {'bus': '81'},
                 'managed': 'yes'}
        self.assertEqual(entry, one(entry).to_dict())


class FromConfigErrorsTest(testtools.TestCase):

    def test_not_json(self) -> None:
        exc = self.assertRaises(exception.InvalidDeviceSpec,
                                device_spec.DeviceSpecList.from_config,
                                ['{"vendor_id": "8086"}', '{vendor_id: 1}'])
        self.assertIn('[pci] device_spec value 2 ({vendor_id: 1})',
                      exc.message)
        self.assertIn('not valid JSON', exc.message)

    def test_not_a_string(self) -> None:
        exc = self.assertRaises(exception.InvalidDeviceSpec,
                                device_spec.DeviceSpecList.from_config,
                                [{'vendor_id': '8086'}])
        self.assertIn('must be a JSON string', exc.message)

    def test_entry_not_an_object(self) -> None:
        for text in ('"x"', '5', 'null', '[{"vendor_id": "8086"}, 5]',
                     '[[]]'):
            with case(text):
                exc = self.assertRaises(
                    exception.InvalidDeviceSpec,
                    device_spec.DeviceSpecList.from_config, [text])
                self.assertIn('each entry must be a JSON object',
                              exc.message)

    def test_list_entry_is_named(self) -> None:
        exc = self.assertRaises(
            exception.InvalidDeviceSpec, specs,
            '[{"vendor_id": "8086"}, {"vendor_id": "zz"}]')
        self.assertIn('[pci] device_spec value 1 entry 2', exc.message)
        self.assertIn("vendor_id 'zz'", exc.message)

    def test_option_name_in_message(self) -> None:
        exc = self.assertRaises(
            exception.InvalidDeviceSpec,
            device_spec.DeviceSpecList.from_config, ['{"managed": "x"}'],
            '[pci] passthrough_whitelist')
        self.assertIn('[pci] passthrough_whitelist value 1', exc.message)

    def test_empty_list_value(self) -> None:
        self.assertEqual(0, len(specs('[]')))

    def test_deeply_nested_json_is_invalid(self) -> None:
        exc = self.assertRaises(exception.InvalidDeviceSpec,
                                device_spec.DeviceSpecList.from_config,
                                ['[' * 60000])
        self.assertIn('not valid JSON', exc.message)


class ConfigOptionTest(testtools.TestCase):
    """The option as operators write it, with its legacy name."""

    def _conf(self, text: str) -> cfg.ConfigOpts:
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'nova.conf')
        with open(path, 'w') as f:
            f.write(text)
        conf = cfg.ConfigOpts()
        pci_conf.register_opts(conf)
        conf(args=['--config-file', path], project='test',
             default_config_files=[], default_config_dirs=[])
        return conf

    def test_device_spec_multi_values(self) -> None:
        conf = self._conf(
            '[pci]\n'
            'device_spec = {"vendor_id": "8086", "physical_network": "a"}\n'
            'device_spec = [{"address": "0000:81:00.0"}, {"devname": "e"}]\n'
            'alias = {"name": "a", "vendor_id": "8086", '
            '"product_id": "154c"}\n')
        parsed = device_spec.DeviceSpecList.from_config(
            conf.pci.device_spec)
        self.assertEqual(3, len(parsed))
        self.assertEqual(PF, parsed.specs[1].exact)
        self.assertEqual(1, len(conf.pci.alias))

    def test_legacy_passthrough_whitelist(self) -> None:
        conf = self._conf(
            '[pci]\n'
            'passthrough_whitelist = {"vendor_id": "15b3", '
            '"product_id": "1018"}\n'
            'passthrough_whitelist = {"address": "*:0a:00.*"}\n')
        parsed = device_spec.DeviceSpecList.from_config(
            conf.pci.device_spec)
        self.assertEqual(2, len(parsed))
        self.assertEqual(0x15b3, parsed.specs[0].vendor_id)
        self.assertTrue(parsed.specs[1].match(A('0000:0a:00.3'), 1, 2))

    def test_default_is_empty(self) -> None:
        conf = self._conf('[pci]\n')
        self.assertEqual([], conf.pci.device_spec)
        self.assertEqual([], conf.pci.alias)


class NovaFidelityTest(testtools.TestCase):
    """Issue 13: nova's readings, and errors that say what nova does."""

    def test_null_tags_are_pool_keys(self) -> None:
        spec = device_spec.DeviceSpec({'physical_network': None,
                                       'resource_class': None})
        self.assertEqual(('physical_network',), spec.null_tags)
        self.assertEqual({}, spec.tags)

    def test_remote_managed_needs_a_serial_when_known(self) -> None:
        spec = device_spec.DeviceSpec({'remote_managed': 'true'})
        vf = A('0000:81:02.0')
        for serial, matched in ((None, False), ('', False),
                                ('MT2113X00001', True)):
            with case(repr(serial)):
                self.assertEqual(matched, spec.match(vf, 1, 2,
                                                     serial=serial))
        # a caller that does not read the VPD: the rule is not applied
        self.assertTrue(spec.match(vf, 1, 2))
        plain = device_spec.DeviceSpec({})
        self.assertTrue(plain.match(vf, 1, 2, serial=None))

    def test_nova_compatible_regex(self) -> None:
        for address, default, nova in (({'bus': '0A'}, True, False),
                                       ({'bus': '0'}, False, True),
                                       ({'bus': '0a'}, True, True)):
            with case(str(address)):
                for compat, expected in ((False, default), (True, nova)):
                    spec = device_spec.DeviceSpec({'address': address},
                                                  nova_compatible=compat)
                    self.assertEqual(expected,
                                     spec.match(A('0000:0a:00.0'), 1, 2))

    def test_errors_say_what_nova_would_have_done(self) -> None:
        for entry, needle in (
                ({'trusted': 'maybe'}, 'nova would have accepted it and '
                 'read it as false'),
                ({'physical_network': ['a']}, 'nova would have accepted'),
                ({'count': '1'}, "nova's own pool keys"),
                ({'dev_type': 'type-VF'}, 'give the tag another name'),
                ({'address': '0x0a:00.0'}, 'nova would have accepted it as '
                 '0a; write 0a'),
                ({'address': '+1:00.0'}, 'write 01'),
                ({'address': {'func': '1'}}, 'nova would have ignored')):
            with case(str(entry)):
                exc = self.assertRaises(exception.InvalidDeviceSpec,
                                        device_spec.DeviceSpec, entry)
                self.assertIn(needle, exc.message)
