"""API tests: passthrough-agent's providers in Placement follow the host."""

from __future__ import annotations

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
    """The agent's providers: where they hang, what they hold and carry."""

    def _providers(self) -> list[dict[str, Any]]:
        providers = self.agent_providers()
        self.assertNotEmpty(providers, 'no resource provider carries '
                            f'{base.DEVICE_TRAIT}: is passthrough-agent '
                            'publishing to Placement?')
        return providers

    @decorators.idempotent_id('2d8f3b1a-7c4e-4f0a-9b6d-5e1c2a3f4b80')
    def test_agent_providers_nested_under_their_compute_node(self) -> None:
        for rp in self._providers():
            match = PROVIDER_NAME.match(rp['name'])
            self.assertIsNotNone(match, 'agent provider name {!r} is not '
                                 '<host>:passthrough:<address>'.format(
                                     rp['name']))
            assert match is not None
            root = self.rp_client.show_resource_provider(
                rp['root_provider_uuid'])
            self.assertEqual(rp['root_provider_uuid'],
                             rp['parent_provider_uuid'], rp['name'])
            self.assertEqual(match.group('host'), root['name'])

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
        self.assertEqual(wanted, seen, 'resource classes no agent provider '
                         f'has: {sorted(wanted - seen)}')

    @decorators.idempotent_id('6b1c0d9e-3a2f-4e8d-b7c6-1a0f9e8d7c52')
    def test_agent_providers_carry_their_facts(self) -> None:
        for rp in self._providers():
            traits = set(self.rp_client.list_resource_provider_traits(
                rp['uuid'])['traits'])
            self.assertEqual(1, len(traits & TYPE_TRAITS),
                             '{}: device type traits {}'.format(
                                 rp['name'], sorted(traits & TYPE_TRAITS)))
            self.assertTrue(any(NUMA_TRAIT.match(t) for t in traits),
                            f'{rp["name"]} has no NUMA node trait: '
                            f'{sorted(traits)}')
            for trait in CONF.passthrough.traits:
                self.assertIn(trait, traits, rp['name'])


class AgentFollowsHostTest(AgentBaseTest):
    """A device leaving the host leaves Placement; coming back, returns."""

    @classmethod
    def skip_checks(cls) -> None:
        super().skip_checks()
        if not CONF.passthrough.device_change_command:
            raise cls.skipException(
                '[passthrough] device_change_command is not set')

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

    @decorators.idempotent_id('f3a9c1e7-5d2b-4a6c-8e0f-7b1d2c3e4f95')
    def test_providers_follow_device_changes(self) -> None:
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
