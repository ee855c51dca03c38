"""[passthrough_scheduler] missing_report: hosts the agent never reported."""

from __future__ import annotations

import logging
import types

import fixtures
import testtools

from passthrough_plugin.pci import explain
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.scheduler import weigher as weigher_mod
from passthrough_plugin.store import file as file_store
from tests.unit.scheduler import fakes

VF2 = {'pci_passthrough:alias': 'vf:2'}
ENGINE_LOG = 'passthrough_plugin.scheduler.engine'


class MissingReportTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.log = self.useFixture(fixtures.FakeLogger(
            name=ENGINE_LOG, level=logging.DEBUG))

    def engine(self, policy: str) -> engine_mod.Engine:
        conf = fakes.config(self, self.path, missing_report=policy)
        store = file_store.FileReportStore(conf)
        store.publish(fakes.sriov_host('known', pfs=1, vfs=4))
        engine = engine_mod.Engine(conf, store)
        engine.refresh()
        return engine

    def test_pass_leaves_a_device_request_to_nova(self) -> None:
        # nova 34's own PCI tests run with no agent at all: every one of
        # their hosts must pass, whatever the flavor asks for.
        engine = self.engine('pass')
        for extra_specs in (VF2, {'pci_passthrough:alias': 'pf:1,gpu:1'},
                            {}):
            decision = engine.decide('ghost', engine.request(extra_specs))
            self.assertTrue(decision.ok, extra_specs)
            self.assertEqual(explain.NO_REPORT, decision.reason)

    def test_fail_refuses_with_the_reason_by_name(self) -> None:
        engine = self.engine('fail')
        for extra_specs in (VF2, {}):
            decision = engine.decide('ghost', engine.request(extra_specs))
            self.assertFalse(decision.ok)
            self.assertEqual(explain.NO_REPORT, decision.reason)
            self.assertEqual('ghost has no PCI report in the file report '
                             'store', decision.detail)

    def test_pass_is_logged_once_per_host_per_request(self) -> None:
        engine = self.engine('pass')
        request = engine.request(VF2)
        for _ in range(3):
            engine.decide('ghost', request)
            engine.decide('other', request)
        line = ("ghost has no PCI report in the file report store: decided "
                "on nova's data alone ([passthrough_scheduler] "
                "missing_report = pass)")
        self.assertEqual(1, self.log.output.count(line), self.log.output)
        self.assertEqual(1, self.log.output.count('other has no PCI report'))
        # The next request (its refresh) says it again.
        engine.refresh_for(object(), 60.0)
        engine.decide('ghost', request)
        self.assertEqual(2, self.log.output.count(line))

    def test_fail_logs_nothing_at_debug(self) -> None:
        engine = self.engine('fail')
        engine.decide('ghost', engine.request(VF2))
        self.assertNotIn('ghost', self.log.output)

    def test_unreported_host_ranks_below_every_reported_one(self) -> None:
        engine = self.engine('pass')
        request = engine.request({'pci_passthrough:alias': 'vf:1'})
        self.assertEqual(float('-inf'), engine.raw_weight('ghost', request))
        self.assertGreater(engine.raw_weight('known', request),
                           float('-inf'))
        self.assertEqual(float('-inf'), engine.raw_weight(
            'ghost', request, strategy='spread'))

    def test_only_unreported_hosts_weigh_alike(self) -> None:
        # nova's own tests: no host has a report, so the weigher is
        # neutral and nova's weighers alone order the hosts.
        engine = self.engine('pass')
        request = engine.request(VF2)
        self.assertEqual([0.0, 0.0, 0.0],
                         engine.weigh(['a', 'b', 'c'], request))

    def test_unreported_hosts_do_not_take_the_fast_weigh_path(self) -> None:
        engine = self.engine('pass')
        store = engine.store
        store.publish(fakes.sriov_host('big', pfs=2, vfs=4))
        engine.refresh()
        request = engine.request({'pci_passthrough:alias': 'vf:1'})
        weights = dict(zip(['ghost', 'known', 'big'], engine.weigh(
            ['ghost', 'known', 'big'], request), strict=True))
        self.assertEqual(0.0, weights['ghost'])
        self.assertNotEqual(weights['known'], weights['big'])

    def test_weigher_puts_unreported_hosts_just_below_the_lowest(self) -> None:
        engine = self.engine('pass')
        engine.store.publish(fakes.sriov_host('big', pfs=2, vfs=4))
        engine.refresh()
        weigher = weigher_mod.PciPoolWeigher(engine.conf)
        weigher._engine = engine
        request = engine.request({'pci_passthrough:alias': 'vf:1'})
        hosts = ['ghost', 'known', 'big']
        raw = dict(zip(hosts, weigher.weigh_objects(
            [types.SimpleNamespace(obj=h) for h in hosts], request),
            strict=True))
        known = [engine.raw_weight(h, request) for h in ('known', 'big')]
        self.assertEqual(known, [raw['known'], raw['big']])
        self.assertEqual(min(known) - 1.0, raw['ghost'])
        # Every host reported: the raw figures as they are.
        self.assertEqual(known, weigher.weigh_objects(
            [types.SimpleNamespace(obj=h) for h in ('known', 'big')],
            request))
