"""PCI address values and nova's glob and regex address specs."""

from __future__ import annotations

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import address as addr
from tests.unit.pci.fakes import case

A = addr.PciAddress.parse


class PciAddressParseTest(testtools.TestCase):

    VALID = [
        # (input, normalised)
        ('0000:0a:00.1', '0000:0a:00.1'),
        ('0a:00.1', '0000:0a:00.1'),
        ('0000:0A:1F.7', '0000:0a:1f.7'),
        ('FFFF:FF:1f.7', 'ffff:ff:1f.7'),
        ('0:a:1.7', '0000:0a:01.7'),
        ('a:1.0', '0000:0a:01.0'),
        ('00:00.0', '0000:00:00.0'),
        ('abcd:ef:10.3', 'abcd:ef:10.3'),
    ]

    def test_valid(self) -> None:
        for text, expected in self.VALID:
            with case(text):
                parsed = A(text)
                self.assertEqual(expected, str(parsed))
                self.assertEqual(parsed, A(expected))
                self.assertTrue(addr.PciAddress.is_valid(text))
                self.assertEqual(expected, addr.normalize(text))

    def test_fields_and_names(self) -> None:
        a = A('0000:3b:1f.7')
        self.assertEqual((0, 0x3b, 0x1f, 7),
                         (a.domain, a.bus, a.slot, a.function))
        self.assertEqual(('0000', '3b', '1f', '7'), a.fields)
        self.assertEqual('pci_0000_3b_1f_7', a.libvirt_name)

    def test_parse_is_idempotent_on_values(self) -> None:
        a = A('0000:3b:00.0')
        self.assertIs(a, A(a))

    def test_ordering_and_hashing(self) -> None:
        addresses = [A('0001:00:00.0'), A('0000:01:00.0'),
                     A('0000:00:01.0'), A('0000:00:00.1')]
        self.assertEqual(['0000:00:00.1', '0000:00:01.0', '0000:01:00.0',
                          '0001:00:00.0'], [str(a) for a in sorted(addresses)])
        self.assertEqual(1, len({A('0a:00.0'), A('0000:0A:00.0')}))

    def test_frozen(self) -> None:
        a = A('0000:00:00.0')
        self.assertRaises(AttributeError, setattr, a, 'bus', 1)

    OUT_OF_RANGE = [
        # (input, field named in the message, value named)
        ('10000:00:00.0', 'domain', '10000'),
        ('0000:100:00.0', 'bus', '100'),
        ('0000:00:20.0', 'slot', '20'),
        ('0000:00:00.8', 'function', '8'),
        ('00:20.0', 'slot', '20'),
        ('0000:00:00.f', 'function', 'f'),
    ]

    def test_out_of_range(self) -> None:
        for text, field, value in self.OUT_OF_RANGE:
            with case(text):
                exc = self.assertRaises(exception.InvalidPciAddress, A, text)
                self.assertIn(field, exc.message)
                self.assertIn(value, exc.message)
                self.assertIn(repr(text), exc.message)
                # says what would be valid
                self.assertIn('slot <= 1f', exc.message)
                self.assertFalse(addr.PciAddress.is_valid(text))

    MALFORMED = [
        ('', 'wrong shape'),
        ('0000:00:00', 'wrong shape'),
        ('0000:00.0:0', "function '0:0' is not a hex number"),
        ('0:0:0:0.0', 'wrong shape'),
        ('000000.0', 'wrong shape'),
        ('0000:0g:00.0', "bus '0g' is not a hex number"),
        ('0000::00.0', "bus '' is not a hex number"),
        ('0000:00:00.', "function '' is not a hex number"),
        ('*:00:00.0', "domain '*' is not a hex number"),
        ('0000:00:0 0.0', "slot '0 0' is not a hex number"),
        ('0000:-1:00.0', "bus '-1' is not a hex number"),
        ('0000:+1:00.0', "bus '+1' is not a hex number"),
        ('0x00:00:00.0', "domain '0x00' is not a hex number"),
    ]

    def test_malformed(self) -> None:
        for text, reason in self.MALFORMED:
            with case(text):
                exc = self.assertRaises(exception.InvalidPciAddress, A, text)
                self.assertIn(reason, exc.message)
                self.assertIn(repr(text), exc.message)

    def test_not_a_string(self) -> None:
        for value in (None, 5, ['0000:00:00.0'], {'bus': '00'}):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidPciAddress, A, value)
                self.assertIn('not a string', exc.message)

    def test_field_is_named(self) -> None:
        exc = self.assertRaises(exception.InvalidPciAddress, A, 'x',
                                'devices[3].parent_address')
        self.assertIn('in devices[3].parent_address', exc.message)
        self.assertEqual('devices[3].parent_address', exc.kwargs['field'])

    def test_is_invalid_subclass(self) -> None:
        self.assertTrue(issubclass(exception.InvalidPciAddress,
                                   exception.Invalid))


