"""``[pci] alias``: nova's documented examples, the schema and name groups."""

from __future__ import annotations

import json
from typing import Any

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from tests.unit.pci.fakes import case


def parse(*values: Any) -> dict[str, alias_mod.Alias]:
    return alias_mod.parse_aliases(
        [v if isinstance(v, str) else json.dumps(v) for v in values])


def invalid(test: testtools.TestCase, *values: Any) -> str:
    exc = test.assertRaises(exception.InvalidAlias, parse, *values)
    return exc.message


IDS = {'vendor_id': '8086', 'product_id': '154c'}


class NovaDocumentedExamplesTest(testtools.TestCase):

    def test_quickassist(self) -> None:
        aliases = parse({"name": "QuickAssist", "product_id": "0443",
                         "vendor_id": "8086", "device_type": "type-PCI",
                         "numa_policy": "required"})
        qat = aliases['QuickAssist']
        self.assertEqual('required', qat.numa_policy)
        self.assertEqual('type-PCI', qat.dev_type)
        self.assertEqual((alias_mod.AliasSpec(0x8086, 0x0443, 'type-PCI'),),
                         qat.specs)

    def test_resource_class_and_traits(self) -> None:
        aliases = parse({"name": "A16_16A", "device_type": "type-VF",
                         "resource_class": "GPU_VF", "traits": "blue, big"})
        spec = aliases['A16_16A'].specs[0]
        self.assertIsNone(spec.vendor_id)
        self.assertIsNone(spec.product_id)
        self.assertEqual('CUSTOM_GPU_VF', spec.resource_class)
        self.assertEqual(frozenset({'CUSTOM_BLUE', 'CUSTOM_BIG'}),
                         spec.traits)

    def test_custom_resource_class_kept(self) -> None:
        aliases = parse({"name": "NVME256G", "device_type": "type-PCI",
                         "resource_class": "CUSTOM_NVME256G",
                         "traits": "nvme-with-crypto-erase"})
        spec = aliases['NVME256G'].specs[0]
        self.assertEqual('CUSTOM_NVME256G', spec.resource_class)
        self.assertEqual(frozenset({'CUSTOM_NVME_WITH_CRYPTO_ERASE'}),
                         spec.traits)

    def test_standard_resource_class_and_trait_kept(self) -> None:
        spec = parse({"name": "g", "resource_class": "pgpu",
                      "traits": "HW_GPU_API_VULKAN"})['g'].specs[0]
        self.assertEqual('PGPU', spec.resource_class)
        self.assertEqual(frozenset({'HW_GPU_API_VULKAN'}), spec.traits)

    def test_repeated_option(self) -> None:
        aliases = parse(
            {"name": "QuickAssist-1", "product_id": "0443",
             "vendor_id": "8086", "device_type": "type-PCI",
             "numa_policy": "required"},
            {"name": "QuickAssist-2", "product_id": "0444",
             "vendor_id": "8086", "device_type": "type-PCI",
             "numa_policy": "required", "live_migratable": "yes"})
        self.assertEqual(['QuickAssist-1', 'QuickAssist-2'],
                         sorted(aliases))
        self.assertIsNone(aliases['QuickAssist-1'].specs[0].live_migratable)
        self.assertEqual('true',
                         aliases['QuickAssist-2'].specs[0].live_migratable)


