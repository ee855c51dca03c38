"""PciPoolFilter and PciPoolWeigher, standalone and as nova loads them."""

from __future__ import annotations

import logging
import os
import types

import fixtures
import testtools
from stevedore import extension

from passthrough_plugin.scheduler import filter as filter_mod
from passthrough_plugin.scheduler import filters
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.scheduler import plugin
from passthrough_plugin.scheduler import weigher as weigher_mod
from passthrough_plugin.scheduler import weighers
from passthrough_plugin.store import base as store_base
from passthrough_plugin.store import file as file_store
from tests.unit.scheduler import fakes


UUID = '8f5b7a56-4c3e-4d0b-9d57-1f1e6f0a0c11'


def request_spec(extra_specs: dict[str, str], uuid: str = UUID,
                 hints: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
    from nova import objects

    objects.register_all()
    return objects.RequestSpec(
        flavor=objects.Flavor(extra_specs=extra_specs), instance_uuid=uuid,
        scheduler_hints=hints or {}, numa_topology=None)


def host_state(name: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(host=name, nodename=name)


NEEDS_NOVA = testtools.skipUnless(nova_adapter.available(),
                                  'nova is not installed (tox -e functional)')


class EntryPointTest(testtools.TestCase):
    """The installed entry points load: a typo in setup.cfg fails here."""

    def test_without_nova_the_plain_classes(self) -> None:
        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.scheduler.nova_adapter.available',
            lambda: False))
        self.assertEqual([filter_mod.PciPoolFilter], filters.all_filters())
        self.assertEqual([weigher_mod.PciPoolWeigher],
                         weighers.all_weighers())

    def test_installed_namespaces(self) -> None:
        for namespace, name, cls in (
                (store_base.NAMESPACE, 'file', file_store.FileReportStore),
                (filters.NAMESPACE, 'pci_pool', filter_mod.PciPoolFilter),
                (weighers.NAMESPACE, 'pci_pool',
                 weigher_mod.PciPoolWeigher)):
            manager = extension.ExtensionManager(namespace)
            self.assertIn(name, manager.names(), namespace)
            self.assertIs(cls, manager[name].plugin)

    @NEEDS_NOVA
    def test_all_filters_are_nova_filters(self) -> None:
        from nova.scheduler import filters as nova_filters

        classes = filters.all_filters()
        self.assertEqual(['PciPoolFilter'], [c.__name__ for c in classes])
        self.assertTrue(issubclass(classes[0], nova_filters.BaseHostFilter))
        self.assertTrue(issubclass(classes[0], filter_mod.PciPoolFilter))
        self.assertFalse(classes[0].RUN_ON_REBUILD)
        # The same class every time, as nova's loader expects.
        self.assertIs(classes[0], filters.all_filters()[0])

    @NEEDS_NOVA
    def test_all_weighers_are_nova_weighers(self) -> None:
        from nova.scheduler import weights as nova_weights

        classes = weighers.all_weighers()
        self.assertEqual(['PciPoolWeigher'], [c.__name__ for c in classes])
        self.assertTrue(issubclass(classes[0],
                                   nova_weights.BaseHostWeigher))

    @NEEDS_NOVA
    def test_nova_loader_takes_the_functions(self) -> None:
        from nova.scheduler import filters as nova_filters
        from nova.scheduler import weights as nova_weights

        found = nova_filters.HostFilterHandler().get_matching_classes(
            ['passthrough_plugin.scheduler.filters.all_filters'])
        self.assertEqual(['PciPoolFilter'], [c.__name__ for c in found])
        found = nova_weights.HostWeightHandler().get_matching_classes(
            ['passthrough_plugin.scheduler.weighers.all_weighers'])
        self.assertEqual(['PciPoolWeigher'], [c.__name__ for c in found])


