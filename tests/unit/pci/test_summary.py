"""The compact Summary decides exactly as the full HostPools."""

from __future__ import annotations

from typing import Any

import testtools
from hypothesis import given
from hypothesis import strategies as st

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import summary as summary_mod
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

    def test_shared_groups_keep_the_exact_pools(self) -> None:
        hp = fakes.host(fakes.dev(test_pools.GPU1, group=5),
                        fakes.dev(test_pools.AUDIO1, group=5))
        self.assertIs(hp, summary_mod.Summary(hp).exact)

    def test_counts(self) -> None:
        hp = fakes.host(*test_pools.sriov(
            (test_pools.PF1, test_pools.PF2), vfs=3,
            used={test_pools.PF1: 1}))
        summary = summary_mod.Summary(hp)
        # PF1 blocked, PF2 free, 2 + 3 VFs free
        self.assertEqual(6, summary.total_free)
        self.assertEqual(1, summary.pf_with_vfs_in_use)
        self.assertEqual(hp.report.generation, summary.generation)


class SummaryPropertyTest(testtools.TestCase):

    @strategies.SETTINGS
    @given(st.data())
    def test_summary_equals_pools(self, data: Any) -> None:
        report = data.draw(strategies.hosts())
        hp = pools_mod.HostPools.from_report(report)
        summary = summary_mod.Summary(hp)
        for _ in range(3):
            rs = data.draw(strategies.request_sets())
            cells = data.draw(strategies.numa_cells(report))
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
        for _ in range(3):
            rs = data.draw(strategies.request_sets())
            cells = data.draw(strategies.numa_cells(report))
            self.assertEqual(hp.fits(rs, cells), summary.fits(rs, cells))
