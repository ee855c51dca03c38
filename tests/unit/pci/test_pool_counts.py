"""The compact Summary decides exactly as the full HostPools."""

from __future__ import annotations

import gc
import random
import weakref
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import testtools
from hypothesis import given
from hypothesis import strategies as st

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as summary_mod
from passthrough_plugin.pci import synthetic
from tests.unit.pci import fakes
from tests.unit.pci import strategies
from tests.unit.pci import test_pools
from tests.unit.pci.fakes import case


class SummaryTableTest(testtools.TestCase):
    """Every scenario of the pool rule tables, decided by the summary."""

    TABLES = (test_pools.PfVfTest.TABLE, test_pools.NumaTest.TABLE,
              test_pools.IommuGroupTest.TABLE,
              test_pools.AntiAffinityTest.TABLE,
              test_pools.HeadroomTest.TABLE, test_pools.ReasonTest.TABLE)

    def test_pool_tables(self) -> None:
        count = 0
        for table in self.TABLES:
            for sc in table:
                with case(sc.name):
                    hp = fakes.host(*sc.devices(), **sc.host_kw)
                    summary = summary_mod.Summary(hp)
                    self.assertEqual(
                        hp.fits(sc.request_set, sc.cells),
                        summary.fits(sc.request_set, sc.cells))
                    self.assertEqual(sc.ok, summary.fits(sc.request_set,
                                                         sc.cells))
                    count += 1
        self.assertGreater(count, 50)

    def test_repeated_use_is_stateless(self) -> None:
        hp = fakes.host(*test_pools.sriov((test_pools.PF1,), vfs=2))
        summary = summary_mod.Summary(hp)
        rs = fakes.requests(fakes.vf_request(2))
        self.assertTrue(summary.fits(rs))
        self.assertTrue(summary.fits(rs))
        self.assertFalse(summary.fits(fakes.requests(fakes.vf_request(3))))
        self.assertTrue(summary.fits(fakes.requests()))

    def test_synthetic_sriov_hosts(self) -> None:
        for used in ([0, 0, 0, 0], [64, 64, 64, 63], [64, 64, 64, 64],
                     [1, 0, 64, 3]):
            report = synthetic.sriov_host('h', used_vfs=used)
            hp = pools_mod.HostPools.from_report(report)
            summary = summary_mod.Summary(hp)
            self.assertIsNone(summary.exact)
            for n in (1, 2, 5, 64, 65, 200):
                for policy in strategies.POLICIES:
                    for cells in (None, [0], [1], [0, 1]):
                        rs = fakes.requests(fakes.vf_request(
                            n, policy=policy))
                        with case(f'{used} {n} {policy} {cells}'):
                            self.assertEqual(hp.fits(rs, cells),
                                             summary.fits(rs, cells))

    def test_synthetic_reports_are_valid(self) -> None:
        report = synthetic.sriov_host('h', pfs=2, vfs=8, used_vfs=[3, 0])
        data = report.to_dict()
        self.assertEqual(data, report_mod.HostReport.from_dict(data)
                         .to_dict())
        statuses = [d.status for d in report.devices]
        self.assertEqual(3, statuses.count('allocated'))
        # the PF with VFs in use is not assignable as a whole
        self.assertEqual('unavailable', report.devices[0].status)
        self.assertEqual('available', report.devices[9].status)

    def test_random_usage(self) -> None:
        usage = synthetic.random_usage(random.Random(7), 500, 64)
        self.assertEqual(500, len(usage))
        self.assertTrue(all(0 <= n <= 64 for n in usage))
        # mostly idle, some busy, some full
        self.assertIn(0, usage)
        self.assertIn(64, usage)
        self.assertTrue(any(0 < n < 64 for n in usage))
        self.assertEqual(usage, synthetic.random_usage(random.Random(7),
                                                       500, 64))

    def test_shared_groups_keep_a_shared_snapshot(self) -> None:
        def gpu_host(name: str, status: str = 'available'
                     ) -> pools_mod.HostPools:
            return fakes.host(fakes.dev(test_pools.GPU1, group=5),
                              fakes.dev(test_pools.AUDIO1, group=5),
                              fakes.dev(test_pools.GPU2, group=6,
                                        status=status), host=name)

        first = summary_mod.Summary(gpu_host('a'))
        assert first.exact is not None
        # The free devices, frozen: not the host's pools or report.
        self.assertEqual([[0], [1], [2]],
                         [list(p.free) for p in first.exact.pools])
        self.assertNotIsInstance(first.exact, pools_mod.HostPools)
        # Another host of the model in the same state shares it (and
        # its slots); one in another state does not.
        second = summary_mod.Summary(gpu_host('b'))
        self.assertIs(first.exact, second.exact)
        self.assertIs(first.slots, second.slots)
        self.assertEqual(('a', 'b'), (first.host, second.host))
        busy = summary_mod.Summary(gpu_host('c', 'allocated'))
        self.assertIsNot(first.exact, busy.exact)
        self.assertEqual((3, 2), (first.total_free, busy.total_free))
        rs = fakes.requests(fakes.gpu_request(3))
        self.assertEqual((True, False), (first.fits(rs), busy.fits(rs)))
        # A snapshot no summary holds any more is not kept.
        gone = weakref.ref(busy.exact)
        del busy
        gc.collect()
        self.assertIsNone(gone())
        self.assertIsNotNone(weakref.ref(first.exact)())

    def test_counts(self) -> None:
        hp = fakes.host(*test_pools.sriov(
            (test_pools.PF1, test_pools.PF2), vfs=3,
            used={test_pools.PF1: 1}))
        summary = summary_mod.Summary(hp)
        # PF1 blocked, PF2 free, 2 + 3 VFs free
        self.assertEqual(6, summary.total_free)
        self.assertEqual(1, summary.pf_with_vfs_in_use)
        self.assertEqual(hp.report.generation, summary.generation)


