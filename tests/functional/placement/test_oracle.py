"""The concurrency oracle catches each broken rule in Placement's data."""

from __future__ import annotations

from passthrough_plugin.bench import placement as bench
from passthrough_plugin.bench import placement_oracle as oracle
from tests.functional.placement import base

VF = oracle.Want('type-VF', 1)
VF2 = oracle.Want('type-VF', 2)
VF2_APART = oracle.Want('type-VF', 2, anti_affinity=True)
PF = oracle.Want('type-PF', 1)


class OracleTest(base.PlacementTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.reports = bench.hosts(count=2, pfs=2, vfs=4)
        for report in self.reports:
            self.store.publish(report)
        self.names = oracle.providers(self.client)
        self.by_name = {v: k for k, v in self.names.items()}

    def put(self, consumer: str, *held: tuple[str, str, str, int]) -> None:
        body: dict[str, dict[str, int]] = {}
        for host, address, rc, n in held:
            body.setdefault(self.by_name[(host, address)], {})[rc] = n
        self.client.put_allocations(consumer, body, consumer_generation=None,
                                    project_id='p', user_id='u')

    def check(self, wants: dict[str, oracle.Want], *, stable: bool = True,
              reports: object = None) -> list[str]:
        snap = oracle.snapshot(self.client, self.names, usages=True)
        return oracle.violations(snap, reports or self.reports,  # type: ignore[arg-type]
                                 wants, stable=stable)

    def test_clean_state_passes(self) -> None:
        a, b = base.new_consumer(), base.new_consumer()
        pf0, pf1 = '0000:10:00.0', '0000:20:00.0'
        self.put(a, ('host0', pf0, base.VF_RC, 1), ('host0', pf1, base.VF_RC,
                                                     1))
        self.put(b, ('host1', pf0, base.PF_RC, 1),
                 ('host1', pf0, base.VF_RC, 4))
        self.assertEqual([], self.check({a: VF2_APART, b: PF}))

    def test_anti_affinity_broken(self) -> None:
        a = base.new_consumer()
        self.put(a, ('host0', '0000:10:00.0', base.VF_RC, 2))
        self.assertEqual([], self.check({a: VF2}))
        found = self.check({a: VF2_APART}, stable=False)
        self.assertEqual(1, len(found), found)
        self.assertIn('asked for VF anti-affinity and holds 2 VFs of host0 '
                      '0000:10:00.0', found[0])

    def test_unknown_holder(self) -> None:
        a = base.new_consumer()
        self.put(a, ('host1', '0000:20:00.0', base.VF_RC, 1))
        found = self.check({}, stable=False)
        self.assertEqual(1, len(found), found)
        self.assertIn('consumer %s holds host1 0000:20:00.0 %s x1, but no '
                      'scheduler asked for it' % (a, base.VF_RC), found[0])

    def test_more_than_the_report_has(self) -> None:
        # Placement's inventory says 4 VFs; the agent now reports 2.
        a = base.new_consumer()
        self.put(a, ('host0', '0000:10:00.0', base.VF_RC, 3))
        found = self.check({a: oracle.Want('type-VF', 3)}, stable=False,
                           reports=bench.hosts(count=2, pfs=2, vfs=2))
        self.assertEqual(1, len(found), found)
        self.assertIn('host0 0000:10:00.0: 3 x %s allocated, the report has '
                      '2 such devices' % base.VF_RC, found[0])

    def test_wrong_count_and_split_hosts_in_a_stable_snapshot(self) -> None:
        a = base.new_consumer()
        self.put(a, ('host0', '0000:10:00.0', base.VF_RC, 1),
                 ('host1', '0000:10:00.0', base.VF_RC, 1))
        self.assertEqual([], self.check({a: VF2}, stable=False))
        found = self.check({a: VF}, stable=True)
        self.assertEqual(2, len(found), found)
        self.assertIn('asked for 1 type-VF and holds 2', found[0])
        self.assertIn('holds devices on several hosts: host0, host1',
                      found[1])

    def test_pf_whole_shared_and_without_its_vfs(self) -> None:
        # Placement cannot hold this (the PF takes its VFs' inventory):
        # a snapshot as a broken store would leave it.
        uuid = self.by_name[('host0', '0000:10:00.0')]
        snap = oracle.Snapshot(
            {'a': {uuid: {base.PF_RC: 1}}, 'b': {uuid: {base.VF_RC: 1}}},
            self.names, sums={uuid: {base.PF_RC: 1, base.VF_RC: 1}})
        found = oracle.violations(snap, self.reports, {'a': PF, 'b': VF},
                                  stable=False)
        self.assertEqual([
            'host0 0000:10:00.0: PF given whole to a while b hold(s) some '
            'of it',
            'host0 0000:10:00.0: PF given whole to a without its 4 VFs '
            '(holds 0)'], found)

    def test_usages_that_differ_from_the_allocations(self) -> None:
        uuid = self.by_name[('host0', '0000:20:00.0')]
        snap = oracle.Snapshot({}, self.names, usages={uuid: {
            base.VF_RC: 1}}, sums={})
        found = oracle.violations(snap, self.reports, {}, stable=True)
        self.assertEqual(["host0 0000:20:00.0: usages {'%s': 1} != the "
                          "sums of its allocations {}" % base.VF_RC], found)
