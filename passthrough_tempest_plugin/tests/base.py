"""Base class of the plugin's tempest tests: skip checks and clients."""

from __future__ import annotations

from typing import Any

from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import data_utils
from tempest.lib.common.utils import test_utils
from tempest.lib import exceptions as lib_exc
from tempest import test

CONF = config.CONF

# 1.14: in_tree and parent_provider_uuid; 1.18: ?required=<traits>.
PLACEMENT_MICROVERSION = '1.18'
# passthrough-agent marks every provider it keeps with this trait.
DEVICE_TRAIT = 'CUSTOM_PASSTHROUGH_DEVICE'
# 2.37: servers may boot with networks='none' (no Neutron port needed).
COMPUTE_MICROVERSION = '2.37'


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

    def agent_providers(self) -> list[dict[str, Any]]:
        """The providers passthrough-agent keeps, on every host; none
        while its trait does not exist (Placement answers 400 "No such
        trait" until an agent in inventory = own mode created it)."""
        try:
            body = self.rp_client.list_resource_providers(
                required=DEVICE_TRAIT)
        except lib_exc.BadRequest as exc:
            if 'No such trait' not in str(exc):
                raise
            return []
        return list(body['resource_providers'])

    def device_inventory(self) -> dict[str, dict[str, int]]:
        """Agent provider name -> {resource class: total}.

        Only the classes of ``[passthrough] resource_classes`` count;
        totals, not what is free, so servers booting meanwhile do not
        change it.
        """
        wanted = set(CONF.passthrough.resource_classes)
        found: dict[str, dict[str, int]] = {}
        for rp in self.agent_providers():
            inv = self.rp_client.list_resource_provider_inventories(
                rp['uuid'])['inventories']
            totals = {rc: int(v['total']) for rc, v in inv.items()
                      if rc in wanted}
            if totals:
                found[rp['name']] = totals
        return found


class ServerTest(PassthroughBaseTest):
    """Boots servers (deleted at clean-up) of the configured PCI flavors."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.service_available.nova:
            raise cls.skipException('nova is not available')

    @classmethod
    def setup_clients(cls) -> None:
        super().setup_clients()
        cls.servers_client = cls.os_primary.servers_client
        cls.admin_servers_client = cls.os_admin.servers_client

    @classmethod
    def resource_setup(cls) -> None:
        super().resource_setup()
        cls.setup_api_microversion_fixture(
            compute_microversion=COMPUTE_MICROVERSION,
            placement_microversion=PLACEMENT_MICROVERSION)

    def boot(self, flavor: str) -> dict[str, Any]:
        """A server of ``flavor`` without networks, as nova answered its
        create (not waited for)."""
        server = self.servers_client.create_server(
            name=data_utils.rand_name(self.__class__.__name__),
            imageRef=CONF.compute.image_ref, flavorRef=flavor,
            networks='none')['server']
        self.addCleanup(waiters.wait_for_server_termination,
                        self.servers_client, server['id'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.servers_client.delete_server, server['id'])
        return dict(server)