def facts(hp: pools_mod.HostPools) -> list[summary_mod.PoolFacts]:
    """What a pool-level store would say of ``hp``'s pools."""
    return [summary_mod.PoolFacts(
        vendor_id='%04x' % p.sig.vendor_id,
        product_id='%04x' % p.sig.product_id, dev_type=p.sig.dev_type,
        address=p.address, free=len(p.free), total=len(p.members),
        numa_node=p.numa_node, resource_class=p.sig.resource_class,
        traits=p.sig.traits, pool_tags=dict(p.sig.pool_tags))
        for p in hp.pools]


def by_pool(hp: pools_mod.HostPools, addresses: Sequence[str]
            ) -> dict[tuple[str, str], int]:
    """Devices per (pool address, resource class), as Summary.choose."""
    out: dict[tuple[str, str], int] = {}
    for address in addresses:
        pool = hp.pool_of[hp.by_address[address]]
        key = (pool.address, pool.sig.resource_class)
        out[key] = out.get(key, 0) + 1
    return out


class ChooseTest(testtools.TestCase):

    def test_choose_names_pools_per_request(self) -> None:
        pf1, pf2 = test_pools.PF1, test_pools.PF2
        hp = fakes.host(*test_pools.sriov((pf1, pf2), vfs=2),
                        fakes.dev(test_pools.GPU1, group=1))
        summary = summary_mod.Summary(hp)
        rs = fakes.requests(fakes.vf_request(3), fakes.gpu_request(1))
        self.assertEqual(
            [{(pf1, 'CUSTOM_PCI_8086_154C'): 2,
              (pf2, 'CUSTOM_PCI_8086_154C'): 1},
             {(test_pools.GPU1, 'CUSTOM_PCI_10DE_1EB8'): 1}],
            summary.choose(rs))
        self.assertIsNone(summary.choose(fakes.requests(
            fakes.vf_request(5))))
        self.assertEqual([], summary.choose(fakes.requests()))

    def test_choose_with_shared_groups_uses_the_devices(self) -> None:
        hp = fakes.host(fakes.dev(test_pools.GPU1, group=5),
                        fakes.dev(test_pools.AUDIO1, group=5))
        summary = summary_mod.Summary(hp)
        self.assertIsNotNone(summary.exact)
        self.assertEqual(
            [{(test_pools.GPU1, 'CUSTOM_PCI_10DE_1EB8'): 1,
              (test_pools.AUDIO1, 'CUSTOM_PCI_10DE_1EB8'): 1}],
            summary.choose(fakes.requests(fakes.gpu_request(2))))

    def test_fit_slots(self) -> None:
        pf1 = test_pools.PF1
        hp = fakes.host(*test_pools.sriov((pf1,), vfs=3))
        summary = summary_mod.Summary(hp)
        used, blocked = summary.fit_slots(fakes.requests(
            fakes.vf_request(2), headroom=(fakes.vf_request(1),)))
        self.assertEqual({('type-VF', pf1): 2},
                         {(s.sig.dev_type, s.address): n
                          for s, n in used.items()})
        # taking VFs makes the PF unusable
        self.assertEqual({('type-PF', pf1)},
                         {(s.sig.dev_type, s.address) for s in blocked})
        self.assertIsNone(summary.fit_slots(fakes.requests(
            fakes.vf_request(2), headroom=(fakes.vf_request(2),))))
        self.assertEqual(({}, set()), summary.fit_slots(fakes.requests()))

    def test_from_pools(self) -> None:
        hp = fakes.host(*test_pools.sriov(
            (test_pools.PF1, test_pools.PF2), vfs=3,
            used={test_pools.PF1: 1}, numa=(0, 1)))
        summary = summary_mod.Summary.from_pools(
            'host1', 7, facts(hp), {0: 0, 1: 1})
        self.assertEqual(('host1', 7, 6, 1, None),
                         (summary.host, summary.generation,
                          summary.total_free, summary.pf_with_vfs_in_use,
                          summary.exact))
        self.assertTrue(summary.fits(fakes.requests(
            fakes.vf_request(2, policy='required')), [0]))
        self.assertFalse(summary.fits(fakes.requests(
            fakes.vf_request(3, policy='required')), [0]))
        self.assertTrue(summary.fits(fakes.requests(fakes.pf_request())))
        self.assertFalse(summary.fits(fakes.requests(
            fakes.pf_request(), fakes.vf_request(3))))


