"""Base class of the plugin's tempest tests: skip checks and clients."""

from __future__ import annotations

from typing import Any

from tempest import config
from tempest import test

CONF = config.CONF

# 1.14: in_tree and parent_provider_uuid; traits since 1.6.
PLACEMENT_MICROVERSION = '1.14'


class PassthroughBaseTest(test.BaseTestCase):
    """Admin access to Placement; skips unless the plugin is deployed."""

    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.service_available.passthrough:
            raise cls.skipException(
                '[service_available] passthrough is False')

    @classmethod
    def setup_clients(cls) -> None:
        super().setup_clients()
        cls.rp_client = cls.os_admin.resource_providers_client
        cls.placement_client = cls.os_admin.placement_client

    @classmethod
    def resource_setup(cls) -> None:
        super().resource_setup()
        cls.setup_api_microversion_fixture(
            placement_microversion=PLACEMENT_MICROVERSION)

    def pci_providers(self, resource_class: str) -> list[dict[str, Any]]:
        """Providers with an inventory of ``resource_class``."""
        body = self.rp_client.list_resource_providers(
            resources=f'{resource_class}:1')
        return list(body['resource_providers'])