@NEEDS_NOVA
class PluginTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.conf = fakes.config(self, self.path)
        self.store = file_store.FileReportStore(self.conf)
        self.store.publish(fakes.sriov_host('small', pfs=1, vfs=1))
        self.store.publish(fakes.sriov_host('big', pfs=2, vfs=4))
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.filter = nova_adapter.novaize(
            filter_mod.PciPoolFilter, 'filter')(self.conf)

    def test_nova_filter_passes_and_logs_the_reason(self) -> None:
        spec = request_spec({'pci_passthrough:alias': 'vf:2'})
        hosts = [host_state('small'), host_state('big'),
                 host_state('ghost')]
        passed = list(self.filter.filter_all(hosts, spec))
        self.assertEqual(['big'], [h.host for h in passed])
        self.assertIn('small rejected: small needs 2 x vf', self.log.output)
        self.assertIn('ghost rejected: ghost has no PCI report',
                      self.log.output)

    def test_bad_extra_spec_fails_every_host_with_one_reason(self) -> None:
        spec = request_spec({'pci_passthrough:alias': 'vf:two'})
        hosts = [host_state('small'), host_state('big')]
        self.assertEqual([], list(self.filter.filter_all(hosts, spec)))
        lines = [line for line in self.log.output.splitlines()
                 if 'pci_passthrough:alias' in line]
        self.assertEqual(1, len(lines), self.log.output)
        self.assertIn("count 'two' of 'vf'", lines[0])

    def test_rebuild_passes_without_fitting(self) -> None:
        spec = request_spec({'pci_passthrough:alias': 'vf:8'},
                            hints={'_nova_check_type': ['rebuild']})
        self.assertEqual(
            ['small'], [h.host for h in self.filter.filter_all(
                [host_state('small')], spec)])

    def test_store_change_seen_by_the_next_request(self) -> None:
        hosts = [host_state('small')]
        spec = request_spec({'pci_passthrough:alias': 'vf:1'})
        self.assertEqual(1, len(list(self.filter.filter_all(hosts, spec))))
        self.store.claim('small', 'other', ['0000:81:02.0'])
        spec = request_spec({'pci_passthrough:alias': 'vf:1'})
        self.assertEqual([], list(self.filter.filter_all(hosts, spec)))

    def test_weigher_pack_and_multiplier(self) -> None:
        self.store.publish(fakes.sriov_host('used', pfs=2, vfs=4,
                                            used_vfs=2))
        self.conf.set_override('weight_multiplier', 3.0,
                               'passthrough_scheduler')
        weigher = nova_adapter.novaize(
            weigher_mod.PciPoolWeigher, 'weigher')(self.conf)
        spec = request_spec({'pci_passthrough:alias': 'vf:1'})
        objs = [types.SimpleNamespace(obj=host_state(h))
                for h in ('big', 'used')]
        big, used = weigher.weigh_objects(objs, spec)
        self.assertGreater(used, big)
        self.assertEqual(3.0, weigher.weight_multiplier(objs[0].obj))
        aggregate = types.SimpleNamespace(
            metadata={'passthrough_weight_multiplier': '0.5'})
        in_aggregate = types.SimpleNamespace(host='big',
                                             aggregates=[aggregate])
        self.assertEqual(0.5, weigher.weight_multiplier(in_aggregate))

    def test_one_store_check_per_request_not_per_host(self) -> None:
        from tests.unit.scheduler.test_engine import CountingStore

        store = CountingStore(self.conf)
        self.filter.engine.store = store
        weigher = nova_adapter.novaize(
            weigher_mod.PciPoolWeigher, 'weigher')(self.conf)
        self.assertIs(self.filter.engine, weigher.engine)
        hosts = [host_state(h) for h in ('small', 'big', 'ghost')] * 20
        spec = request_spec({'pci_passthrough:alias': 'vf:1'})
        passed = list(self.filter.filter_all(hosts, spec))
        weigher.weigh_objects([types.SimpleNamespace(obj=h) for h in passed],
                              spec)
        self.assertEqual(40, len(passed))
        self.assertEqual(1, store.generation_calls)
        self.assertEqual(2, store.gets)  # the first load of small and big
        list(self.filter.filter_all(hosts, request_spec({})))
        self.assertEqual(2, store.generation_calls)
        # Nothing changed in the store: no report was read again.
        self.assertEqual(2, store.gets)

    def test_store_down_fails_every_host_with_one_reason(self) -> None:
        blocker = os.path.join(self.path, 'file')
        with open(blocker, 'w') as f:
            f.write('x')
        self.filter.engine.store.path = blocker
        spec = request_spec({'pci_passthrough:alias': 'vf:1'})
        hosts = [host_state('small'), host_state('big')] * 5
        self.assertEqual([], list(self.filter.filter_all(hosts, spec)))
        lines = [line for line in self.log.output.splitlines()
                 if 'unavailable' in line]
        self.assertEqual(1, len(lines), self.log.output)
        self.assertIn('Every host rejected: The file report store is '
                      'unavailable', lines[0])

    def test_inside_nova_reads_nova_conf(self) -> None:
        import nova.conf

        # nova hands filters no ConfigOpts: ours go onto nova's CONF, next
        # to nova's own [pci] alias (registered once, by nova).
        nova_filter = filters.all_filters()[0]()
        engine = nova_filter.engine
        self.assertIs(nova.conf.CONF, engine.conf)
        self.assertEqual('pack',
                         nova.conf.CONF.passthrough_scheduler.weigh_strategy)
        self.assertEqual({}, dict(engine.aliases))


