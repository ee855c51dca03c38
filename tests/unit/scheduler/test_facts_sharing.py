"""Candidate facts share what hosts of one model have in common."""

from __future__ import annotations

import testtools

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import synthetic
from passthrough_plugin.scheduler import candidates
from passthrough_plugin.scheduler.candidates import facts as facts_mod


def _facts(host: str, used: list[int]) -> candidates.HostFacts:
    return candidates.HostFacts(pools_mod.HostPools.from_report(
        synthetic.sriov_host(host, 2, 4, 1, used_vfs=used)))


class FactsSharingTest(testtools.TestCase):

    def test_one_layout_per_model_and_shared_states(self) -> None:
        first = _facts('a', [1, 0])
        second = _facts('b', [2, 0])
        self.assertIs(first.layout, second.layout)
        # Both have PF 1 serving VFs and PF 2 free: one states tuple.
        self.assertIs(first.states, second.states)
        self.assertEqual(((3, 1), (4, 0)), (first.vf_counts(
            '0000:10:00.0'), second.vf_counts('0000:20:00.0')))
        self.assertEqual((2, 2), second.vf_counts('0000:10:00.0'))
        idle = _facts('c', [0, 0])
        self.assertIsNot(first.states, idle.states)
        self.assertEqual((True, None), idle.device('0000:10:00.0'))
        # (the synthetic report marks a PF serving VFs unavailable)
        self.assertEqual((True, 'unavailable'),
                         first.device('0000:10:00.0'))

    def test_forget_starts_over(self) -> None:
        first = _facts('a', [1, 0])
        facts_mod.forget()
        second = _facts('b', [1, 0])
        self.assertIsNot(first.layout, second.layout)
        self.assertEqual(first.states, second.states)
        self.assertIsNot(first.states, second.states)