class GlobSpecTest(testtools.TestCase):

    # nova's documented glob forms: (spec, matching, not matching,
    # normalised config, exact address or None)
    TABLE = [
        ('*:0a:00.*', ['0000:0a:00.0', '0001:0a:00.7'],
         ['0000:0b:00.0', '0000:0a:01.0'], '*:0a:00.*', None),
        (':0a:00.', ['0000:0a:00.0', '0005:0a:00.3'],
         ['0000:0a:01.0'], '*:0a:00.*', None),
        ('0a:00.1', ['0000:0a:00.1', '0002:0a:00.1'],
         ['0000:0a:00.2'], '*:0a:00.1', None),
        ('02:00', ['0000:02:00.0', '0000:02:00.5'],
         ['0000:02:01.0', '0000:03:00.0'], '*:02:00.*', None),
        ('*', ['0000:00:00.0', 'ffff:ff:1f.7'], [], '*:*:*.*', None),
        ('', ['0000:00:00.0', 'ffff:ff:1f.7'], [], '*:*:*.*', None),
        ('.', ['0000:12:03.4'], [], '*:*:*.*', None),
        ('::.', ['0000:12:03.4'], [], '*:*:*.*', None),
        ('.3', ['0000:00:00.3', '0001:02:03.3'], ['0000:00:00.2'],
         '*:*:*.3', None),
        ('00', ['0000:05:00.1'], ['0000:05:01.1'], '*:*:00.*', None),
        ('0000:0a:00.1', ['0000:0a:00.1'], ['0001:0a:00.1', '0000:0a:00.2'],
         '0000:0a:00.1', '0000:0a:00.1'),
        ('0:A:0.1', ['0000:0a:00.1'], ['0000:0a:00.0'],
         '0000:0a:00.1', '0000:0a:00.1'),
        (' 0000 : 0a : 00 . 1 ', ['0000:0a:00.1'], [], '0000:0a:00.1',
         '0000:0a:00.1'),
        ('*:*:*.*', ['0000:81:00.0'], [], '*:*:*.*', None),
        ('0001:*:*.*', ['0001:81:00.0'], ['0000:81:00.0'], '0001:*:*.*',
         None),
    ]

    def test_table(self) -> None:
        for text, yes, no, config, exact in self.TABLE:
            with case(repr(text)):
                spec = addr.address_spec(text)
                self.assertIsInstance(spec, addr.GlobAddressSpec)
                for a in yes:
                    self.assertTrue(spec.match(A(a)), a)
                for a in no:
                    self.assertFalse(spec.match(A(a)), a)
                self.assertEqual(config, spec.to_config())
                got = spec.exact()
                self.assertEqual(exact, str(got) if got else None)

    ERRORS = [
        ('1:2:3:4.5', 'more than three'),
        ('0000:100:00.0', 'bus 100 is greater than ff'),
        ('0000:00:20.*', 'slot 20 is greater than 1f'),
        ('*:*:*.8', 'function 8 is greater than 7'),
        ('10000:*:*.*', "domain '10000' is not a hex number"),
        ('zz:00.0', "bus 'zz' is not a hex number"),
        ('0a:00.1.2', "function '1.2' is not a hex number"),
        ('?:00.0', "bus '?' is not a hex number"),
    ]

    def test_errors_name_field_and_value(self) -> None:
        for text, reason in self.ERRORS:
            with case(text):
                exc = self.assertRaises(exception.InvalidPciAddress,
                                        addr.address_spec, text,
                                        'entry 2 address')
                self.assertIn(reason, exc.message)
                self.assertIn(repr(text), exc.message)
                self.assertIn('entry 2 address', exc.message)

    def test_wrong_type(self) -> None:
        for value in (5, None, ['0a:00.1'], 1.5, True):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidPciAddress,
                                        addr.address_spec, value)
                self.assertIn('glob string or a dict', exc.message)


