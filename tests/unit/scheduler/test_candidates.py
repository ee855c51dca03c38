"""Allocation candidates judged and ordered on the agent's facts."""

from __future__ import annotations

import itertools
import json

import testtools

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import candidates
from tests.unit.scheduler import fakes

ALIASES = alias_mod.parse_aliases(fakes.ALIASES)
PF1, PF2 = '0000:81:00.0', '0000:82:00.0'
RP1, RP2 = 'rp-pf1', 'rp-pf2'


def requests(**extra: str) -> request_mod.RequestSet:
    specs = {'pci_passthrough:alias': 'vf:2'}
    specs.update(extra)
    return request_mod.RequestSet.from_extra_specs(specs, ALIASES)


def vf_view(report: report_mod.HostReport, free: tuple[int, int] = (4, 4),
            device_level: bool = False) -> candidates.HostView:
    providers = {
        RP1: candidates.Provider(RP1, PF1, 'type-VF', free[0], 0),
        RP2: candidates.Provider(RP2, PF2, 'type-VF', free[1], 1)}
    pools = pools_mod.HostPools.from_report(report)
    return candidates.HostView(report.host, candidates.HostFacts(pools),
                               providers, pools if device_level else None)


def groups(request_set: request_mod.RequestSet) -> list[candidates.Group]:
    found = []
    for n, request in enumerate(request_set.requests):
        found.extend(('req%d-%d' % (n, i), request)
                     for i in range(request.count))
    return found


def all_mappings(group_ids: list[str], rps: tuple[str, ...]
                 ) -> list[dict[str, list[str]]]:
    return [{g: [rp] for g, rp in zip(group_ids, combo, strict=True)}
            for combo in itertools.product(rps, repeat=len(group_ids))]


class AntiAffinityTest(testtools.TestCase):

    def test_only_distinct_pf_candidates_survive(self) -> None:
        wanted = requests(**{'passthrough:vf_anti_affinity': 'true'})
        found = groups(wanted)
        mappings = all_mappings([g for g, _r in found], (RP1, RP2))
        choice = candidates.choose(vf_view(fakes.sriov_host('h')), found,
                                   mappings, 'pack')
        kept = [mappings[i] for i in choice.order]
        self.assertEqual(2, len(kept))
        for mapping in kept:
            self.assertEqual(2, len({rps[0] for rps in mapping.values()}))

    def test_one_pf_left_fails_with_the_reason(self) -> None:
        wanted = requests(**{'passthrough:vf_anti_affinity': 'true'})
        found = groups(wanted)
        mappings = all_mappings([g for g, _r in found], (RP1,))
        choice = candidates.choose(vf_view(fakes.sriov_host('h')), found,
                                   mappings, 'pack')
        self.assertFalse(choice.ok)
        self.assertEqual(explain.ANTI_AFFINITY, choice.reason)
        self.assertIn('takes two VFs of one PF', choice.detail)

    def test_without_the_key_same_pf_is_fine(self) -> None:
        found = groups(requests())
        mappings = all_mappings([g for g, _r in found], (RP1,))
        self.assertTrue(candidates.choose(
            vf_view(fakes.sriov_host('h')), found, mappings, 'pack').ok)


class ViabilityTest(testtools.TestCase):

    def test_nova_seeing_more_free_vfs_than_assignable_is_refused(
            self) -> None:
        # One VF of PF1 shares its IOMMU group with a foreign device.
        report = fakes.sriov_host('h')
        report.iommu.foreign_members = {
            report.devices[1].iommu_group or 0: ('0000:00:1f.3',)}
        found = groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1'}, ALIASES))
        mappings = all_mappings([g for g, _r in found], (RP1, RP2))
        choice = candidates.choose(vf_view(report), found, mappings, 'pack')
        self.assertEqual([1], choice.order)

    def test_agent_held_vf_makes_its_pf_unsafe(self) -> None:
        report = fakes.sriov_host('h', used_vfs=1)
        report.devices[1].source = 'hotplug'
        found = groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1'}, ALIASES))
        view = vf_view(report)  # nova thinks all 4 of PF1 free
        verdict = candidates.judge(view, found, {found[0][0]: [RP1]})
        self.assertFalse(verdict.ok)
        self.assertEqual(explain.GROUP, verdict.reason)
        self.assertIn('nova counts 4 free VF(s) on PF %s, the agent knows 3 '
                      'assignable' % PF1, verdict.detail)
        self.assertIn('nova-device-spec', verdict.detail)

    def test_tainted_type_pci_device(self) -> None:
        report = fakes.sriov_host('h', pfs=0, vfs=0, gpus=2)
        tainted = report.devices[0]
        report.iommu.foreign_members = {tainted.iommu_group or 0:
                                        ('0000:00:1f.3',)}
        providers = {
            'rp-%d' % n: candidates.Provider('rp-%d' % n, d.address,
                                             'type-PCI', 1, 0)
            for n, d in enumerate(report.devices)}
        view = candidates.HostView(
            'h', candidates.HostFacts(pools_mod.HostPools.from_report(
                report)), providers)
        found = groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'gpu:1'}, ALIASES))
        mappings = [{found[0][0]: ['rp-0']}, {found[0][0]: ['rp-1']}]
        choice = candidates.choose(view, found, mappings, 'pack')
        self.assertEqual([1], choice.order)
        bad = candidates.judge(view, found, mappings[0])
        self.assertEqual('h: type-PCI %s is in an IOMMU group with devices '
                         'that cannot be assigned' % tainted.address,
                         bad.detail)

    def test_nova_pool_exhausted(self) -> None:
        found = groups(requests())
        verdict = candidates.judge(
            vf_view(fakes.sriov_host('h'), free=(1, 4)), found,
            {found[0][0]: [RP1], found[1][0]: [RP1]})
        self.assertFalse(verdict.ok)
        self.assertIn("provider rp-pf1 has 1 free device(s) in nova's pools",
                      verdict.detail)

    def test_headroom_must_remain(self) -> None:
        wanted = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1',
             'passthrough:hotplug_headroom': 'vf:4'}, ALIASES)
        found = groups(wanted)
        view = vf_view(fakes.sriov_host('h', vfs=4), device_level=True)
        # 8 VFs, 1 taken, 4 more must stay free: fine.
        self.assertTrue(candidates.judge(
            view, found, {found[0][0]: [RP1]}, wanted.headroom).ok)
        small = vf_view(fakes.sriov_host('h', vfs=2), free=(2, 2),
                        device_level=True)
        verdict = candidates.judge(small, found, {found[0][0]: [RP1]},
                                   wanted.headroom)
        self.assertEqual(explain.HEADROOM, verdict.reason)


    def test_shared_iommu_group_takes_its_mates(self) -> None:
        # PF1's four VFs share one IOMMU group: taking one takes all, so
        # a second VF of PF1 for the same guest is not there to take.
        report = fakes.sriov_host('h', shared_group=True)
        view = vf_view(report)
        self.assertTrue(view.walks)  # the host needs the walk
        found = groups(requests())
        self.assertTrue(candidates.judge(
            view, found, {found[0][0]: [RP1], found[1][0]: [RP2]}).ok)
        verdict = candidates.judge(view, found, {found[0][0]: [RP1],
                                                 found[1][0]: [RP1]})
        self.assertEqual(explain.GROUP, verdict.reason)
        one = groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1'}, ALIASES))
        # Pack prefers PF2: a VF of PF1 would lose its three mates.
        choice = candidates.choose(view, one, [{one[0][0]: [RP1]},
                                               {one[0][0]: [RP2]}], 'pack')
        self.assertEqual([1, 0], choice.order)

    def test_simple_hosts_keep_no_devices(self) -> None:
        self.assertFalse(vf_view(fakes.sriov_host('h')).walks)