def asks(data: Any, report: Any, times: int = 3
         ) -> Iterator[tuple[request_mod.RequestSet, list[int] | None]]:
    """``times`` request sets, each with guest NUMA cells for ``report``."""
    for _ in range(times):
        yield (data.draw(strategies.request_sets()),
               data.draw(strategies.numa_cells(report)))


class SummaryPropertyTest(testtools.TestCase):

    def chosen_as_fit(self, hp: pools_mod.HostPools,
                      summary: summary_mod.Summary,
                      rs: request_mod.RequestSet, cells: list[int] | None
                      ) -> tuple[Any, Any, Any]:
        """The summary's choice and slots fit when the device-level fit
        does, and its choice takes the fit's pools, request by request."""
        fit = hp.fit(rs, cells)
        chosen = summary.choose(rs, cells)
        taken = summary.fit_slots(rs, cells)
        self.assertEqual(fit.ok, chosen is not None)
        self.assertEqual(fit.ok, taken is not None)
        if fit.ok:
            self.assertEqual([by_pool(hp, group) for group in fit.devices],
                             chosen)
        return fit, chosen, taken

    @strategies.SETTINGS
    @given(st.data())
    def test_summary_equals_pools(self, data: Any) -> None:
        report = data.draw(strategies.hosts())
        hp = pools_mod.HostPools.from_report(report)
        summary = summary_mod.Summary(hp)
        for rs, cells in asks(data, report):
            expected = hp.fits(rs, cells)
            self.assertEqual(expected, hp.fit(rs, cells).ok)
            self.assertEqual(expected, summary.fits(rs, cells))

    @strategies.SETTINGS
    @given(st.data())
    def test_summary_equals_pools_without_shared_groups(
            self, data: Any) -> None:
        # The count-only path (no shared IOMMU group), with bigger hosts.
        report = data.draw(strategies.hosts(max_vfs=6,
                                            shared_groups=False))
        hp = pools_mod.HostPools.from_report(report)
        summary = summary_mod.Summary(hp)
        self.assertIsNone(summary.exact)
        for rs, cells in asks(data, report):
            self.assertEqual(hp.fits(rs, cells), summary.fits(rs, cells))

    @strategies.SETTINGS
    @given(st.data())
    def test_choose_and_fit_slots_agree_with_pools(self, data: Any) -> None:
        report = data.draw(strategies.hosts(shared_groups=False))
        hp = pools_mod.HostPools.from_report(report)
        summary = summary_mod.Summary(hp)
        pooled = summary_mod.Summary.from_pools(
            report.host, report.generation, facts(hp), hp.sockets)
        for rs, cells in asks(data, report):
            fit, chosen, taken = self.chosen_as_fit(hp, summary, rs, cells)
            self.assertEqual(fit.ok, pooled.fits(rs, cells))
            self.assertEqual(chosen, pooled.choose(rs, cells))
            if not fit.ok:
                continue
            assert taken is not None
            used, blocked = taken
            self.assertEqual(sum(r.count for r in rs.requests),
                             sum(used.values()))
            for slot, n in used.items():
                self.assertLessEqual(n, slot.free)
                # a PF pool and the VF pools of that PF: never both
                self.assertNotIn(slot, blocked)

    @strategies.SETTINGS
    @given(st.data())
    def test_shared_groups_choose_as_the_pools(self, data: Any) -> None:
        # The snapshot path: devices in shared IOMMU groups.
        report = data.draw(strategies.hosts())
        hp = pools_mod.HostPools.from_report(report)
        summary = summary_mod.Summary(hp)
        for rs, cells in asks(data, report):
            fit, _chosen, _taken = self.chosen_as_fit(hp, summary, rs,
                                                      cells)
            if not fit.ok:
                continue
            if summary.exact is not None:
                found = summary.exact.fit_indices(rs, cells)
                assert found is not None
                self.assertEqual(
                    (list(fit.addresses), list(fit.companions)),
                    ([summary.exact.addresses[i] for g in found[0]
                      for i in g],
                     [summary.exact.addresses[i] for i in found[1]]))
