"""Scenario: a PCI flavor boots, holds its devices in Placement, frees them."""

from __future__ import annotations

import re

from tempest.common import waiters
from tempest import config
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators

from passthrough_tempest_plugin.tests import base

CONF = config.CONF

REQ_ID = re.compile(r'req-[0-9a-f-]{36}')
NOVA_PCI_TRAIT = 'COMPUTE_MANAGED_PCI_DEVICE'


class PciServerTest(base.ServerTest):
    """Boot servers whose flavor asks PCI devices through an alias."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.passthrough.flavor_ref:
            raise cls.skipException('[passthrough] flavor_ref is not set')

    def _pci_allocations(self, consumer: str) -> dict[str, int]:
        return {rc: amount for (_, rc), amount in
                self._pci_holdings(consumer).items()}

    def _pci_holdings(self, consumer: str) -> dict[tuple[str, str], int]:
        """(provider uuid, class) -> amount the consumer holds of the
        ``[passthrough] resource_classes``."""
        allocations = self.placement_client.list_allocations(
            consumer)['allocations']
        wanted = set(CONF.passthrough.resource_classes)
        return {(rp, rc): amount for rp, alloc in allocations.items()
                for rc, amount in alloc['resources'].items()
                if rc in wanted}

    def _assert_plugin_reason(self, server_id: str) -> list[str]:
        """The plugin's filter logged why it refused the server's host."""
        if not (CONF.passthrough.plugin_scheduler_enabled
                and CONF.passthrough.scheduler_log):
            return []
        reasons: list[str] = []

        def logged() -> bool:
            reasons[:] = plugin_rejections(CONF.passthrough.scheduler_log,
                                           server_id)
            return bool(reasons)

        # The scheduler's log may trail the server's ERROR by a moment.
        test_utils.call_until_true(logged, 10, 1)
        self.assertNotEmpty(reasons, 'no passthrough filter rejection for '
                            f'{server_id} in {CONF.passthrough.scheduler_log}')
        return reasons

    @decorators.idempotent_id('3f1d7a52-6a0b-4a8e-9d67-1c2b3e4f5a60')
    def test_pci_flavor_boots_and_releases_devices(self) -> None:
        server = self.boot(CONF.passthrough.flavor_ref)
        waiters.wait_for_server_status(self.servers_client, server['id'],
                                       'ACTIVE')
        held = self._pci_holdings(server['id'])
        if CONF.passthrough.resource_classes:
            self.assertNotEmpty(
                held, 'server {} holds no {} in Placement'.format(
                    server['id'], CONF.passthrough.resource_classes))
        node = self.admin_servers_client.show_server(server['id'])[
            'server']['OS-EXT-SRV-ATTR:hypervisor_hostname']
        for rp_uuid, rc in held:
            rp = self.rp_client.show_resource_provider(rp_uuid)
            # A device's provider, nested under the server's compute node.
            self.assertIsNotNone(rp['parent_provider_uuid'], rp['name'])
            root = self.rp_client.show_resource_provider(
                rp['root_provider_uuid'])
            self.assertEqual(node, root['name'], rp['name'])
            traits = self.rp_client.list_resource_provider_traits(
                rp_uuid)['traits']
            if CONF.passthrough.inventory == 'nova':
                # nova's provider: the agent writes none of its own.
                self.assertIn(NOVA_PCI_TRAIT, traits, rp['name'])
                self.assertNotIn(base.DEVICE_TRAIT, traits, rp['name'])
            elif CONF.passthrough.agent_enabled:
                self.assertIn(base.DEVICE_TRAIT, traits, rp['name'])
            usages = self.rp_client.list_resource_provider_usages(
                rp_uuid)['usages']
            self.assertGreaterEqual(usages[rc], held[(rp_uuid, rc)])
        self.servers_client.delete_server(server['id'])
        waiters.wait_for_server_termination(self.servers_client,
                                            server['id'])
        self.assertEqual({}, self._pci_allocations(server['id']))

    @decorators.idempotent_id('8c4e2b91-0d3f-4e6a-b5c7-9a8b7c6d5e41')
    def test_over_asking_flavor_is_no_valid_host(self) -> None:
        if not CONF.passthrough.flavor_ref_over:
            raise self.skipException('[passthrough] flavor_ref_over not set')
        server = self.boot(CONF.passthrough.flavor_ref_over)
        waiters.wait_for_server_status(self.servers_client, server['id'],
                                       'ERROR', raise_on_error=False)
        shown = self.servers_client.show_server(server['id'])['server']
        self.assertIn('No valid host', shown.get('fault', {}).get(
            'message', ''))
        self.assertEqual({}, self._pci_allocations(server['id']))
        if CONF.passthrough.inventory != 'nova':
            # With nova's PCI in Placement, Placement refuses first: no
            # filter sees a host, so there is no plugin reason to find.
            self._assert_plugin_reason(server['id'])

    @decorators.idempotent_id('c5a7e3d1-4b2f-4c8e-9f6a-7d1e2b3c4a95')
    def test_plugin_rejection_is_logged(self) -> None:
        """Placement fits it, the plugin's filter refuses it and says why."""
        if not CONF.passthrough.plugin_scheduler_enabled:
            raise self.skipException(
                '[passthrough] plugin_scheduler_enabled is False')
        if not (CONF.passthrough.flavor_ref_plugin_reject
                and CONF.passthrough.scheduler_log):
            raise self.skipException(
                '[passthrough] flavor_ref_plugin_reject or scheduler_log '
                'is not set')
        server = self.boot(CONF.passthrough.flavor_ref_plugin_reject)
        waiters.wait_for_server_status(self.servers_client, server['id'],
                                       'ERROR', raise_on_error=False)
        shown = self.servers_client.show_server(server['id'])['server']
        self.assertIn('No valid host', shown.get('fault', {}).get(
            'message', ''))
        self._assert_plugin_reason(server['id'])

def plugin_rejections(log_path: str, instance: str) -> list[str]:
    """The plugin filter's log lines of the request that scheduled
    ``instance``: nova logs the instance id, the filter the same req id."""
    with open(log_path, errors='replace') as fh:
        lines = fh.readlines()
    req_ids = {m.group(0) for line in lines if instance in line
               for m in [REQ_ID.search(line)] if m}
    return [line.strip() for line in lines
            if 'passthrough_plugin.scheduler' in line and 'rejected' in line
            and any(req in line for req in req_ids)]
