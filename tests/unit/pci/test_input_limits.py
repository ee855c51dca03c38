"""Input limits and silent-acceptance fixes of issue 12 (items 8 and 9)."""

from __future__ import annotations

import json

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import limits
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

ALIASES = alias_mod.parse_aliases([json.dumps(
    {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c'})])


class ExtraSpecTest(testtools.TestCase):

    def refused(self, specs: dict[str, object]) -> str:
        exc = self.assertRaises(exception.InvalidExtraSpec,
                                request_mod.RequestSet.from_extra_specs,
                                specs, ALIASES)
        self.assertLess(len(exc.message), 300, exc.message)
        return exc.message

    def test_unknown_pci_passthrough_key_is_an_error(self) -> None:
        message = self.refused({'pci_passthrough:alais': 'vf:99'})
        self.assertIn("pci_passthrough:alais='vf:99'", message)
        self.assertIn('keys are: pci_passthrough:alias', message)

    def test_long_values_refused_with_the_limit_and_an_excerpt(self) -> None:
        message = self.refused({'pci_passthrough:alias': 'vf:1,' * 5000})
        self.assertIn('at most 255 characters', message)
        self.assertIn('(25000 characters)', message)
        self.refused({'pci_passthrough:alias': 3})

    def test_other_namespaces_are_not_ours(self) -> None:
        got = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1', 'hw:cpu_policy': 'x' * 1000},
            ALIASES)
        self.assertEqual('1 x vf', got.describe())


class ResourceClassTest(testtools.TestCase):

    def test_names_that_normalise_to_nothing(self) -> None:
        for name in ('ГПУ', '!!!', '-'):
            exc = self.assertRaises(
                exception.InvalidAlias, alias_mod.parse_aliases,
                [json.dumps({'name': 'a', 'resource_class': name})])
            self.assertIn('would become CUSTOM__', exc.message)
            exc = self.assertRaises(
                exception.InvalidDeviceSpec,
                device_spec.DeviceSpecList.from_config,
                [json.dumps({'vendor_id': '8086', 'resource_class': name})])
            self.assertIn('has no letter or digit', exc.message)

    def test_collisions_name_both(self) -> None:
        exc = self.assertRaises(
            exception.InvalidDeviceSpec,
            device_spec.DeviceSpecList.from_config,
            [json.dumps([{'vendor_id': '8086', 'resource_class': 'ГПУ-1'},
                         {'vendor_id': '10de', 'resource_class': '!!!1'}])])
        self.assertIn("'ГПУ-1' ([pci] device_spec value 1 entry 1) and "
                      "'!!!1'", exc.message)
        self.assertIn('both become CUSTOM__1', exc.message)
        exc = self.assertRaises(
            exception.InvalidAlias, alias_mod.parse_aliases,
            [json.dumps({'name': 'a', 'resource_class': 'gpu-x'}),
             json.dumps({'name': 'b', 'resource_class': 'GPU X'})])
        self.assertIn("'gpu-x' ([pci] alias value 1) and 'GPU X'",
                      exc.message)
        # The same name twice (any case) is one class, not a collision.
        got = alias_mod.parse_aliases(
            [json.dumps({'name': 'a', 'resource_class': 'gpu'}),
             json.dumps({'name': 'b', 'resource_class': 'GPU'})])
        self.assertEqual(['a', 'b'], sorted(got))


class OptionSizeTest(testtools.TestCase):

    def test_a_200kb_device_spec_is_not_echoed(self) -> None:
        value = '{"vendor_id": "%s"}' % ('a' * 200000)
        exc = self.assertRaises(exception.InvalidDeviceSpec,
                                device_spec.DeviceSpecList.from_config,
                                [value])
        self.assertLess(len(exc.message), 300, exc.message)
        self.assertIn('at most %d' % limits.MAX_OPTION_BYTES, exc.message)
        value = '{"vendor_id": "%s"}' % ('a' * 5000)
        exc = self.assertRaises(exception.InvalidDeviceSpec,
                                device_spec.DeviceSpecList.from_config,
                                [value])
        self.assertLess(len(exc.message), 300, exc.message)
        self.assertIn("'vendor_id' is 5000 characters long; at most 255",
                      exc.message)

    def test_bad_json_quotes_an_excerpt(self) -> None:
        exc = self.assertRaises(exception.InvalidAlias,
                                alias_mod.parse_aliases,
                                ['{"name": "%s"' % ('x' * 30000)])
        self.assertLess(len(exc.message), 400, exc.message)
        self.assertIn('not valid JSON', exc.message)


class ReportLimitTest(testtools.TestCase):

    def report(self, devices: int) -> dict[str, object]:
        return report_mod.HostReport(host='h', devices=[
            report_mod.Device('0000:%02x:%02x.%d' % (
                n // 256, n // 8 % 32, n % 8), '8086', '1572', 'type-PCI')
            for n in range(devices)]).to_dict()

    def test_device_count_limit(self) -> None:
        report_mod.validate(self.report(10))
        exc = self.assertRaises(exception.InvalidHostReport,
                                report_mod.validate,
                                self.report(limits.MAX_DEVICES + 1))
        self.assertIn('items; at most %d' % limits.MAX_DEVICES, exc.message)

    def test_report_bytes_limit(self) -> None:
        exc = self.assertRaises(
            exception.InvalidHostReport, report_mod.HostReport.from_json,
            ' ' * (limits.MAX_REPORT_BYTES + 1))
        self.assertIn('at most %d' % limits.MAX_REPORT_BYTES, exc.message)

    def test_long_strings_and_owners(self) -> None:
        data = self.report(1)
        data['devices'][0]['driver'] = 'x' * 1000
        exc = self.assertRaises(exception.InvalidHostReport,
                                report_mod.validate, data)
        self.assertIn('$.devices[0].driver', exc.message)
        self.assertLess(len(exc.message), 300)
        data = self.report(1)
        data['devices'][0].update(status='claimed', owner='vm\n1',
                                  source='flavor')
        exc = self.assertRaises(exception.InvalidHostReport,
                                report_mod.validate, data)
        self.assertIn('$.devices[0].owner', exc.message)
