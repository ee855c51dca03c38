"""API tests: the PCI inventory in Placement, the agent's or nova's.

``[passthrough] inventory = own``: the agent's providers, and they follow
the host. ``nova``: nova's providers are the only inventory, the agent
writes none, and a device change reaches the agent's report, not Placement.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from typing import Any

from tempest import config
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from passthrough_tempest_plugin.tests import base

CONF = config.CONF

# <host>:passthrough:<PCI address of the PF or type-PCI device>
PROVIDER_NAME = re.compile(
    r'^(?P<host>.+):passthrough:(?P<address>[0-9a-f]{4}:[0-9a-f]{2}:'
    r'[0-9a-f]{2}\.[0-7])$')
TYPE_TRAITS = {'CUSTOM_PASSTHROUGH_TYPE_PF', 'CUSTOM_PASSTHROUGH_TYPE_VF',
               'CUSTOM_PASSTHROUGH_TYPE_PCI'}
NUMA_TRAIT = re.compile(r'^CUSTOM_PASSTHROUGH_NUMA_\d+$')
# nova's: <host>_<PCI address of the PF or type-PCI device>
NOVA_PROVIDER_NAME = re.compile(
    r'^(?P<host>.+)_(?P<address>[0-9a-f]{4}:[0-9a-f]{2}:'
    r'[0-9a-f]{2}\.[0-7])$')
NOVA_PCI_TRAIT = 'COMPUTE_MANAGED_PCI_DEVICE'


def nova_inventory() -> bool:
    return bool(CONF.passthrough.inventory == 'nova')


def run_hook(test: Any, option: str, *args: str) -> str:
    """Run ``[passthrough] <option>`` with ``args``; its stdout."""
    argv = shlex.split(getattr(CONF.passthrough, option)) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=CONF.passthrough.device_change_timeout,
                          check=False)
    test.assertEqual(0, proc.returncode, '{} failed: {}'.format(
        ' '.join(argv), proc.stderr[-2000:]))
    return proc.stdout


def host_report(test: Any, host: str) -> dict[str, Any]:
    """The host's report as the report store holds it."""
    found: dict[str, Any] = json.loads(run_hook(test, 'report_command', host))
    return found


