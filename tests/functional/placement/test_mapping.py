"""The pure report <-> providers mapping and the candidates query."""

from __future__ import annotations

import itertools

import testtools

from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.conf import placement_store as placement_store_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as core_summary
from passthrough_plugin.pci import synthetic
from passthrough_plugin.store import loader
from passthrough_plugin.store.placement import store as placement_store
from passthrough_plugin.store.placement import claims
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement import query
from tests.functional.placement import base

ALIASES = alias_mod.parse_aliases(base.ALIASES + [
    '{"name": "vfn1", "vendor_id": "8086", "product_id": "154c", '
    '"device_type": "type-VF", "numa_policy": "required"}'])


def views(report):  # type: ignore[no-untyped-def]
    out = []
    for address, want in mapping.desired(report).items():
        out.append(mapping.ProviderView(
            mapping.provider_uuid(want.name), address,
            {rc: (inv['total'] - inv['reserved'], 0)
             for rc, inv in want.inventories.items()},
            frozenset(want.traits)))
    return out


class RoundTripTest(testtools.TestCase):
    """Facts read back from provider traits decide as the device report."""

    def test_same_decisions_as_the_device_level_core(self) -> None:
        report = synthetic.sriov_host('cn1', pfs=4, vfs=3, numa_nodes=2,
                                      tags={'physical_network': 'net1'})
        facts = claims.facts_of('cn1', views(report))
        pooled = core_summary.Summary.from_pools(
            'cn1', 0, facts.pools, facts.sockets)
        devices = core_summary.Summary(pools_mod.HostPools.from_report(
            report))
        self.assertEqual({0: 0, 1: 1}, facts.sockets)
        checked = 0
        for name, count, anti, cells in itertools.product(
                ('vf', 'pf', 'vfn1'), (1, 2, 3, 5, 7, 13), (False, True),
                (None, [0], [1])):
            specs = {'pci_passthrough:alias': '%s:%d' % (name, count)}
            if anti:
                specs['passthrough:vf_anti_affinity'] = 'true'
            requests = request_mod.RequestSet.from_extra_specs(specs,
                                                               ALIASES)
            self.assertEqual(devices.fits(requests, cells),
                             pooled.fits(requests, cells),
                             (specs, cells))
            checked += 1
        self.assertEqual(108, checked)

    def test_used_vfs_block_the_pf_and_a_taken_pf_blocks_its_vfs(self) -> None:
        report = synthetic.sriov_host('cn1', pfs=1, vfs=3)
        (view,) = views(report)
        vf_rc = view.vf_rc()
        self.assertIsNotNone(vf_rc)
        used = mapping.ProviderView(view.uuid, view.address, {
            rc: (cap, 1 if rc == vf_rc else 0)
            for rc, (cap, _u) in view.resources.items()}, view.traits)
        free = {p.dev_type: p.free for p in mapping.pool_facts(used)}
        self.assertEqual({'type-VF': 2, 'type-PF': 0}, free)
        facts = claims.facts_of('cn1', [view])
        pf_rc = [p.resource_class for p in facts.pools
                 if p.dev_type == 'type-PF'][0]
        body = claims.allocations(facts, [{(view.address, pf_rc): 1}])
        self.assertEqual({view.uuid: {pf_rc: 1, vf_rc: 3}}, body)


class QueryTest(testtools.TestCase):

    def groups(self, specs):  # type: ignore[no-untyped-def]
        return query.groups(request_mod.RequestSet.from_extra_specs(
            specs, ALIASES))

    def test_one_group_of_one_per_device(self) -> None:
        groups, policy = self.groups({'pci_passthrough:alias': 'vf:2,pf:1'})
        self.assertEqual('none', policy)
        self.assertEqual({'_R0N0': {base.VF_RC: 1}, '_R0N1': {base.VF_RC: 1},
                          '_R1N0': {base.PF_RC: 1}},
                         {k: dict(g.resources) for k, g in groups.items()})
        self.assertEqual([mapping.DEVICE], list(groups['_R0N0'].required))

    def test_anti_affinity_isolates(self) -> None:
        groups, policy = self.groups({
            'pci_passthrough:alias': 'vf:2',
            'passthrough:vf_anti_affinity': 'true'})
        self.assertEqual('isolate', policy)
        self.assertEqual(2, len(groups))

    def test_large_requests_stay_one_group(self) -> None:
        groups, _policy = self.groups({'pci_passthrough:alias': 'vf:9'})
        self.assertEqual({'_R0': {base.VF_RC: 9}},
                         {k: dict(g.resources) for k, g in groups.items()})

    def test_provider_names(self) -> None:
        name = mapping.provider_name('cn:1', '0000:10:00.0')
        self.assertEqual(('cn:1', '0000:10:00.0'), mapping.split_name(name))
        self.assertIsNone(mapping.split_name('cn1_0000:10:00.0'))
        self.assertEqual(mapping.provider_uuid(name),
                         mapping.provider_uuid(name))

    def test_not_expressible(self) -> None:
        aliases = alias_mod.parse_aliases([
            '{"name": "a", "vendor_id": "8086", "product_id": "0001"}',
            '{"name": "a", "resource_class": "CUSTOM_X"}'])
        requests = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'a:1'}, aliases)
        error = self.assertRaises(
            exception.PlacementRequestNotExpressible, query.groups,
            requests)
        self.assertIn('CUSTOM_PCI_8086_0001, CUSTOM_X', str(error))


class EntryPointTest(testtools.TestCase):

    def test_installed_entry_point_loads_the_store(self) -> None:
        # A stale install (entry points from before the placement store)
        # is a failure to fix with `pip install -e .`, never a skip.
        self.assertIn('placement', loader.available(),
                      'the installed passthrough_plugin.report_stores entry '
                      'points lack "placement": pip install -e . again')
        conf = cfg.ConfigOpts()
        store_conf.register_opts(conf)
        conf.set_override('driver', 'placement', group='report_store')
        store = loader.load_store(conf)
        self.assertIsInstance(store, placement_store.PlacementReportStore)
        self.assertEqual(1000, conf.placement_store.candidate_limit)

    def test_options_for_the_sample(self) -> None:
        (group, opts), = placement_store_conf.list_opts().items()
        self.assertEqual('placement_store', group.name)
        self.assertIn('candidate_limit', [o.name for o in opts])