def pci_spec(extra_specs: dict[str, str], count: int, request_id: str,
             uuid: str = UUID):  # type: ignore[no-untyped-def]
    """A RequestSpec as nova builds it with PCI in Placement."""
    from nova import objects

    spec = request_spec(extra_specs, uuid)
    spec.pci_requests = objects.InstancePCIRequests(requests=[
        objects.InstancePCIRequest(
            alias_name='vf', count=count, request_id=request_id,
            spec=[{'vendor_id': '8086', 'product_id': '154c'}])])
    return spec


def pci_host(name: str, candidates: list[dict[str, list[str]]],
             free: tuple[int, int] = (4, 4)) -> types.SimpleNamespace:
    """A nova HostState: pools per PF provider and its candidates."""
    pools = [
        {'rp_uuid': 'rp-%s-%d' % (name, n), 'address': '0000:%02x:00.0'
         % (0x81 + n), 'dev_type': 'type-VF', 'count': free[n],
         'numa_node': n, 'vendor_id': '8086', 'product_id': '154c'}
        for n in range(2)]
    return types.SimpleNamespace(
        host=name, nodename=name,
        pci_stats=types.SimpleNamespace(pools=pools),
        allocation_candidates=[
            {'allocations': {}, 'mappings': {
                g: ['rp-%s-%s' % (name, rp) for rp in rps]
                for g, rps in c.items()}} for c in candidates])


