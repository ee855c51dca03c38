"""One Placement call per claim and per release, counted on a real Placement.

The store keeps the candidates it was answered and claims from them; a
claim another writer made stale costs a refusal, a fresh query and the
next host, never an overcommit.
"""

from __future__ import annotations

import random

from tests.functional.placement import base

VF1 = {'pci_passthrough:alias': 'vf:1'}
# The hosts random.Random(1) picks among the best 3.
SUBSET_SEED_1 = ['cn1', 'cn3', 'cn1']


class ClaimCallsTest(base.PlacementTestCase):

    def setUp(self) -> None:
        super().setUp()
        for host in ('cn1', 'cn2', 'cn3'):
            self.store.publish(base.scarce_host(host, pfs=1, vfs=2))
        self.engine_ = self.engine()
        self.engine_.refresh()
        self.request = self.engine_.request(VF1)

    def calls(self) -> dict[str, int]:
        return dict(self.client.calls)

    def spent(self, before: dict[str, int]) -> dict[str, int]:
        return {m: n - before.get(m, 0) for m, n in self.client.calls.items()
                if n != before.get(m, 0)}

    def claim(self) -> tuple[str, dict[str, int]]:
        before = self.calls()
        found = self.engine_.pools.select_and_claim(self.request,
                                                    base.new_consumer())
        self.assertIsNotNone(found)
        assert found is not None
        return found[0], self.spent(before)

    def vf_used(self, host: str) -> int:
        rp = self.provider(host, '0000:10:00.0')
        return self.client.get_provider_usages(rp.uuid).get(base.VF_RC, 0)

    def test_one_put_per_claim_one_delete_per_release(self) -> None:
        first, spent = self.claim()
        self.assertEqual({'GET': 1, 'PUT': 1}, spent)  # nothing kept yet
        consumer = base.new_consumer()
        before = self.calls()
        host, _lines = self.engine_.pools.select_and_claim(self.request,
                                                           consumer)
        self.assertEqual({'PUT': 1}, self.spent(before))
        self.assertEqual(first, host)  # pack: the PF already serving
        before = self.calls()
        self.engine_.release(host, consumer)
        self.assertEqual({'DELETE': 1}, self.spent(before))
        self.assertEqual(1, self.vf_used(host))

    def test_room_taken_behind_its_back_costs_a_retry_not_an_overcommit(
            self) -> None:
        first, _spent = self.claim()
        # Another scheduler takes the last VF of that host.
        rp = self.provider(first, '0000:10:00.0')
        self.client.put_allocations(
            base.new_consumer(), {rp.uuid: {base.VF_RC: 1}},
            consumer_generation=None, project_id='p', user_id='u')
        before = self.calls()
        host, _lines = self.engine_.pools.select_and_claim(
            self.request, base.new_consumer())[:2]  # type: ignore[index]
        # Refused on the kept view's choice, asked afresh, next host.
        self.assertEqual({'PUT': 2, 'GET': 1}, self.spent(before))
        self.assertNotEqual(first, host)
        self.assertEqual(2, self.vf_used(first))  # of 2: not 3
        self.assertEqual(1, self.vf_used(host))

    def test_released_behind_its_back_is_seen_before_refusing(self) -> None:
        consumers = []
        for _n in range(6):
            consumer = base.new_consumer()
            self.assertIsNotNone(self.engine_.pools.select_and_claim(
                self.request, consumer))
            consumers.append(consumer)
        # All 6 VFs taken; someone else releases one.
        self.client.delete_allocations(consumers[0])
        before = self.calls()
        self.assertIsNotNone(self.engine_.pools.select_and_claim(
            self.request, base.new_consumer()))
        self.assertEqual({'GET': 1, 'PUT': 1}, self.spent(before))

    def test_best_host_first_by_default(self) -> None:
        self.assertEqual(['cn1', 'cn1', 'cn2'],
                         [self.claim()[0] for _n in range(3)])

    def test_host_subset_size_spreads_the_first_choice(self) -> None:
        self.conf.set_override('host_subset_size', 3,
                               group='placement_store')
        self.engine_.pools._random = random.Random(1)  # noqa: SLF001
        got = [self.claim()[0] for _n in range(3)]
        # Pack alone would give cn1, cn1, cn2 (as above).
        self.assertEqual(SUBSET_SEED_1, got)
