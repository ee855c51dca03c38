"""Aliases and extra specs nova 34 reads differently: every difference in
doc/nova-differences.rst, and what the error says about nova."""

from __future__ import annotations

import json
from typing import Any

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod

IDS = {'vendor_id': '15b3', 'product_id': '1018'}
NOVA = 'nova would have accepted it'
API = 'nova-api refuses it too (microversion 2.86 and later)'


def alias(**entry: Any) -> list[str]:
    return [json.dumps(dict({'name': 'a'}, **entry))]


def refusal(values: list[str]) -> str:
    try:
        alias_mod.parse_aliases(values)
    except exception.InvalidAlias as exc:
        return str(exc.message)
    raise AssertionError('%r was accepted' % values)


def flavor(value: str, policy: str | None = None) -> str:
    extra = {request_mod.ALIAS_KEY: value}
    if policy is not None:
        extra[request_mod.NUMA_POLICY_KEY] = policy
    try:
        request_mod.RequestSet.from_extra_specs(
            extra, alias_mod.parse_aliases(alias(**IDS)))
    except exception.InvalidExtraSpec as exc:
        return str(exc.message)
    raise AssertionError('%r was accepted' % value)


class AliasStricterTest(testtools.TestCase):
    """The project refuses, nova accepts: the error says what nova does."""

    def test_blank_name(self) -> None:
        self.assertIn("name '  ' is blank (%s as an alias named '')" % NOVA,
                      refusal(alias(**dict(IDS, name='  '))))

    def test_id_with_a_final_newline(self) -> None:
        self.assertIn("vendor_id '15b3\\n' must be exactly 4 hex digits (%s "
                      "and matched no device with it; write '15b3')" % NOVA,
                      refusal(alias(**dict(IDS, vendor_id='15b3\n'))))

    def test_id_with_unicode_digits(self) -> None:
        self.assertIn("(%s and matched no device with it; write '1018')"
                      % NOVA, refusal(alias(**dict(
                          IDS, product_id='\u0661\u0660\u0661\u0668'))))

    def test_empty_resource_class(self) -> None:
        self.assertIn('resource_class: %r should be non-empty (%s: without '
                      '[filter_scheduler] pci_in_placement it ignores '
                      'resource_class)' % ('', NOVA),
                      refusal(alias(**dict(IDS, resource_class=''))))

    def test_resource_class_that_normalises_to_nothing(self) -> None:
        message = refusal(alias(**dict(IDS, resource_class='!!!')))
        self.assertIn('it ignores resource_class', message)
        self.assertIn(NOVA, message)

    def test_no_word_about_nova_when_nova_refuses_too(self) -> None:
        # nova refuses an alias without product_id (classic mode), and
        # 0x ids, whatever else is wrong
        for values in (alias(vendor_id='15b3', resource_class=''),
                       alias(**dict(IDS, name='  ', product_id='0x18')),
                       alias(**dict(IDS, vendor_id='0x15'))):
            self.assertNotIn(NOVA, refusal(values))


class AliasLenientTest(testtools.TestCase):
    """nova refuses, the project accepts (documented)."""

    def test_list_form(self) -> None:
        values = [json.dumps([dict(IDS, name='a'), dict(IDS, name='b')])]
        self.assertEqual({'a', 'b'}, set(alias_mod.parse_aliases(values)))

    def test_same_name_without_device_type(self) -> None:
        values = alias(**IDS) + alias(vendor_id='8086', product_id='154c')
        self.assertEqual(2, len(alias_mod.parse_aliases(values)['a'].specs))

    def test_resource_class_only(self) -> None:
        found = alias_mod.parse_aliases(alias(resource_class='CUSTOM_GPU'))
        self.assertEqual('CUSTOM_GPU', found['a'].specs[0].resource_class)

    def test_capability_type_pci_matches_pci_devices(self) -> None:
        found = alias_mod.parse_aliases(alias(capability_type='pci', **IDS))
        # nova keeps it in the request spec; here it is no constraint
        self.assertEqual(alias_mod.AliasSpec(0x15b3, 0x1018),
                         found['a'].specs[0])


class ExtraSpecTest(testtools.TestCase):

    def test_count_zero(self) -> None:
        self.assertIn("(%s and asked for no device; leave 'a:0' out)" % NOVA,
                      flavor('a:0'))

    def test_count_too_large(self) -> None:
        self.assertIn('(%s and then found no host with that many devices)'
                      % NOVA, flavor('a:1000000'))

    def test_count_in_unicode_digits(self) -> None:
        self.assertIn("(%s as 3; write 'a:3')" % NOVA, flavor('a:\u0663'))

    def test_leading_zeros_read_as_nova_reads_them(self) -> None:
        rs = request_mod.RequestSet.from_extra_specs(
            {request_mod.ALIAS_KEY: 'a:0000002'},
            alias_mod.parse_aliases(alias(**IDS)))
        self.assertEqual(2, rs.requests[0].count)

    def test_what_nova_api_refuses(self) -> None:
        for value, fix in (('a: 1', ". Write 'a:1'"),
                           ('a:1 ', ". Write 'a:1'"), ('a:+1', ''),
                           ('a:-1', ''), ('a:x', '')):
            message = flavor(value)
            self.assertIn(API + fix, message)
            self.assertNotIn(NOVA, message)

    def test_blanks_around_names_and_commas_as_nova_api(self) -> None:
        rs = request_mod.RequestSet.from_extra_specs(
            {request_mod.ALIAS_KEY: ' a :1 , a:2'},
            alias_mod.parse_aliases(alias(**IDS)))
        self.assertEqual([1, 2], [r.count for r in rs.requests])

    def test_empty_numa_policy(self) -> None:
        self.assertIn(API, flavor('a:1', ''))

    def test_headroom_key_is_ours(self) -> None:
        exc = self.assertRaises(
            exception.InvalidExtraSpec,
            request_mod.RequestSet.from_extra_specs,
            {request_mod.HEADROOM_KEY: 'a:0'},
            alias_mod.parse_aliases(alias(**IDS)))
        self.assertNotIn('nova', exc.message)


class DeviceSpecStricterTest(testtools.TestCase):
    """[pci] device_spec values nova reads and the project refuses."""

    def refused(self, spec: dict[str, Any]) -> str:
        from passthrough_plugin.pci import device_spec
        exc = self.assertRaises(exception.InvalidDeviceSpec,
                                device_spec.DeviceSpecList.from_config,
                                [json.dumps(spec)])
        return str(exc.message)

    def test_ids_nova_reads_with_int(self) -> None:
        for value in ('0x15b3', '15_b3', '+15b3', '\u0661\u0665b3'):
            self.assertIn('(%s as 15b3; write "15b3")' % NOVA,
                          self.refused({'vendor_id': value}))
        self.assertNotIn(NOVA, self.refused({'vendor_id': '115b3'}))

    def test_empty_and_blank_devname(self) -> None:
        self.assertIn('(%s and matched every device)' % NOVA,
                      self.refused({'devname': ''}))
        self.assertIn('(%s and matched no device)' % NOVA,
                      self.refused({'devname': '  '}))
        self.assertNotIn(NOVA, self.refused({'devname': 5}))
