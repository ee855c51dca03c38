"""Reason sentences, request descriptions and placement names."""

from __future__ import annotations

import testtools

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import names
from passthrough_plugin.pci import request as request_mod
from tests.unit.pci import fakes
from tests.unit.pci.fakes import case
from tests.unit.pci.fakes import dev


class DescribeRequestTest(testtools.TestCase):

    TABLE = [
        ('ids', fakes.gpu_request(2), '2 x gpu (10de:1eb8)'),
        ('type', fakes.vf_request(), '1 x vf (8086:154c type-VF)'),
        ('resource class only', fakes.request(rc='CUSTOM_GPU', name='g'),
         '1 x g (CUSTOM_GPU)'),
        ('ids and resource class',
         fakes.request(vendor='10de', product='1eb8', rc='CUSTOM_GPU',
                       name='g'),
         '1 x g (10de:1eb8 CUSTOM_GPU)'),
        ('alternatives',
         request_mod.DeviceRequest(
             'nic', 1, (alias_mod.AliasSpec(0x8086, 0x154c),
                        alias_mod.AliasSpec(0x15b3, 0x1018))),
         '1 x nic (8086:154c or 15b3:1018)'),
        ('anything', request_mod.DeviceRequest(
            'any', 3, (alias_mod.AliasSpec(),)), '3 x any (*:*)'),
    ]

    def test_table(self) -> None:
        for name, req, expected in self.TABLE:
            with case(name):
                self.assertEqual(expected, explain.describe_request(req))

    def test_every_state_has_a_text(self) -> None:
        for state in (explain.IN_USE, explain.UNAVAILABLE,
                      explain.IOMMU_DISABLED, explain.PF_VF,
                      explain.IOMMU_GROUP, explain.IOMMU_GROUP_MATE,
                      explain.TAKEN, ''):
            with case(state):
                self.assertTrue(explain.STATE_TEXT[state])


class GroupBlockersTest(testtools.TestCase):

    def test_foreign_members_are_named(self) -> None:
        hp = fakes.host(dev('0000:3b:00.0', group=5),
                        foreign={5: ('0000:3b:00.1', '0000:3b:00.2')})
        fit = hp.fit(fakes.requests(fakes.gpu_request()))
        self.assertEqual(explain.GROUP, fit.reason)
        self.assertIn('the IOMMU group(s) also hold 0000:3b:00.1, '
                      '0000:3b:00.2', fit.detail)

    def test_long_lists_are_cut(self) -> None:
        foreign = tuple('0000:3b:00.%d' % f for f in range(1, 7))
        hp = fakes.host(dev('0000:3b:00.0', group=5), foreign={5: foreign})
        fit = hp.fit(fakes.requests(fakes.gpu_request()))
        self.assertIn('0000:3b:00.1, 0000:3b:00.2, 0000:3b:00.3 and 3 more',
                      fit.detail)

    def test_some_free_devices_is_insufficient(self) -> None:
        hp = fakes.host(dev('0000:3b:00.0', group=5),
                        dev('0000:3c:00.0', group=6),
                        foreign={5: ('0000:3b:00.1',)})
        fit = hp.fit(fakes.requests(fakes.gpu_request(2)))
        self.assertEqual(explain.INSUFFICIENT, fit.reason)
        self.assertIn('1 free', fit.detail)
        self.assertIn('1 in an IOMMU group with devices that cannot be '
                      'assigned', fit.detail)


class NamesTest(testtools.TestCase):

    RESOURCE_CLASSES = [
        (None, 'CUSTOM_PCI_10DE_1EB8'),
        ('', 'CUSTOM_PCI_10DE_1EB8'),
        ('PGPU', 'PGPU'),
        ('pgpu', 'PGPU'),
        ('VGPU', 'VGPU'),
        ('CUSTOM_NVME', 'CUSTOM_NVME'),
        ('gpu-vf', 'CUSTOM_GPU_VF'),
        ('my  awesome.gpu', 'CUSTOM_MY_AWESOME_GPU'),
    ]

    def test_resource_class(self) -> None:
        for requested, expected in self.RESOURCE_CLASSES:
            with case(repr(requested)):
                self.assertEqual(expected, names.resource_class(
                    requested, '10de', '1eb8'))

    TRAITS = [
        (None, set()),
        ('', set()),
        ('HW_GPU_API_VULKAN', {'HW_GPU_API_VULKAN'}),
        ('blue, big', {'CUSTOM_BLUE', 'CUSTOM_BIG'}),
        ('CUSTOM_X,custom_y', {'CUSTOM_X', 'CUSTOM_Y'}),
        (' , ,a', {'CUSTOM_A'}),
        ('my-awesome-gpu', {'CUSTOM_MY_AWESOME_GPU'}),
    ]

    def test_traits(self) -> None:
        for text, expected in self.TRAITS:
            with case(repr(text)):
                self.assertEqual(frozenset(expected), names.traits(text))

    def test_constants(self) -> None:
        self.assertEqual('COMPUTE_MANAGED_PCI_DEVICE',
                         names.MANAGED_PCI_DEVICE)
        self.assertEqual('HW_PCI_LIVE_MIGRATABLE', names.LIVE_MIGRATABLE)
