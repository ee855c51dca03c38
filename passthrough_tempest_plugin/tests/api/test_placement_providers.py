"""API tests: PCI devices are visible in Placement as nested providers."""

from __future__ import annotations

from tempest import config
from tempest.lib import decorators

from passthrough_tempest_plugin.tests import base

CONF = config.CONF


class PciProvidersTest(base.PassthroughBaseTest):
    """The expected PCI resource classes have providers, nested and traited.

    Holds for nova's own ``[pci] report_in_placement`` and for the plugin's
    placement report store alike: both put each device (or PF with its VFs)
    on a provider under the compute node's provider.
    """

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.passthrough.resource_classes:
            raise cls.skipException('[passthrough] resource_classes is empty')

    @decorators.idempotent_id('5a0c4f0e-3f4b-4b1e-9a55-0a6f2f7e9c11')
    def test_resource_classes_have_providers(self) -> None:
        for rc in CONF.passthrough.resource_classes:
            providers = self.pci_providers(rc)
            self.assertNotEmpty(
                providers, f'no resource provider has an inventory of {rc}')
            for rp in providers:
                inv = self.rp_client.list_resource_provider_inventories(
                    rp['uuid'])['inventories']
                self.assertIn(rc, inv)
                self.assertGreaterEqual(inv[rc]['total'], 1)
                self.assertLessEqual(inv[rc]['reserved'], inv[rc]['total'])

    @decorators.idempotent_id('b7e2d0a4-8c1f-4f57-a6c9-2d3e4f5a6b72')
    def test_providers_nested_under_compute_node(self) -> None:
        for rc in CONF.passthrough.resource_classes:
            for rp in self.pci_providers(rc):
                self.assertIsNotNone(
                    rp['parent_provider_uuid'],
                    '{} provider {} is not nested'.format(rc, rp['name']))
                root = self.rp_client.show_resource_provider(
                    rp['root_provider_uuid'])
                root_inv = self.rp_client.list_resource_provider_inventories(
                    root['uuid'])['inventories']
                # The root is a compute node: it has the host's CPUs.
                self.assertIn('VCPU', root_inv)

    @decorators.idempotent_id('0d9b6c3e-21a7-4c55-8f0e-6e4b7a8c9d03')
    def test_providers_carry_traits(self) -> None:
        if not CONF.passthrough.traits:
            raise self.skipException('[passthrough] traits is empty')
        for rc in CONF.passthrough.resource_classes:
            for rp in self.pci_providers(rc):
                traits = self.rp_client.list_resource_provider_traits(
                    rp['uuid'])['traits']
                for trait in CONF.passthrough.traits:
                    self.assertIn(trait, traits, rp['name'])