@NEEDS_NOVA
class CandidateModeTest(testtools.TestCase):
    """PCI in Placement: the filter prunes and orders the candidates."""

    REQ = 'a7d0c8f6-4b5e-4f39-9c1d-2e8b6a4f0d11'

    def setUp(self) -> None:
        super().setUp()
        from oslo_config import cfg

        self.path = self.useFixture(fixtures.TempDir()).path
        self.conf = fakes.config(self, self.path)
        self.conf.register_opts([cfg.BoolOpt('pci_in_placement')],
                                group='filter_scheduler')
        self.conf.set_override('pci_in_placement', True, 'filter_scheduler')
        self.store = file_store.FileReportStore(self.conf)
        self.store.publish(fakes.sriov_host('h1'))
        self.store.publish(fakes.sriov_host('h2'))
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.filter = nova_adapter.novaize(
            filter_mod.PciPoolFilter, 'filter')(self.conf)
        self.weigher = nova_adapter.novaize(
            weigher_mod.PciPoolWeigher, 'weigher')(self.conf)
        self.decided: list[str] = []
        engine = self.filter.engine
        decide = engine.decide

        def counting(host, request):  # type: ignore[no-untyped-def]
            self.decided.append(host)
            return decide(host, request)

        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.scheduler.engine.Engine.decide',
            lambda _self, host, request: counting(host, request)))

    def groups(self, count: int) -> list[str]:
        return ['%s-%d' % (self.REQ, i) for i in range(count)]

    def test_anti_affinity_keeps_distinct_pf_candidates(self) -> None:
        g0, g1 = self.groups(2)
        host = pci_host('h1', [{g0: ['0'], g1: ['0']},
                               {g0: ['0'], g1: ['1']},
                               {g0: ['1'], g1: ['1']}])
        spec = pci_spec({'pci_passthrough:alias': 'vf:2',
                         'passthrough:vf_anti_affinity': 'true'}, 2,
                        self.REQ)
        self.assertEqual([host], list(self.filter.filter_all([host], spec)))
        self.assertEqual([{g0: ['rp-h1-0'], g1: ['rp-h1-1']}],
                         [c['mappings'] for c in
                          host.allocation_candidates])
        # Every candidate breaks the rule: the host fails, with why.
        bad = pci_host('h2', [{g0: ['1'], g1: ['1']}])
        self.assertEqual([], list(self.filter.filter_all([bad], spec)))
        self.assertIn('h2 rejected: h2: 2 x vf with '
                      'passthrough:vf_anti_affinity: the candidate takes two '
                      'VFs of one PF', self.log.output)

    def test_pack_orders_and_the_weigher_reuses_the_decision(self) -> None:
        (g0,) = self.groups(1)
        # h1's first PF serves a VF already (nova counts 3 of 4 free).
        h1 = pci_host('h1', [{g0: ['1']}, {g0: ['0']}], free=(3, 4))
        h2 = pci_host('h2', [{g0: ['0']}, {g0: ['1']}])
        spec = pci_spec({'pci_passthrough:alias': 'vf:1'}, 1, self.REQ)
        passed = list(self.filter.filter_all([h1, h2], spec))
        self.assertEqual([h1, h2], passed)
        self.assertEqual({g0: ['rp-h1-0']},
                         h1.allocation_candidates[0]['mappings'])
        weights = self.weigher.weigh_objects(
            [types.SimpleNamespace(obj=h) for h in passed], spec)
        self.assertGreater(weights[0], weights[1])
        # Decided once per host, from the candidates: never by the engine
        # again for the weigher.
        self.assertEqual([], self.decided)

    def test_a_changed_report_is_parsed_once(self) -> None:
        # The engine's summary and the filter's candidate facts come from
        # one parse of each report it reads, at every refresh.
        parsed: list[str] = []
        from_report = pools_mod.HostPools.from_report.__func__

        def counting(cls, report):  # type: ignore[no-untyped-def]
            parsed.append(report.host)
            return from_report(cls, report)

        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.pci.pools.HostPools.from_report',
            classmethod(counting)))
        (g0,) = self.groups(1)
        spec = pci_spec({'pci_passthrough:alias': 'vf:1'}, 1, self.REQ)
        hosts = [pci_host('h1', [{g0: ['0']}]), pci_host('h2', [{g0: ['1']}])]
        self.assertEqual(hosts, list(self.filter.filter_all(hosts, spec)))
        self.assertEqual(['h1', 'h2'], sorted(parsed))
        # h2's report changes: only it is read again, once.
        self.store.publish(fakes.sriov_host('h2', used_vfs=1))
        del parsed[:]
        spec = pci_spec({'pci_passthrough:alias': 'vf:1'}, 1, self.REQ)
        hosts = [pci_host('h1', [{g0: ['0']}]), pci_host('h2', [{g0: ['1']}])]
        self.assertEqual(hosts, list(self.filter.filter_all(hosts, spec)))
        self.assertEqual(['h2'], parsed)
        engine = self.filter.engine
        facts = plugin.shared(engine).host_facts(
            engine, 'h2', engine.summary('h2').generation)
        self.assertEqual((3, 1), facts.vf_counts('0000:81:00.0'))

    def test_resize_where_nova_would_break_anti_affinity(self) -> None:
        from nova import objects

        g0, g1 = self.groups(2)
        host = pci_host('h1', [{g0: ['0'], g1: ['1']}])
        spec = pci_spec({'pci_passthrough:alias': 'vf:2',
                         'passthrough:vf_anti_affinity': 'true'}, 2,
                        self.REQ)
        self.assertEqual([host], list(self.filter.filter_all([host], spec)))
        # The same request as a resize: nova-compute would take both VFs
        # from its first pool.
        resize = pci_spec({'pci_passthrough:alias': 'vf:2',
                           'passthrough:vf_anti_affinity': 'true'}, 2,
                          self.REQ)
        resize.requested_destination = objects.Destination(
            allow_cross_cell_move=False)
        # The instance's pre-migrating resize record lives in nova's cell
        # database (the functional test reads the real one).
        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.scheduler.nova_adapter.is_move_claim',
            lambda spec: spec is resize))
        host = pci_host('h1', [{g0: ['0'], g1: ['1']}])
        self.assertEqual([], list(self.filter.filter_all([host], resize)))
        self.assertIn('on a resize, cold migration or evacuation nova 34 '
                      'picks the devices itself, ignoring the scheduler\'s '
                      'choice, and would take 2 VFs of PF 0000:81:00.0',
                      self.log.output)

    def test_devices_outside_placement_refuse_anti_affinity(self) -> None:
        # Candidates without the request's groups: nova kept the devices
        # (physical_network-tagged) out of Placement.
        host = pci_host('h1', [{}])
        spec = pci_spec({'pci_passthrough:alias': 'vf:2',
                         'passthrough:vf_anti_affinity': 'true'}, 2,
                        self.REQ)
        self.assertEqual([], list(self.filter.filter_all([host], spec)))
        self.assertIn('h1 rejected: h1: passthrough:vf_anti_affinity needs '
                      'the devices in Placement, and nova 34 keeps these out',
                      self.log.output)
        # Without the key the host is decided per host, as before.
        plain = pci_spec({'pci_passthrough:alias': 'vf:2'}, 2, self.REQ)
        self.assertEqual([host], list(self.filter.filter_all([host], plain)))

    def test_classic_mode_refuses_anti_affinity_and_says_why(self) -> None:
        self.conf.set_override('pci_in_placement', False,
                               'filter_scheduler')
        spec = request_spec({'pci_passthrough:alias': 'vf:2',
                             'passthrough:vf_anti_affinity': 'true'})
        hosts = [host_state('h1'), host_state('h2')]
        self.assertEqual([], list(self.filter.filter_all(hosts, spec)))
        self.assertIn('h1 rejected: h1: passthrough:vf_anti_affinity needs '
                      '[filter_scheduler] pci_in_placement = True',
                      self.log.output)
        # Without the key, classic mode decides hosts as before.
        plain = request_spec({'pci_passthrough:alias': 'vf:2'})
        passed = list(self.filter.filter_all(hosts, plain))
        self.weigher.weigh_objects(
            [types.SimpleNamespace(obj=h) for h in passed], plain)
        self.assertEqual(['h1', 'h2'], self.decided)


