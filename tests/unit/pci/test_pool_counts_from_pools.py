"""Summary.from_pools: pool-level facts (Placement) decide as HostPools do."""

from __future__ import annotations

import random

import testtools

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as summary_mod
from passthrough_plugin.pci import synthetic

ALIASES = alias_mod.parse_aliases([
    '{"name": "vf", "vendor_id": "8086", "product_id": "154c", '
    '"device_type": "type-VF"}',
    '{"name": "pf", "vendor_id": "8086", "product_id": "1572", '
    '"device_type": "type-PF"}'])


def facts(hp: pools_mod.HostPools) -> list[summary_mod.PoolFacts]:
    return [summary_mod.PoolFacts(
        '%04x' % p.sig.vendor_id, '%04x' % p.sig.product_id,
        p.sig.dev_type, p.address, len(p.free), len(p.members),
        p.numa_node, p.sig.resource_class, p.sig.traits,
        dict(p.sig.pool_tags)) for p in hp.pools]


class FromPoolsTest(testtools.TestCase):

    def test_same_decisions_as_device_level(self) -> None:
        rng = random.Random(7)
        specs = ['vf:1', 'vf:2', 'vf:9', 'vf:30', 'pf:1', 'pf:3',
                 'vf:1,pf:1', 'vf:2,vf:2']
        checked = 0
        for n in range(60):
            used = synthetic.random_usage(rng, 3, 8)
            hp = pools_mod.HostPools(synthetic.sriov_host(
                'h%d' % n, 3, 8, 2, used_vfs=used))
            from_pools = summary_mod.Summary.from_pools(
                hp.host, 1, facts(hp), hp.sockets)
            for spec in specs:
                extra = {'pci_passthrough:alias': spec}
                if rng.random() < 0.3:
                    extra['passthrough:vf_anti_affinity'] = 'true'
                rs = request_mod.RequestSet.from_extra_specs(extra, ALIASES)
                for cells in (None, [0], [1]):
                    self.assertEqual(hp.fits(rs, cells),
                                     from_pools.fits(rs, cells),
                                     (used, spec, extra, cells))
                    checked += 1
        self.assertGreater(checked, 1000)

    def test_empty_pools_are_left_out_and_counts_kept(self) -> None:
        hp = pools_mod.HostPools(synthetic.sriov_host(
            'h', 2, 4, 1, used_vfs=[4, 1]))
        summary = summary_mod.Summary.from_pools('h', 3, facts(hp))
        self.assertEqual(3, summary.generation)
        self.assertEqual(summary_mod.Summary(hp).total_free,
                         summary.total_free)
        self.assertEqual(2, summary.pf_with_vfs_in_use)


class ChooseTest(testtools.TestCase):

    def test_choose_counts_match_the_device_fit(self) -> None:
        rng = random.Random(11)
        for n in range(40):
            hp = pools_mod.HostPools(synthetic.sriov_host(
                'h%d' % n, 3, 8, 2,
                used_vfs=synthetic.random_usage(rng, 3, 8)))
            for summary in (summary_mod.Summary(hp),
                            summary_mod.Summary.from_pools(
                                hp.host, 1, facts(hp), hp.sockets)):
                for spec in ('vf:2', 'vf:3,pf:1', 'vf:20'):
                    rs = request_mod.RequestSet.from_extra_specs(
                        {'pci_passthrough:alias': spec}, ALIASES)
                    fit = hp.fit(rs)
                    chosen = summary.choose(rs)
                    self.assertEqual(fit.ok, chosen is not None)
                    if chosen is None:
                        continue
                    for group, counts in zip(fit.devices, chosen,
                                             strict=True):
                        expected: dict[tuple[str, str], int] = {}
                        for address in group:
                            pool = hp.pool_of[hp.by_address[address]]
                            key = (pool.address, pool.sig.resource_class)
                            expected[key] = expected.get(key, 0) + 1
                        self.assertEqual(expected, counts)

    def test_anti_affinity_takes_distinct_pfs(self) -> None:
        hp = pools_mod.HostPools(synthetic.sriov_host('h', 3, 4, 1))
        rs = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'vf:3',
             'passthrough:vf_anti_affinity': 'true'}, ALIASES)
        chosen = summary_mod.Summary(hp).choose(rs)
        assert chosen is not None
        self.assertEqual([1, 1, 1], sorted(chosen[0].values()))
