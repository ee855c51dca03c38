"""The standalone engine: decisions, reasons, weights, claims, caching."""

from __future__ import annotations

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import explain
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.store import file as file_store
from tests.unit.scheduler import fakes

VF2 = {'pci_passthrough:alias': 'vf:2'}


class CountingStore(file_store.FileReportStore):
    """The file store, counting reads, to prove the cache works."""

    gets = 0
    generation_calls = 0

    def get(self, host):  # type: ignore[no-untyped-def]
        self.gets += 1
        return super().get(host)

    def generations(self):  # type: ignore[no-untyped-def]
        self.generation_calls += 1
        return super().generations()


class EngineTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.conf = fakes.config(self, self.path)
        self.store = CountingStore(self.conf)

    def engine(self, **options: object) -> engine_mod.Engine:
        for key, value in options.items():
            self.conf.set_override(key, value, 'passthrough_scheduler')
        engine = engine_mod.Engine(self.conf, self.store)
        engine.refresh()
        return engine

    def test_fits_and_reasons(self) -> None:
        self.store.publish(fakes.sriov_host('small', pfs=1, vfs=1))
        self.store.publish(fakes.sriov_host('big', pfs=2, vfs=4))
        engine = self.engine()
        request = engine.request(VF2)
        answers = {a.host: a for a in engine.explain(request)}
        self.assertTrue(answers['big'].ok)
        self.assertFalse(answers['small'].ok)
        self.assertEqual(explain.INSUFFICIENT, answers['small'].reason)
        self.assertTrue(answers['small'].detail.startswith(
            'small needs 2 x vf'), answers['small'].detail)
        self.assertEqual(['big'], [a.host for a in engine.select(request)])

    def test_shared_shape_detail_names_each_host(self) -> None:
        for host in ('a1', 'a2', 'a3'):
            self.store.publish(fakes.sriov_host(host, pfs=1, vfs=1))
        engine = self.engine()
        self.assertEqual(1, len({s.state for s in
                                 engine.summaries.values()}))
        details = [a.detail for a in engine.explain(engine.request(VF2))]
        self.assertEqual(['a1', 'a2', 'a3'],
                         [d.split(' ')[0] for d in details])

    def test_summaries_cached_by_generation(self) -> None:
        for host in ('h1', 'h2', 'h3'):
            self.store.publish(fakes.sriov_host(host))
        engine = self.engine()
        self.assertEqual(3, self.store.gets)
        engine.refresh()
        engine.explain(engine.request(VF2))
        self.assertEqual(3, self.store.gets)
        self.store.claim('h2', 'c1', ['0000:81:02.0'])
        engine.refresh()
        self.assertEqual(4, self.store.gets)
        answers = {a.host: a for a in engine.explain(engine.request(VF2))}
        # The claimed VF and, as a whole device, its PF.
        self.assertEqual(answers['h1'].free_before - 2,
                         answers['h2'].free_before)

    def test_hosts_beyond_the_cache_size_are_read_on_demand(self) -> None:
        self.store.publish(fakes.sriov_host('a', pfs=1, vfs=1))
        self.store.publish(fakes.sriov_host('b', pfs=1, vfs=4))
        engine = self.engine(summary_cache_size=1)
        self.assertEqual(1, len(engine.summaries))
        self.assertEqual(['a', 'b'], engine.hosts())
        request = engine.request(VF2)
        self.assertFalse(engine.decide('a', request).ok)
        self.assertTrue(engine.decide('b', request).ok)

    def test_corrupt_report_fails_only_that_host(self) -> None:
        self.store.publish(fakes.sriov_host('good'))
        self.store.publish(fakes.sriov_host('bad'))
        with open(self.path + '/bad.json', 'w') as f:
            f.write('[1, 2')
        engine = self.engine()
        answers = {a.host: a for a in engine.explain(engine.request(VF2))}
        self.assertTrue(answers['good'].ok)
        self.assertEqual(explain.BAD_REPORT, answers['bad'].reason)
        self.assertIn('not valid JSON', answers['bad'].detail)

    def test_missing_report_policy(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        engine = self.engine()
        none = engine.request({})
        self.assertEqual(explain.NO_REPORT,
                         engine.decide('ghost', none).reason)
        engine = self.engine(missing_report='pass')
        self.assertTrue(engine.decide('ghost', none).ok)
        # nova's data alone decide it (see test_missing_report).
        self.assertTrue(engine.decide('ghost', engine.request(VF2)).ok)

    def test_iommu_group_not_viable_is_never_chosen(self) -> None:
        self.store.publish(fakes.sriov_host('tainted', foreign_group=True))
        self.store.publish(fakes.sriov_host('clean', pfs=1, vfs=2))
        engine = self.engine()
        request = engine.request({'pci_passthrough:alias': 'vf:1'})
        answers = {a.host: a for a in engine.explain(request, exact=True)}
        self.assertEqual(explain.GROUP, answers['tainted'].reason)
        self.assertIn('IOMMU group', answers['tainted'].detail)
        self.assertEqual(['clean'], [a.host for a in engine.select(request)])

    def test_pack_prefers_pf_already_in_use_spread_the_emptiest(self) -> None:
        self.store.publish(fakes.sriov_host('fresh', pfs=2, vfs=4))
        self.store.publish(fakes.sriov_host('used', pfs=2, vfs=4,
                                            used_vfs=2))
        request_specs = {'pci_passthrough:alias': 'vf:1'}
        pack = self.engine(weigh_strategy='pack')
        self.assertEqual('used', pack.select(
            pack.request(request_specs))[0].host)
        spread = self.engine(weigh_strategy='spread')
        self.assertEqual('fresh', spread.select(
            spread.request(request_specs))[0].host)

    def test_requests_without_devices_avoid_pci_hosts(self) -> None:
        self.store.publish(fakes.sriov_host('pci', pfs=2, vfs=4))
        self.store.publish(fakes.sriov_host('bare', pfs=0))
        engine = self.engine()
        ranked = engine.select(engine.request({}))
        self.assertEqual(['bare', 'pci'], [a.host for a in ranked])

    def test_numa_locality_wins(self) -> None:
        # PF 0 on node 1, PF 1 on node 0; ask for node 0 with 'preferred'.
        self.store.publish(fakes.sriov_host('remote', pf_numa=(1, 1)))
        self.store.publish(fakes.sriov_host('local', pf_numa=(0, 0)))
        engine = self.engine()
        request = engine.request(
            {'pci_passthrough:alias': 'vf:1',
             'hw:pci_numa_affinity_policy': 'preferred'}, numa_cells=[0])
        ranked = engine.select(request)
        self.assertEqual(['local', 'remote'], [a.host for a in ranked])
        strict = engine.request(
            {'pci_passthrough:alias': 'vf:1',
             'hw:pci_numa_affinity_policy': 'required'}, numa_cells=[0])
        self.assertEqual(['local'], [a.host for a in engine.select(strict)])

    def test_unpinned_numa_cells_try_each_host_cell(self) -> None:
        self.store.publish(fakes.sriov_host('h1', pf_numa=(1, 1)))
        engine = self.engine()
        request = engine.request(
            {'pci_passthrough:alias': 'vf:1',
             'hw:pci_numa_affinity_policy': 'required'}, numa_cell_count=1)
        self.assertTrue(engine.decide('h1', request).ok)

    def test_bad_extra_spec_raises_naming_it(self) -> None:
        engine = self.engine()
        exc = self.assertRaises(
            exception.InvalidExtraSpec, engine.request,
            {'pci_passthrough:alias': 'nosuch:1'})
        self.assertIn('pci_passthrough:alias', exc.message)
        self.assertIn('nosuch', exc.message)

    def test_claim_and_release(self) -> None:
        self.store.publish(fakes.sriov_host('h1', pfs=1, vfs=2))
        engine = self.engine()
        request = engine.request(VF2)
        claimed = engine.claim('h1', request, 'inst-a')
        self.assertEqual(2, len(claimed))
        exc = self.assertRaises(exception.ClaimFailed, engine.claim, 'h1',
                                request, 'inst-b')
        self.assertIn('needs 2 x vf', exc.message)
        engine.refresh()
        self.assertFalse(engine.decide('h1', request).ok)
        self.assertEqual(sorted(claimed),
                         sorted(engine.release('h1', 'inst-a')))
        engine.refresh()
        self.assertTrue(engine.decide('h1', request).ok)

    def test_move_re_requests_hotplugged_devices(self) -> None:
        self.store.publish(fakes.sriov_host('src', pfs=1, vfs=4))
        self.store.publish(fakes.sriov_host('dst1', pfs=1, vfs=1))
        self.store.publish(fakes.sriov_host('dst2', pfs=1, vfs=4))
        self.store.claim('src', 'inst-1', ['0000:81:02.0'])
        self.store.claim('src', 'inst-1', ['0000:81:02.1'],
                         source='hotplug')
        engine = self.engine()
        plain = engine.request({'pci_passthrough:alias': 'vf:1'})
        self.assertTrue(engine.decide('dst1', plain).ok)
        moved = engine.request({'pci_passthrough:alias': 'vf:1'},
                               instance_uuid='inst-1', move=True)
        self.assertEqual(['flavor', 'hotplug'],
                         [r.source for r in moved.requests.requests])
        self.assertFalse(engine.decide('dst1', moved).ok)
        self.assertTrue(engine.decide('dst2', moved).ok)

    def test_rebuild_keeps_the_host_with_the_devices(self) -> None:
        self.store.publish(fakes.sriov_host('home', pfs=1, vfs=1))
        self.store.publish(fakes.sriov_host('other', pfs=1, vfs=4))
        self.store.claim('home', 'inst-1', ['0000:81:02.0'])
        engine = self.engine()
        request = engine.request({'pci_passthrough:alias': 'vf:1'},
                                 instance_uuid='inst-1', rebuild=True)
        # home is full, yet the rebuild stays there with its device.
        self.assertTrue(engine.decide('home', request).ok)
        self.assertEqual(engine_mod.REBUILD,
                         engine.decide('other', request).reason)

    def test_normalise(self) -> None:
        self.assertEqual([2.0, 0.0, 1.0],
                         engine_mod.normalise([3, 1, 2], 2.0))
        self.assertEqual([0.0, 0.0], engine_mod.normalise([5, 5], 1.0))
        self.assertEqual([1.0, 0.0, 0.0], engine_mod.normalise(
            [1, float('-inf'), 0], 1.0))


def figures_of_choice(summary, chosen, cells):  # type: ignore[no-untyped-def]
    """The weigher's figures from the core's own choice of pools."""
    from passthrough_plugin.pci import pools as pools_mod
    from passthrough_plugin.scheduler import decision_memo as summary_mod

    index = {(s.address, s.sig.resource_class): s for s in summary.slots}
    used: dict = {}
    for counts in chosen:
        for key, count in counts.items():
            used[index[key]] = used.get(index[key], 0) + count
    blocked: set = set()
    broken = 0
    for slot in used:
        if slot.sig.dev_type == pools_mod.TYPE_VF and slot.dependents:
            broken += 1  # its PF was whole (a free PF has a slot)
        blocked.update(slot.dependents)
    lost = sum(s.free for s in blocked if s not in used)
    local = bool(cells) and all(s.numa_node in cells for s in used)
    return summary_mod.Decision(
        True, free_after=summary.total_free - sum(used.values()) - lost,
        broken_pfs=broken, local=local)


class FiguresTest(testtools.TestCase):
    """The weigher's walk takes what the core's Summary.choose takes."""

    def test_choice_and_walk_agree(self) -> None:
        import random

        from passthrough_plugin.pci import alias as alias_mod
        from passthrough_plugin.pci import pools as pools_mod
        from passthrough_plugin.pci import request as request_mod
        from passthrough_plugin.pci import pool_counts as core_summary
        from passthrough_plugin.pci import synthetic
        from passthrough_plugin.scheduler import decision_memo as summary_mod

        aliases = alias_mod.parse_aliases(fakes.ALIASES)
        rng = random.Random(5)
        checked = 0
        for n in range(60):
            report = synthetic.sriov_host(
                'h%d' % n, 4, 8, 2,
                used_vfs=synthetic.random_usage(rng, 4, 8))
            summary = core_summary.Summary(
                pools_mod.HostPools.from_report(report))
            for count in (1, 3, 9):
                requests = request_mod.RequestSet.from_extra_specs(
                    {'pci_passthrough:alias': 'vf:%d' % count}, aliases)
                for cells in (None, [0]):
                    chosen = summary.choose(requests, cells)
                    if chosen is None:
                        continue
                    one = figures_of_choice(summary, chosen, cells)
                    taken = summary.fit_slots(requests, cells)
                    assert taken is not None
                    two = summary_mod._figures('h', summary, taken, cells)
                    self.assertEqual(
                        (two.free_after, two.pack, two.spread),
                        (one.free_after, one.pack, one.spread),
                        (n, count, cells))
                    checked += 1
        self.assertGreater(checked, 100)
