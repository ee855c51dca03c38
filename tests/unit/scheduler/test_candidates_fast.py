"""The fast path of candidates.choose gives what the full judgement gives."""

from __future__ import annotations

import itertools
import random
import types

import testtools

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import candidates
from passthrough_plugin.scheduler import nova_adapter
from tests.unit.scheduler import fakes
from tests.unit.scheduler import test_candidates as base


Case = tuple[candidates.HostView, list[candidates.Group],
             list[dict[str, list[str]]]]


def random_case(rng: random.Random, shared: bool = False) -> Case:
    """A host of 3 PFs x 4 VFs and 2 GPUs with random usage, tainted
    devices and nova counts; every candidate of 1-3 devices over its
    providers and one unknown provider."""
    report = fakes.sriov_host('h', pfs=3, vfs=4, gpus=2,
                              used_vfs=0 if shared and rng.random() < 0.7
                              else rng.randint(0, 4), shared_group=shared)
    foreign = {}
    for dev in report.devices:
        if rng.random() < (0.03 if shared else 0.15) and \
                dev.iommu_group is not None:
            foreign[dev.iommu_group] = ('0000:00:1f.3',)
    report.iommu.foreign_members = foreign
    pools = pools_mod.HostPools.from_report(report)
    providers: dict[str, candidates.Provider] = {}
    for dev in report.devices:
        if dev.dev_type == 'type-PF':
            rp = 'rp-' + dev.address
            providers[rp] = candidates.Provider(
                rp, dev.address, 'type-VF', rng.randint(0, 4), 0)
        elif dev.dev_type == 'type-PCI':
            rp = 'rp-' + dev.address
            providers[rp] = candidates.Provider(
                rp, dev.address, 'type-PCI', rng.randint(0, 1), 0)
    # Shared groups: the view walks the full pools (the reference).
    view = candidates.HostView('h', candidates.HostFacts(pools), providers,
                               pools if shared else None)
    alias = rng.choice(['vf', 'gpu'])
    specs = {'pci_passthrough:alias': '%s:%d' % (alias, rng.randint(1, 3))}
    if rng.random() < 0.5:
        specs['passthrough:vf_anti_affinity'] = 'true'
    found = base.groups(request_mod.RequestSet.from_extra_specs(
        specs, base.ALIASES))
    rps = tuple(providers) + ('rp-unknown',)
    mappings = base.all_mappings([g for g, _r in found], rps)
    rng.shuffle(mappings)
    return view, found, mappings


class FastPathTest(testtools.TestCase):

    def test_same_choice_as_the_full_judgement(self) -> None:
        rng = random.Random(20261129)
        seen_ok = seen_bad = 0
        for _case, strategy in itertools.product(range(150),
                                                 ('pack', 'spread')):
            view, found, mappings = random_case(rng)
            slow_view = candidates.HostView(view.host, view.facts,
                                            view.providers)
            fast = candidates.choose(view, found, mappings, strategy)
            slow = candidates.choose(slow_view, found, mappings, strategy,
                                     fast=False)
            self.assertEqual(slow.order, fast.order)
            self.assertEqual((slow.reason, slow.detail),
                             (fast.reason, fast.detail))
            if slow.first is not None:
                assert fast.first is not None
                seen_ok += 1
                self.assertEqual(
                    (slow.first.broken, slow.first.left, slow.first.lost,
                     slow.first.taken),
                    (fast.first.broken, fast.first.left, fast.first.lost,
                     fast.first.taken))
            else:
                seen_bad += 1
        # Both outcomes were exercised.
        self.assertGreater(seen_ok, 20)
        self.assertGreater(seen_bad, 20)


class CompactWalkTest(testtools.TestCase):
    """Hosts whose free devices share IOMMU groups: the facts' compact
    walk gives what the walk over the full pools gives."""

    def test_same_choice_as_the_walk_over_the_pools(self) -> None:
        rng = random.Random(1129)
        walked = 0
        for _case, strategy in itertools.product(range(100),
                                                 ('pack', 'spread')):
            view, found, mappings = random_case(rng, shared=True)
            if not view.facts.walk:
                continue  # no free device shares a group: no walk
            pools = view.pools
            assert pools is not None
            walked += 1
            compact = candidates.HostView(view.host, view.facts,
                                          view.providers)
            self.assertTrue(compact.walks)
            a = candidates.choose(compact, found, mappings, strategy)
            b = candidates.choose(view, found, mappings, strategy)
            self.assertEqual(b.order, a.order)
            self.assertEqual((b.reason, b.detail), (a.reason, a.detail))
            if b.first is not None:
                assert a.first is not None
                self.assertEqual(
                    (b.first.broken, b.first.left, b.first.lost,
                     b.first.taken),
                    (a.first.broken, a.first.left, a.first.lost,
                     a.first.taken))
        self.assertGreater(walked, 40)