class SchemaTest(testtools.TestCase):

    def test_defaults(self) -> None:
        a = parse(dict(IDS, name='vf'))['vf']
        self.assertEqual('legacy', a.numa_policy)
        self.assertEqual(alias_mod.DEFAULT_NUMA_POLICY, a.numa_policy)
        self.assertIsNone(a.dev_type)
        self.assertEqual('vf', a.name)

    def test_all_policies_and_types(self) -> None:
        for policy in alias_mod.NUMA_POLICIES:
            for dev_type in alias_mod.DEVICE_TYPES:
                with case(f'{policy} {dev_type}'):
                    a = parse(dict(IDS, name='x', numa_policy=policy,
                                   device_type=dev_type))['x']
                    self.assertEqual((policy, dev_type),
                                     (a.numa_policy, a.dev_type))
                    self.assertEqual(dev_type, a.specs[0].dev_type)

    def test_name_is_stripped(self) -> None:
        self.assertEqual(['vf'], list(parse(dict(IDS, name=' vf '))))

    def test_capability_type_pci(self) -> None:
        self.assertIn('x', parse(dict(IDS, name='x', capability_type='pci')))

    ERRORS = [
        ('unknown key', dict(IDS, name='a', foo='1'),
         ["('foo' was unexpected)", 'allowed keys: capability_type, '
          'device_type, live_migratable, name, numa_policy, product_id, '
          'resource_class, traits, vendor_id']),
        ('bad device_type', dict(IDS, name='a', device_type='type-X'),
         ["device_type 'type-X' is not one of type-PCI, type-PF, "
          "type-VF"]),
        ('device_type case', dict(IDS, name='a', device_type='type-vf'),
         ["device_type 'type-vf' is not one of"]),
        ('bad numa_policy', dict(IDS, name='a', numa_policy='strict'),
         ["numa_policy 'strict' is not one of required, legacy, preferred, "
          "socket"]),
        ('vendor_id too long', dict(IDS, name='a', vendor_id='80861'),
         ["vendor_id '80861' must be exactly 4 hex digits"]),
        ('vendor_id short', dict(IDS, name='a', vendor_id='86'),
         ["vendor_id '86' must be exactly 4 hex digits"]),
        ('product_id not hex', dict(IDS, name='a', product_id='zzzz'),
         ["product_id 'zzzz' must be exactly 4 hex digits"]),
        ('product_id star', dict(IDS, name='a', product_id='*'),
         ["product_id '*' must be exactly 4 hex digits"]),
        ('vendor_id number', dict(IDS, name='a', vendor_id=8086),
         ["vendor_id: 8086 is not of type 'string'"]),
        ('no name', dict(IDS), ["'name' is a required property"]),
        ('empty name', dict(IDS, name=''), ['name:']),
        ('blank name', dict(IDS, name='   '),
         ["name '   ' is blank (nova would have accepted it as an "
          "alias named '')"]),
        ('name not a string', dict(IDS, name=5),
         ["name: 5 is not of type 'string'"]),
        ('capability_type', dict(IDS, name='a', capability_type='usb'),
         ["capability_type 'usb' is not one of pci"]),
        ('live_migratable bool', dict(IDS, name='a', live_migratable=True),
         ["live_migratable: True is not of type 'string'"]),
        ('live_migratable word', dict(IDS, name='a', live_migratable='maybe'),
         ["live_migratable 'maybe' is not a boolean; use true or false"]),
        ('empty resource_class', {'name': 'a', 'resource_class': ''},
         ['resource_class:']),
        ('vendor only', {'name': 'a', 'vendor_id': '8086'},
         ['give both vendor_id and product_id, or a resource_class']),
        ('traits only', {'name': 'a', 'traits': 'fast'},
         ['give both vendor_id and product_id, or a resource_class']),
        ('not an object', 5, ["the entry: 5 is not of type 'object'"]),
    ]

    def test_errors(self) -> None:
        for name, entry, needles in self.ERRORS:
            with case(name):
                message = invalid(self, entry)
                self.assertIn('[pci] alias value 1', message)
                for needle in needles:
                    self.assertIn(needle, message)

    def test_live_migratable_values(self) -> None:
        for value, expected in (('yes', 'true'), ('No', 'false'),
                                ('true', 'true'), ('0', 'false')):
            with case(value):
                spec = parse(dict(IDS, name='a',
                                  live_migratable=value))['a'].specs[0]
                self.assertEqual(expected, spec.live_migratable)

    def test_spec_to_dict(self) -> None:
        spec = parse(dict(IDS, name='a', device_type='type-VF',
                          traits='b,a', resource_class='CUSTOM_X',
                          live_migratable='yes'))['a'].specs[0]
        self.assertEqual({'vendor_id': '8086', 'product_id': '154c',
                          'device_type': 'type-VF',
                          'resource_class': 'CUSTOM_X',
                          'traits': 'CUSTOM_A,CUSTOM_B',
                          'live_migratable': 'true'}, spec.to_dict())
        self.assertEqual({}, alias_mod.AliasSpec().to_dict())


