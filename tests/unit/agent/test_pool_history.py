"""The agent's pool history: nova's pool order across scans and reports."""

from __future__ import annotations

import json
import os

import fixtures
import testtools
from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.agent import pool_history
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.store import file as file_store

PF1, VF1 = '0000:81:00.0', '0000:81:02.0'
PF2, VF2 = '0000:82:00.0', '0000:82:02.0'
HOST = 'compute-1'
ALIASES = alias_mod.parse_aliases([
    '{"name": "pf", "vendor_id": "8086", "product_id": "1572", '
    '"device_type": "type-PF"}',
    '{"name": "vf", "vendor_id": "8086", "product_id": "154c", '
    '"device_type": "type-VF"}'])


def scan() -> report_mod.HostReport:
    """What discovery gives: every device available, no stamps."""
    devices = []
    for pf, vf in ((PF1, VF1), (PF2, VF2)):
        devices.append(report_mod.Device(pf, '8086', '1572', 'type-PF'))
        devices.append(report_mod.Device(vf, '8086', '154c', 'type-VF',
                                         parent_address=pf))
    return report_mod.HostReport(HOST, devices=devices)


def wanted(name: str) -> request_mod.RequestSet:
    return request_mod.RequestSet.from_extra_specs(
        {'pci_passthrough:alias': '%s:1' % name}, ALIASES)


class DownStore(file_store.FileReportStore):
    def get(self, host: str) -> report_mod.HostReport:
        raise exception.StoreUnavailable(store='test', reason='down')


class PoolHistoryTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.conf = cfg.ConfigOpts()
        self.store = file_store.FileReportStore(self.conf)
        self.conf.set_override('path', os.path.join(self.dir, 'reports'),
                               group='file_store')
        self.store.path = self.conf.file_store.path
        self.path = pool_history.path_for(
            os.path.join(self.dir, 'agent-state.json'))
        self.history = pool_history.PoolHistory(self.path)

    def publish(self, history: pool_history.PoolHistory | None = None
                ) -> report_mod.HostReport:
        report = (history or self.history).stamp(scan(), self.store)
        self.store.publish(report)
        return report

    def next_pf(self) -> str:
        pools = pools_mod.HostPools.from_report(self.store.get(HOST))
        fit = pools.fit(wanted('pf'))
        self.assertTrue(fit.ok, fit.detail)
        return fit.addresses[0]

    def vf_round_trip(self) -> None:
        """A VF of PF1 claimed then released, each seen by a report: PF1's
        pool left nova's list (its PF became a dependant) and came back at
        the end."""
        self.store.claim(HOST, 'a', [VF1])
        self.publish()
        self.store.release(HOST, 'a')
        self.publish()

    def test_history_survives_reports(self) -> None:
        first = self.publish()
        self.assertTrue(pool_history.stamped(first))
        self.assertEqual(PF1, self.next_pf())
        self.vf_round_trip()
        # nova now hands out the other PF
        self.assertEqual(PF2, self.next_pf())
        published = self.store.get(HOST)
        self.assertTrue(all(d.join_stamp is not None
                            for d in published.devices))

    def test_unstamped_report_is_a_compute_start(self) -> None:
        self.publish()
        self.vf_round_trip()
        # what every report was before the history: nova's order lost
        self.store.publish(scan())
        self.assertEqual(PF1, self.next_pf())

    def test_only_a_reset_starts_the_history_again(self) -> None:
        self.publish()
        self.vf_round_trip()
        # another process (a one-shot command) on the same file goes on
        self.publish(pool_history.PoolHistory(self.path))
        self.assertEqual(PF2, self.next_pf())
        self.history.reset()
        self.assertFalse(os.path.exists(self.path))
        self.publish()
        self.assertEqual(PF1, self.next_pf())
        self.history.reset()  # no file: nothing to do

    def test_devices_in_use_at_a_start_are_not_pooled(self) -> None:
        self.publish()
        self.store.claim(HOST, 'a', [VF1])
        self.history.reset()
        report = self.publish()
        by_address = {d.address: d for d in report.devices}
        # VF1 in use and PF1 its dependant: neither joined a pool
        self.assertIsNone(by_address[VF1].join_stamp)
        self.assertIsNone(by_address[PF1].join_stamp)
        self.store.release(HOST, 'a')
        self.publish()
        # PF1's pool was listed only now: after PF2's
        self.assertEqual(PF2, self.next_pf())

    def test_a_new_device_joins_last(self) -> None:
        self.publish()
        self.vf_round_trip()
        report = scan()
        report.devices.append(report_mod.Device(
            '0000:83:00.0', '8086', '1572', 'type-PF'))
        stamped = self.history.stamp(report, self.store)
        stamps = {d.address: d.join_stamp or 0 for d in stamped.devices}
        self.assertGreater(stamps['0000:83:00.0'], max(
            s for a, s in stamps.items() if a != '0000:83:00.0'))

    def test_store_down_keeps_the_history(self) -> None:
        self.publish()
        self.store.claim(HOST, 'a', [VF1])
        self.publish()
        before = json.loads(open(self.path).read())
        down = DownStore(self.conf)
        again = self.history.stamp(scan(), down)
        self.assertEqual(
            [(d.get('pool_stamp'), d.get('join_stamp'))
             for d in before['devices']],
            [(d.pool_stamp, d.join_stamp) for d in again.devices])

    def test_unusable_history_file_is_a_start(self) -> None:
        with open(self.path, 'w') as out:
            out.write('{"not": "a report"}')
        report = self.history.stamp(scan(), self.store)
        # a compute start: each device its own pool, in address order
        self.assertEqual([(0, 1), (2, 3), (4, 5), (6, 7)], [
            (d.pool_stamp, d.join_stamp) for d in report.devices])
        self.assertEqual(HOST, json.loads(open(self.path).read())['host'])