class StandaloneTest(testtools.TestCase):
    """Without nova: host names and engine Requests."""

    def setUp(self) -> None:
        super().setUp()
        path = self.useFixture(fixtures.TempDir()).path
        self.conf = fakes.config(self, path)
        store = file_store.FileReportStore(self.conf)
        store.publish(fakes.sriov_host('small', pfs=1, vfs=1))
        store.publish(fakes.sriov_host('big', pfs=2, vfs=4))
        store.publish(fakes.sriov_host('used', pfs=2, vfs=4, used_vfs=2))

    def test_filter_takes_names_and_requests(self) -> None:
        standalone = filter_mod.PciPoolFilter(self.conf)
        engine = standalone.engine
        engine.refresh()
        request = engine.request({'pci_passthrough:alias': 'vf:2'})
        self.assertEqual(['big', 'used'], list(standalone.filter_all(
            ['small', 'big', 'used'], request)))
        self.assertFalse(standalone.host_passes('small', request))

    def test_weigher_raw_weights(self) -> None:
        weigher = weigher_mod.PciPoolWeigher(self.conf)
        engine = weigher.engine
        engine.refresh()
        request = engine.request({'pci_passthrough:alias': 'vf:1'})
        objs = [types.SimpleNamespace(obj=h) for h in ('big', 'used')]
        big, used = weigher.weigh_objects(objs, request)
        self.assertGreater(used, big)
        self.assertEqual(used, weigher._weigh_object('used', request))
