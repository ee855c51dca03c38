"""Scenario: which provider each server's devices came from, and the map.

Each server's PCI devices are read from two sides: Placement (the
providers its allocation holds, nested under its own compute node) and the
host (``passthrough-agent map`` of the server: its host PCI addresses).
Each mapped device must belong to a provider of the allocation (a VF to
the provider of its PF, by the agent's report), as many as the allocation
holds there.
"""

from __future__ import annotations

import collections
import json
import re

from tempest.common import waiters
from tempest import config
from tempest.lib import decorators

from passthrough_tempest_plugin.tests.api import test_agent_providers as agent
from passthrough_tempest_plugin.tests import base

CONF = config.CONF

# nova's <host>_<address> or the agent's <host>:passthrough:<address>.
ADDRESS = re.compile(r'(?:_|:passthrough:)(?P<address>[0-9a-f]{4}:'
                     r'[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$')
# Boots per check: Placement's candidate order must not decide them.
REPEAT = 3


class DeviceProvidersTest(base.ServerTest):
    """Servers' devices: from which provider, on which host, mapped how."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        for option in ('flavor_ref', 'map_command', 'report_command'):
            if not getattr(CONF.passthrough, option):
                raise cls.skipException(f'[passthrough] {option} is not set')
        if not CONF.passthrough.resource_classes:
            raise cls.skipException('[passthrough] resource_classes is empty')

    def _boot(self, flavor: str) -> str:
        return str(self.boot(flavor)['id'])

    def _delete(self, server: str) -> None:
        self.servers_client.delete_server(server)
        waiters.wait_for_server_termination(self.servers_client, server)

    def _host(self, server: str) -> str:
        return str(self.admin_servers_client.show_server(server)['server'][
            'OS-EXT-SRV-ATTR:hypervisor_hostname'])

    def _providers(self, server: str) -> dict[str, int]:
        """PCI address of each provider holding the server's devices ->
        how many devices it holds; each checked to hang under the
        server's own compute node."""
        node = self._host(server)
        allocations = self.placement_client.list_allocations(
            server)['allocations']
        wanted = set(CONF.passthrough.resource_classes)
        held: dict[str, int] = {}
        for rp_uuid, alloc in allocations.items():
            count = sum(n for rc, n in alloc['resources'].items()
                        if rc in wanted)
            if not count:
                continue
            rp = self.rp_client.show_resource_provider(rp_uuid)
            root = self.rp_client.show_resource_provider(
                rp['root_provider_uuid'])
            self.assertEqual(node, root['name'],
                             f'{rp["name"]} is not under {node}')
            match = ADDRESS.search(rp['name'])
            self.assertIsNotNone(match, f'{rp["name"]} names no PCI address')
            assert match is not None
            held[match.group('address')] = count
        self.assertNotEmpty(held, f'server {server} holds no '
                            f'{sorted(wanted)} in Placement')
        return held

    def _mapped(self, server: str) -> list[str]:
        """Host PCI addresses ``passthrough-agent map`` names for it."""
        rows = json.loads(agent.run_hook(self, 'map_command',
                                         self._host(server), server))
        return sorted(r['host_address'] for r in rows
                      if r['instance'] == server)

    def _assert_map_matches_placement(self, server: str) -> dict[str, int]:
        """The devices the host shows are those of the providers
        Placement says the server holds; returns the latter."""
        held = self._providers(server)
        mapped = self._mapped(server)
        devices = {d['address']: d for d in agent.host_report(
            self, self._host(server))['devices']}
        provider_of = collections.Counter(
            devices[a].get('parent_address') or a
            if a in devices else 'not in the host report: ' + a
            for a in mapped)
        self.assertEqual(collections.Counter(held), provider_of,
                         f'server {server}: Placement holds {held}, the map '
                         f'names {mapped}')
        return held

    def _active(self, *servers: str) -> None:
        for server in servers:
            waiters.wait_for_server_status(self.servers_client, server,
                                           'ACTIVE')

    @decorators.idempotent_id('0b6f4c1e-2d7a-4e93-a8c5-3f1e9d2b7a40')
    def test_vf_comes_from_a_provider_the_map_names(self) -> None:
        server = self._boot(CONF.passthrough.flavor_ref)
        self._active(server)
        held = self._assert_map_matches_placement(server)
        self.assertEqual(1, sum(held.values()), held)

    @decorators.idempotent_id('5c2e8a7d-9f14-4b36-b0d2-6e4a1c3f8b71')
    def test_whole_pfs_come_from_each_servers_own_host(self) -> None:
        if not CONF.passthrough.flavor_ref_pf:
            raise self.skipException('[passthrough] flavor_ref_pf not set')
        if CONF.compute.min_compute_nodes < 2:
            raise self.skipException('needs [compute] min_compute_nodes >= 2')
        # One whole PF per host: two servers must take two hosts' PFs.
        servers = [self._boot(CONF.passthrough.flavor_ref_pf)
                   for _ in range(2)]
        self._active(*servers)
        hosts = [self._host(s) for s in servers]
        self.assertEqual(2, len(set(hosts)), hosts)
        for server in servers:
            held = self._assert_map_matches_placement(server)
            self.assertEqual(1, sum(held.values()), held)

    @decorators.idempotent_id('e7a3d5b9-1c4f-4a82-9e6d-2b8c0f7a5d13')
    def test_anti_affinity_takes_vfs_of_distinct_pf_providers(self) -> None:
        if not CONF.passthrough.flavor_ref_anti_affinity:
            raise self.skipException(
                '[passthrough] flavor_ref_anti_affinity not set')
        for _ in range(REPEAT):
            server = self._boot(CONF.passthrough.flavor_ref_anti_affinity)
            self._active(server)
            held = self._assert_map_matches_placement(server)
            # Two VFs, one on each of two PF providers.
            self.assertEqual({1}, set(held.values()), held)
            self.assertEqual(2, len(held), held)
            self._delete(server)