class RegexSpecTest(testtools.TestCase):

    # nova's documented regex examples plus the anchoring rule.
    TABLE = [
        ({'domain': '.*', 'bus': '02', 'slot': '01', 'function': '[2-7]'},
         ['0000:02:01.2', '0000:02:01.7', '0001:02:01.4'],
         ['0000:02:01.1', '0000:02:02.2', '0000:12:01.2']),
        ({'domain': '.*', 'bus': '02', 'slot': '0[1-2]', 'function': '.*'},
         ['0000:02:01.0', '0000:02:02.7'],
         ['0000:02:03.0', '0000:02:00.0']),
        # anchored at both ends: nova (re.match) would match bus 0a here.
        ({'bus': '0'}, [], ['0000:0a:00.0', '0000:00:00.0']),
        ({'bus': '0.'}, ['0000:0a:00.0', '0000:00:00.0'], ['0000:10:00.0']),
        ({'bus': '0a'}, ['0000:0a:00.0'], ['0000:a0:00.0']),
        ({'bus': '0A'}, ['0000:0a:00.0'], []),
        ({'function': '1'}, ['0000:00:00.1'], ['0000:00:00.0']),
        ({'slot': '1'}, [], ['0000:00:01.0', '0000:00:10.0']),
        ({'slot': '1f'}, ['0000:00:1f.0'], ['0000:00:01.0']),
        ({'domain': '0'}, [], ['0000:00:00.0']),
        ({'domain': '0+'}, ['0000:00:00.0'], ['0001:00:00.0']),
        ({}, ['0000:00:00.0', 'ffff:ff:1f.7'], []),
        ({'bus': '8[12]|3b'}, ['0000:81:00.0', '0000:3b:00.0'],
         ['0000:83:00.0', '0000:3c:00.0']),
    ]

    def test_table(self) -> None:
        for spec_dict, yes, no in self.TABLE:
            with case(repr(spec_dict)):
                spec = addr.address_spec(spec_dict)
                self.assertIsInstance(spec, addr.RegexAddressSpec)
                for a in yes:
                    self.assertTrue(spec.match(A(a)), a)
                for a in no:
                    self.assertFalse(spec.match(A(a)), a)
                expected = {k: '.*' for k in addr.RegexAddressSpec.KEYS}
                expected.update(spec_dict)
                self.assertEqual(expected, spec.to_config())

    def test_exact_only_for_hex_literals(self) -> None:
        full = {'domain': '0000', 'bus': '0a', 'slot': '00', 'function': '1'}
        self.assertEqual(A('0000:0a:00.1'), addr.address_spec(full).exact())
        for key in full:
            partial = dict(full)
            del partial[key]
            with case(f'without {key}'):
                self.assertIsNone(addr.address_spec(partial).exact())
            regex = dict(full, **{key: '0.'})
            with case(f'{key} is a pattern'):
                self.assertIsNone(addr.address_spec(regex).exact())
        # hex literals that are out of range name no address
        self.assertIsNone(addr.address_spec(
            dict(full, slot='20')).exact())

    def test_exact_is_matched(self) -> None:
        # A spec naming one address must match it: the device_spec rule
        # "a PF address covers its VFs" would otherwise take the VFs only.
        for spec_dict in (
                {'domain': '0', 'bus': '81', 'slot': '0', 'function': '0'},
                {'domain': '0000', 'bus': '081', 'slot': '00',
                 'function': '0'},
                {'domain': '0000', 'bus': '81', 'slot': '00',
                 'function': '0'}):
            with case(repr(spec_dict)):
                spec = addr.address_spec(spec_dict)
                exact = spec.exact()
                if exact is not None:
                    self.assertTrue(spec.match(exact))

    ERRORS = [
        ({'bus': '('}, 'address.bus', 'is not a regular expression'),
        ({'slot': '[0-'}, 'address.slot', 'is not a regular expression'),
        ({'function': '*'}, 'address.function',
         'is not a regular expression'),
        ({'domain': 5}, 'address.domain', 'must be a regular expression'),
        ({'bus': None}, 'address.bus', 'must be a regular expression'),
        ({'bus': '0', 'device': '1'}, 'address',
         'unknown key(s) device; allowed: domain, bus, slot, function'),
        ({'func': '1'}, 'address', 'unknown key(s) func'),
        # Exponential backtracking (a property test's runaway input) and
        # an expression longer than any field needs.
        ({'bus': '((|)){125184}'}, 'address.bus',
         'has a repeated part that can match nothing'),
        ({'slot': '(0?){40}'}, 'address.slot',
         'has a repeated part that can match nothing'),
        ({'domain': '(.*)*'}, 'address.domain',
         'has a repeated part that can match nothing'),
        ({'bus': '0' * 65}, 'address.bus',
         'of 65 characters; at most 64 are allowed'),
    ]

    def test_errors_name_the_key(self) -> None:
        for spec_dict, field, reason in self.ERRORS:
            with case(repr(spec_dict)):
                exc = self.assertRaises(exception.InvalidPciAddress,
                                        addr.address_spec, spec_dict)
                self.assertIn(f'in {field}:', exc.message)
                self.assertIn(reason, exc.message)

    def test_huge_repetition_is_invalid(self) -> None:
        # re.compile raises OverflowError, not re.error, for this one.
        spec = {'bus': 'a{99999999999}'}
        exc = self.assertRaises(exception.InvalidPciAddress,
                                addr.address_spec, spec)
        self.assertIn('address.bus', exc.message)