class AgentBaseTest(base.PassthroughBaseTest):
    """Tests that need the agent publishing the configured classes."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.passthrough.agent_enabled:
            raise cls.skipException('[passthrough] agent_enabled is False')
        if not CONF.passthrough.resource_classes:
            raise cls.skipException('[passthrough] resource_classes is empty')


class AgentProvidersTest(AgentBaseTest):
    """The inventory's providers: where they hang, what they hold and carry
    (the agent's with inventory = own; nova's, and none of the agent's,
    with inventory = nova)."""

    def _providers(self) -> list[dict[str, Any]]:
        ours = self.agent_providers()
        if nova_inventory():
            self.assertEqual([], [rp['name'] for rp in ours],
                             'inventory = nova: the agent must write no '
                             f'provider, yet these carry {base.DEVICE_TRAIT}')
            body = self.rp_client.list_resource_providers(
                required=NOVA_PCI_TRAIT)
            providers = list(body['resource_providers'])
            self.assertNotEmpty(providers, 'no provider carries '
                                f'{NOVA_PCI_TRAIT}: does nova report PCI in '
                                'Placement ([pci] report_in_placement)?')
            return providers
        self.assertNotEmpty(ours, 'no resource provider carries '
                            f'{base.DEVICE_TRAIT}: is passthrough-agent '
                            'publishing to Placement?')
        return ours

    @decorators.idempotent_id('2d8f3b1a-7c4e-4f0a-9b6d-5e1c2a3f4b80')
    def test_agent_providers_nested_under_their_compute_node(self) -> None:
        pattern = NOVA_PROVIDER_NAME if nova_inventory() else PROVIDER_NAME
        hosts = set()
        for rp in self._providers():
            match = pattern.match(rp['name'])
            self.assertIsNotNone(match, 'provider name {!r} is not '
                                 '{}'.format(rp['name'], pattern.pattern))
            assert match is not None
            root = self.rp_client.show_resource_provider(
                rp['root_provider_uuid'])
            self.assertEqual(rp['root_provider_uuid'],
                             rp['parent_provider_uuid'], rp['name'])
            self.assertEqual(match.group('host'), root['name'])
            hosts.add(root['name'])
        self.assertGreaterEqual(len(hosts), CONF.compute.min_compute_nodes,
                                f'PCI providers on {sorted(hosts)} only')

    @decorators.idempotent_id('9e4a6c2d-1b3f-4d5e-8a7c-0f2b3d4e5a61')
    def test_agent_providers_hold_the_resource_classes(self) -> None:
        seen: set[str] = set()
        wanted = set(CONF.passthrough.resource_classes)
        for rp in self._providers():
            inv = self.rp_client.list_resource_provider_inventories(
                rp['uuid'])['inventories']
            ours = wanted.intersection(inv)
            seen.update(ours)
            for rc in ours:
                self.assertGreaterEqual(inv[rc]['total'], 1, rp['name'])
                self.assertLessEqual(inv[rc]['reserved'], inv[rc]['total'])
        self.assertEqual(wanted, seen, 'resource classes no provider '
                         f'has: {sorted(wanted - seen)}')

    @decorators.idempotent_id('6b1c0d9e-3a2f-4e8d-b7c6-1a0f9e8d7c52')
    def test_agent_providers_carry_their_facts(self) -> None:
        for rp in self._providers():
            traits = set(self.rp_client.list_resource_provider_traits(
                rp['uuid'])['traits'])
            for trait in CONF.passthrough.traits:
                self.assertIn(trait, traits, rp['name'])
            if nova_inventory():
                # The facts are in the agent's report, not on nova's
                # providers: no trait of the agent's there.
                self.assertEqual(
                    [], sorted(t for t in traits
                               if t.startswith('CUSTOM_PASSTHROUGH_')),
                    rp['name'])
                continue
            self.assertEqual(1, len(traits & TYPE_TRAITS),
                             '{}: device type traits {}'.format(
                                 rp['name'], sorted(traits & TYPE_TRAITS)))
            self.assertTrue(any(NUMA_TRAIT.match(t) for t in traits),
                            f'{rp["name"]} has no NUMA node trait: '
                            f'{sorted(traits)}')


class AgentFollowsHostTest(AgentBaseTest):
    """A device leaving the host leaves the agent's inventory; coming back,
    returns. With inventory = nova the agent's report follows and Placement
    (nova's inventory) gets nothing from the agent."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.passthrough.device_change_command:
            raise cls.skipException(
                '[passthrough] device_change_command is not set')
        if nova_inventory() and not CONF.passthrough.report_command:
            raise cls.skipException(
                '[passthrough] inventory = nova needs report_command')

    def _change(self, action: str) -> None:
        argv = shlex.split(CONF.passthrough.device_change_command) + [action]
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=CONF.passthrough.device_change_timeout,
                              check=False)
        self.assertEqual(0, proc.returncode, '{} failed: {}'.format(
            ' '.join(argv), proc.stderr[-2000:]))

    def _wait_inventory(self, until: Any, what: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> bool:
            seen['now'] = self.device_inventory()
            return bool(until(seen['now']))

        if not test_utils.call_until_true(
                check, CONF.passthrough.device_change_timeout, 1):
            raise lib_exc.TimeoutException(
                'Placement did not show {} within {} s; agent providers '
                'now: {}'.format(what, CONF.passthrough.device_change_timeout,
                                 seen.get('now')))
        return dict(seen['now'])

    def _restore(self, before: dict[str, Any]) -> None:
        self._change('restore')
        self._wait_inventory(lambda now: now == before, 'the host restored')

    def _nova_totals(self) -> dict[str, dict[str, int]]:
        """nova's PCI provider name -> {class: total}."""
        found: dict[str, dict[str, int]] = {}
        body = self.rp_client.list_resource_providers(
            required=NOVA_PCI_TRAIT)
        for rp in body['resource_providers']:
            inv = self.rp_client.list_resource_provider_inventories(
                rp['uuid'])['inventories']
            found[rp['name']] = {rc: int(v['total'])
                                 for rc, v in inv.items()}
        return found

    def _reports(self, hosts: list[str]) -> dict[str, set[str]]:
        return {h: {d['address'] for d in host_report(self, h)['devices']}
                for h in hosts}

    def _wait_reports(self, hosts: list[str], until: Any, what: str
                      ) -> dict[str, set[str]]:
        seen: dict[str, Any] = {}

        def check() -> bool:
            seen['now'] = self._reports(hosts)
            return bool(until(seen['now']))

        if not test_utils.call_until_true(
                check, CONF.passthrough.device_change_timeout, 1):
            raise lib_exc.TimeoutException(
                'the agents\' reports did not show {} within {} s; now: '
                '{}'.format(what, CONF.passthrough.device_change_timeout,
                            seen.get('now')))
        return dict(seen['now'])

    def _nova_mode(self) -> None:
        placement = self._nova_totals()
        self.assertNotEmpty(placement, f'no provider carries {NOVA_PCI_TRAIT}')
        hosts = sorted({name.rsplit('_', 1)[0] for name in placement})
        before = self._reports(hosts)
        total = sum(len(v) for v in before.values())
        self._change('remove')
        self.addCleanup(self._wait_reports, hosts,
                        lambda now: now == before, 'the host restored')
        self.addCleanup(self._change, 'restore')
        after = self._wait_reports(
            hosts, lambda now: sum(len(v) for v in now.values()) < total,
            'fewer devices')
        for host, addresses in after.items():
            # Only removals: no device appears out of nowhere.
            self.assertLessEqual(addresses, before[host], host)
        # The agent published the change and wrote nothing to Placement.
        self.assertEqual([], self.agent_providers())
        self.assertEqual(placement, self._nova_totals())
        self._change('restore')
        self.assertEqual(before, self._wait_reports(
            hosts, lambda now: now == before, 'the host restored'))
        self.assertEqual([], self.agent_providers())
        self.assertEqual(placement, self._nova_totals())

    @decorators.idempotent_id('f3a9c1e7-5d2b-4a6c-8e0f-7b1d2c3e4f95')
    def test_providers_follow_device_changes(self) -> None:
        if nova_inventory():
            self._nova_mode()
            return
        before = self.device_inventory()
        self.assertNotEmpty(before)
        total = sum(sum(v.values()) for v in before.values())
        self._change('remove')
        # Cleanups run even when an assertion below fails.
        self.addCleanup(self._restore, before)
        after = self._wait_inventory(
            lambda now: sum(sum(v.values()) for v in now.values()) < total,
            'fewer devices')
        self.assertLess(sum(sum(v.values()) for v in after.values()), total)
        for name in after:
            # Only removals: no provider appears out of nowhere.
            self.assertIn(name, before)
        self._change('restore')
        restored = self._wait_inventory(lambda now: now == before,
                                        'the host restored')
        self.assertEqual(before, restored)