class OrderTest(testtools.TestCase):

    def _one_vf(self, strategy: str) -> list[int]:
        # PF1 serves a VF already (nova counts 3 of its 4 free).
        found = groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1'}, ALIASES))
        mappings = [{found[0][0]: [RP2]}, {found[0][0]: [RP1]}]
        return candidates.choose(
            vf_view(fakes.sriov_host('h'), free=(3, 4)), found, mappings,
            strategy).order

    def test_pack_takes_the_pf_in_use(self) -> None:
        self.assertEqual([1, 0], self._one_vf('pack'))

    def test_spread_takes_the_whole_pf(self) -> None:
        self.assertEqual([0, 1], self._one_vf('spread'))

    def test_weigher_figures_of_the_first(self) -> None:
        found = groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:1'}, ALIASES))
        view = vf_view(fakes.sriov_host('h'), free=(3, 4))
        used = candidates.decision(view, candidates.choose(
            view, found, [{found[0][0]: [RP1]}], 'pack'))
        fresh = candidates.decision(view, candidates.choose(
            view, found, [{found[0][0]: [RP2]}], 'pack'))
        self.assertGreater(used.pack, fresh.pack)
        self.assertEqual(7, used.free_before)
        self.assertEqual(6, used.free_after)


class NumaTest(testtools.TestCase):

    def test_required_keeps_devices_within_the_guest_cells(self) -> None:
        alias = json.loads(fakes.ALIASES[0])
        alias['numa_policy'] = 'required'
        wanted = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:2'},
            alias_mod.parse_aliases([json.dumps(alias)]))
        found = groups(wanted)
        view = vf_view(fakes.sriov_host('h'))
        split = {found[0][0]: [RP1], found[1][0]: [RP2]}
        self.assertEqual(explain.NUMA, candidates.judge(
            view, found, split, numa_cell_count=1).reason)
        self.assertTrue(candidates.judge(view, found, split,
                                         numa_cell_count=2).ok)
        self.assertTrue(candidates.judge(view, found, split).ok)


class MoveClaimTest(testtools.TestCase):
    """nova 34's move claim: first free devices in pool order."""

    def test_anti_affinity_broken_by_the_first_pool(self) -> None:
        wanted = requests(**{'passthrough:vf_anti_affinity': 'true'})
        providers = list(vf_view(fakes.sriov_host('h')).providers.values())
        for p in providers:
            p.vendor_id, p.product_id = 0x8086, 0x154C
        verdict = candidates.move_claim_breaks('h', groups(wanted),
                                               providers)
        assert verdict is not None
        self.assertEqual(explain.ANTI_AFFINITY, verdict.reason)
        self.assertIn('would take 2 VFs of PF %s' % PF1, verdict.detail)
        # One VF left on the first PF: nova takes one there, one next.
        providers[0].free = 1
        self.assertIsNone(candidates.move_claim_breaks('h', groups(wanted),
                                                       providers))
        # Without the rule nothing to say.
        providers[0].free = 4
        self.assertIsNone(candidates.move_claim_breaks('h', groups(
            requests()), providers))

    def test_only_providers_that_serve_the_request_count(self) -> None:
        wanted = requests(**{'passthrough:vf_anti_affinity': 'true'})
        providers = list(vf_view(fakes.sriov_host('h')).providers.values())
        providers[0].vendor_id, providers[0].product_id = 0x10DE, 0x1EB8
        providers[1].vendor_id, providers[1].product_id = 0x8086, 0x154C
        verdict = candidates.move_claim_breaks('h', groups(wanted),
                                               providers)
        assert verdict is not None
        self.assertIn('PF %s' % PF2, verdict.detail)