def nova_pools(rng: random.Random, providers: dict[str, candidates.Provider]
               ) -> list[dict[str, object]]:
    """The providers as nova's pool dicts (pci_stats.pools), with what
    nova may also hold: a pool outside Placement, upper-case addresses."""
    found: list[dict[str, object]] = [{
        'vendor_id': '8086', 'product_id': '1572', 'dev_type': 'type-PF',
        'numa_node': 0, 'address': '0000:99:00.0', 'count': 1,
        'physical_network': 'physnet1'}]
    for rp, provider in providers.items():
        address = provider.address
        found.append({
            'rp_uuid': rp, 'count': provider.free, 'numa_node': 0,
            'vendor_id': '8086', 'product_id': '154c',
            'dev_type': provider.dev_type,
            'address': address.upper() if rng.random() < 0.2 else address})
    rng.shuffle(found)
    return found


class LeanViewTest(testtools.TestCase):
    """The view made in one pass over nova's pools (no Provider objects)
    holds what the view over the providers holds, and chooses alike."""

    def test_same_figures_and_choice_as_the_view_over_providers(self) -> None:
        rng = random.Random(20261130)
        for _case, shared in itertools.product(range(150), (False, True)):
            view, found, mappings = random_case(rng, shared=shared)
            pools = nova_pools(rng, dict(view.providers))
            eager = candidates.HostView(view.host, view.facts,
                                        nova_adapter.providers_of(pools))
            lean = candidates.HostView.of_nova_pools(
                view.host, view.facts, pools, nova_adapter.providers_of)
            assert lean is not None
            for name in ('where', 'viable', 'in_use', 'free_before',
                         'offered_mask'):
                self.assertEqual(getattr(eager, name), getattr(lean, name),
                                 name)
            for strategy in ('pack', 'spread'):
                a = candidates.choose(eager, found, mappings, strategy)
                b = candidates.choose(lean, found, mappings, strategy)
                self.assertEqual((a.order, a.reason, a.detail),
                                 (b.order, b.reason, b.detail))
            # The providers, when something asks for them, are nova's.
            self.assertEqual(
                {rp: (p.address, p.dev_type, p.free)
                 for rp, p in eager.providers.items()},
                {rp: (p.address, p.dev_type, p.free)
                 for rp, p in lean.providers.items()})

    def test_pools_nova_does_not_make_take_the_general_path(self) -> None:
        view, _found, _mappings = random_case(random.Random(3))
        pools = nova_pools(random.Random(4), dict(view.providers))
        placed = [p for p in pools if 'rp_uuid' in p]
        # One provider over two pools (its free devices add up).
        twice = dict(placed[0], count=0)
        # A count nova would never write.
        texted = [dict(p) for p in pools]
        for pool in texted:
            pool['count'] = str(pool['count'])
        # Counts nobody can read: nothing free there.
        unread = [dict(p, count='many') for p in pools]
        for odd in (pools + [twice], texted, unread):
            self.assertIsNone(candidates.HostView.of_nova_pools(
                view.host, view.facts, odd, nova_adapter.providers_of))
            state = types.SimpleNamespace(
                pci_stats=types.SimpleNamespace(pools=odd))
            general = nova_adapter.host_view(view.host, view.facts, state)
            self.assertEqual(
                candidates.HostView(view.host, view.facts,
                                    nova_adapter.providers_of(odd)).where,
                general.where)


class AskTest(testtools.TestCase):
    """A request's groups are keyed once for all its hosts."""

    @staticmethod
    def groups(specs: str) -> list[candidates.Group]:
        return base.groups(request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': specs}, base.ALIASES))

    def test_groups_keyed_by_request(self) -> None:
        found = self.groups('vf:2')
        vf = found[0][1]
        gpu = self.groups('gpu:1')[0][1]
        ask = candidates.Ask(found)
        self.assertEqual([(found[0][0], 0), (found[1][0], 0)], ask.keyed)
        self.assertEqual([vf], ask.requests)
        self.assertEqual([found[0][0], found[1][0]], ask.group_ids)
        self.assertTrue(ask.fast)
        mixed = candidates.Ask([found[0], (found[1][0], gpu)])
        self.assertEqual([(found[0][0], 0), (found[1][0], 1)], mixed.keyed)
        self.assertEqual([vf, gpu], mixed.requests)
        self.assertFalse(mixed.fast)

    def test_extras_or_numa_take_the_full_judgement(self) -> None:
        found = self.groups('vf:1')
        self.assertFalse(candidates.Ask(found, [found[0][1]]).fast)
        self.assertFalse(candidates.Ask(found, (), 2).fast)