class AgentHistoryTest(testtools.TestCase):
    """The agent service stamps what it publishes; its start resets."""

    def setUp(self) -> None:
        super().setUp()
        from oslo_config import fixture as config_fixture

        from passthrough_plugin.conf import agent as agent_conf
        from passthrough_plugin.conf import pci as pci_conf
        from passthrough_plugin.conf import store as store_conf
        from tests.unit.agent import fixtures as agent_fixtures
        self.host = self.useFixture(agent_fixtures.FakeHost())
        conf = cfg.ConfigOpts()
        for module in (pci_conf, store_conf, agent_conf):
            module.register_opts(conf)
        cfg_fixture = self.useFixture(config_fixture.Config(conf))
        cfg_fixture.config(group='agent', host=HOST,
                           state_path=self.host.state_path)
        cfg_fixture.config(group='file_store',
                           path=os.path.join(self.host.root, 'reports'))
        cfg_fixture.config(group='pci', device_spec=[
            '{"vendor_id": "8086"}'])
        cfg_fixture.config(group='sriov', vf_count=['enp1s0=2'])
        self.conf = conf
        self.vfs = agent_fixtures.IGB_VFS[:2]

    def test_claims_are_published_with_the_history(self) -> None:
        from passthrough_plugin.agent import service
        agent = service.Agent(self.conf, self.host.fs,
                              store_factory=file_store.FileReportStore)
        agent.run(iterations=1, sleep=lambda s: None)
        history = pool_history.path_for(self.host.state_path)
        self.assertTrue(os.path.exists(history))
        store = agent.store
        self.assertTrue(pool_history.stamped(store.get(HOST)))
        self.assertFalse(agent.tick())  # nothing changed
        store.claim(HOST, 'a', [self.vfs[0]])
        # nova's view changed (the VF and its PF left the pools): the
        # report is published again, with the claim carried
        self.assertTrue(agent.tick())
        published = {d.address: d for d in store.get(HOST).devices}
        self.assertIsNone(published[self.vfs[0]].join_stamp)
        self.assertEqual('claimed', published[self.vfs[0]].status)
        self.assertIsNotNone(published[self.vfs[1]].join_stamp)
        store.release(HOST, 'a')
        self.assertTrue(agent.tick())
        after = {d.address: d for d in store.get(HOST).devices}
        # the released VF joined its pool last
        self.assertGreater(after[self.vfs[0]].join_stamp or 0,
                           after[self.vfs[1]].join_stamp or 0)
        # a restart of the service is a compute start: address order
        again = service.Agent(self.conf, self.host.fs,
                              store_factory=file_store.FileReportStore)
        again.run(iterations=1, sleep=lambda s: None)
        restarted = {d.address: d for d in again.store.get(HOST).devices}
        self.assertLess(restarted[self.vfs[0]].join_stamp or 0,
                        restarted[self.vfs[1]].join_stamp or 0)


class AppliesTest(testtools.TestCase):

    def test_only_a_store_that_keeps_the_report(self) -> None:
        conf = cfg.ConfigOpts()
        self.assertTrue(pool_history.applies(
            file_store.FileReportStore(conf)))

        class Other:
            def get(self, host: str) -> None:
                raise AssertionError('a store without reports is not read')

        history = pool_history.PoolHistory(os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'h'))
        report = history.stamp(scan(), Other())  # type: ignore[arg-type]
        self.assertFalse(pool_history.stamped(report))
        self.assertFalse(os.path.exists(history.path))