class FormTest(testtools.TestCase):

    def test_list_form(self) -> None:
        aliases = parse([dict(IDS, name='vf', device_type='type-VF'),
                         {'name': 'pf', 'vendor_id': '8086',
                          'product_id': '1572', 'device_type': 'type-PF'}])
        self.assertEqual({'vf', 'pf'}, set(aliases))

    def test_list_entry_named_in_error(self) -> None:
        message = invalid(self, [dict(IDS, name='a'),
                                 dict(IDS, name='b', numa_policy='x')])
        self.assertIn('[pci] alias value 1 entry 2', message)
        self.assertIn("numa_policy 'x'", message)

    def test_second_value_named(self) -> None:
        message = invalid(self, dict(IDS, name='a'), dict(IDS, name=''))
        self.assertIn('[pci] alias value 2', message)

    def test_not_json(self) -> None:
        exc = self.assertRaises(exception.InvalidAlias,
                                alias_mod.parse_aliases, ['{name: a}'])
        self.assertIn('[pci] alias value 1 ({name: a})', exc.message)
        self.assertIn('not valid JSON', exc.message)

    def test_not_a_string(self) -> None:
        exc = self.assertRaises(exception.InvalidAlias,
                                alias_mod.parse_aliases, [dict(IDS, name='a')])
        self.assertIn('must be a JSON string', exc.message)

    def test_empty(self) -> None:
        self.assertEqual({}, parse())
        self.assertEqual({}, parse('[]'))

    def test_deeply_nested_json_is_invalid(self) -> None:
        exc = self.assertRaises(exception.InvalidAlias,
                                alias_mod.parse_aliases, ['[' * 60000])
        self.assertIn('not valid JSON', exc.message)

    def test_trailing_newline_in_id_is_invalid(self) -> None:
        # jsonschema's "pattern" uses re.search, where "$" also matches
        # before a final newline.
        message = invalid(self, dict(IDS, name='a', vendor_id='8086\n'))
        self.assertIn('vendor_id', message)


class SameNameTest(testtools.TestCase):

    def test_alternatives_agreeing(self) -> None:
        a = parse(dict(IDS, name='nic', device_type='type-VF',
                       numa_policy='required'),
                  {'name': 'nic', 'vendor_id': '15b3', 'product_id': '1018',
                   'device_type': 'type-VF', 'numa_policy': 'required'}
                  )['nic']
        self.assertEqual(('required', 'type-VF'), (a.numa_policy, a.dev_type))
        self.assertEqual([0x8086, 0x15b3], [s.vendor_id for s in a.specs])

    def test_default_policy_agrees_with_legacy(self) -> None:
        a = parse(dict(IDS, name='nic'),
                  dict(IDS, name='nic', product_id='1111',
                       numa_policy='legacy'))['nic']
        self.assertEqual(2, len(a.specs))
        self.assertEqual('legacy', a.numa_policy)

    def test_both_unset_device_type_agree(self) -> None:
        a = parse(dict(IDS, name='n'), dict(IDS, name='n'))['n']
        self.assertIsNone(a.dev_type)
        self.assertEqual(2, len(a.specs))

    def test_numa_policy_disagreement(self) -> None:
        message = invalid(self, dict(IDS, name='nic'),
                          dict(IDS, name='nic', numa_policy='required'))
        self.assertIn("alias 'nic' has numa_policy 'required' here but "
                      "'legacy' in [pci] alias value 1", message)
        self.assertIn('entries sharing a name must agree', message)
        self.assertIn('[pci] alias value 2', message)

    def test_device_type_disagreement(self) -> None:
        # nova fails here with KeyError 'dev_type'.
        message = invalid(self, dict(IDS, name='nic'),
                          dict(IDS, name='nic', device_type='type-PF'))
        self.assertIn("alias 'nic' has device_type type-PF here but (unset) "
                      "in [pci] alias value 1", message)
        self.assertNotIn("'dev_type'", message)
        message = invalid(self, [dict(IDS, name='nic',
                                      device_type='type-VF'),
                                 dict(IDS, name='nic',
                                      device_type='type-PCI')])
        self.assertIn('device_type type-PCI here but type-VF in [pci] alias '
                      'value 1 entry 1', message)

    def test_names_differing_only_by_spaces_are_one_alias(self) -> None:
        a = parse(dict(IDS, name='nic'), dict(IDS, name='nic '))
        self.assertEqual(['nic'], list(a))
        self.assertEqual(2, len(a['nic'].specs))
