"""The kept allocation-candidates view: own writes, refusals, age, moves."""

from __future__ import annotations

import testtools

from passthrough_plugin.store.placement import view as view_mod

RC = 'CUSTOM_PCI_8086_154C'
KEY_A = (('resources_R0N0', RC + ':1'),)
KEY_B = (('resources_R0N0', RC + ':1'), ('resources_R0N1', RC + ':1'))


def summaries(**used: int) -> dict[str, dict[str, object]]:
    return {uuid: {'resources': {RC: {'capacity': 4, 'used': n}},
                   'traits': []} for uuid, n in used.items()}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CandidatesViewTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.view = view_mod.CandidatesView(60.0, clock=self.clock)

    def used(self, key: view_mod.Key, uuid: str) -> int:
        got = self.view.get(key)
        assert got is not None
        return int(got[uuid]['resources'][RC]['used'])

    def test_nothing_kept_before_an_answer(self) -> None:
        self.assertIsNone(self.view.get(KEY_A))

    def test_own_writes_apply_to_every_query(self) -> None:
        self.view.put(KEY_A, summaries(p1=1, p2=0))
        self.view.put(KEY_B, summaries(p1=1))
        self.view.wrote({'p1': {RC: 2}}, 1)
        self.assertEqual(3, self.used(KEY_A, 'p1'))
        self.assertEqual(3, self.used(KEY_B, 'p1'))
        self.view.wrote({'p1': {RC: 1}}, -1)
        self.assertEqual(2, self.used(KEY_A, 'p1'))
        self.assertEqual(0, self.used(KEY_A, 'p2'))

    def test_a_fresh_answer_refreshes_what_other_queries_see(self) -> None:
        self.view.put(KEY_A, summaries(p1=0, p2=0))
        self.view.put(KEY_B, summaries(p1=3, p2=4))
        self.assertEqual(3, self.used(KEY_A, 'p1'))

    def test_refused_providers_are_stale_until_answered_again(self) -> None:
        self.view.put(KEY_A, summaries(p1=0, p2=0))
        self.view.put(KEY_B, summaries(p2=0))
        self.view.refused(['p1'])
        self.assertIsNone(self.view.get(KEY_A))
        self.assertIsNotNone(self.view.get(KEY_B))  # p1 is not in it
        self.view.put(KEY_A, summaries(p1=4, p2=0))
        self.assertEqual(4, self.used(KEY_A, 'p1'))

    def test_too_old_answers_are_dropped(self) -> None:
        self.view.put(KEY_A, summaries(p1=0))
        self.clock.now += 60.5
        self.assertIsNone(self.view.get(KEY_A))

    def test_max_age_zero_keeps_nothing(self) -> None:
        view = view_mod.CandidatesView(0.0, clock=self.clock)
        view.put(KEY_A, summaries(p1=0))
        self.assertIsNone(view.get(KEY_A))

    def test_generation_moved_by_someone_else_drops_all(self) -> None:
        self.assertFalse(self.view.listed({'p1': 5, 'p2': 7}))
        self.view.put(KEY_A, summaries(p1=0, p2=0))
        self.view.wrote({'p1': {RC: 1}}, 1)
        # Our own write moved p1 by one: nothing else wrote.
        self.assertFalse(self.view.listed({'p1': 6, 'p2': 7}))
        self.assertIsNotNone(self.view.get(KEY_A))
        self.assertTrue(self.view.listed({'p1': 6, 'p2': 8}))
        self.assertIsNone(self.view.get(KEY_A))

    def test_the_answer_order_is_kept(self) -> None:
        # The core breaks ties between equal pools by Placement's order.
        self.view.put(KEY_A, summaries(p3=0, p1=0, p2=0))
        self.view.put(KEY_B, summaries(p2=1))
        got = self.view.get(KEY_A)
        assert got is not None
        self.assertEqual(['p3', 'p1', 'p2'], list(got))
