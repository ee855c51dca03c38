"""The agent service: desired state at start, publish on change only."""

from __future__ import annotations

import os

import testtools
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin import exception
from passthrough_plugin.agent import service
from passthrough_plugin.conf import agent as agent_conf
from passthrough_plugin.conf import pci as pci_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.store import base as store_base
from passthrough_plugin.store import file as file_store
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import IGB_PF, IGB_VFS


class BrokenStore(file_store.FileReportStore):
    """A store that is down until ``up`` is set."""

    up = False

    def publish(self, report: service.report_mod.HostReport) -> int:
        if not self.up:
            raise exception.StoreUnavailable(store='test', reason='down')
        return super().publish(report)


class AgentServiceTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        conf = cfg.ConfigOpts()
        for module in (pci_conf, store_conf, agent_conf):
            module.register_opts(conf)
        self.cfg = self.useFixture(config_fixture.Config(conf))
        self.cfg.config(group='agent', host='compute-1',
                        state_path=self.host.state_path, scan_interval=7)
        self.cfg.config(group='file_store',
                        path=os.path.join(self.host.root, 'reports'))
        self.cfg.config(group='pci', device_spec=[
            '{"vendor_id": "8086", "product_id": "10ca"}'])
        self.conf = conf

    def agent(self, factory: service.StoreFactory =
              file_store.FileReportStore) -> service.Agent:
        return service.Agent(self.conf, self.host.fs, store_factory=factory)

    def test_run_applies_desired_state_then_publishes_on_change(self) -> None:
        self.cfg.config(group='sriov', vf_count=['enp1s0=2'])
        self.cfg.config(group='agent', bind_devices=[IGB_VFS[1]])
        agent = self.agent()
        sleeps: list[float] = []
        agent.run(iterations=3, sleep=sleeps.append)
        self.assertEqual('vfio-pci', self.host.driver(IGB_VFS[1]))
        self.assertEqual('igbvf', self.host.driver(IGB_VFS[0]))
        self.assertEqual([7, 7], sleeps)
        store: store_base.ReportStore = agent.store
        report = store.get('compute-1')
        self.assertEqual(IGB_VFS[:2],
                         sorted(d.address for d in report.devices))
        generation = store.generations()['compute-1']
        # Nothing changed: no publish. A hot-added VF: published.
        self.assertFalse(agent.tick())
        self.host.tree.remove_vfs(IGB_PF)
        self.host.tree.create_vfs(IGB_PF, 3)
        self.assertTrue(agent.tick())
        self.assertEqual(3, len(store.get('compute-1').devices))
        self.assertGreater(store.generations()['compute-1'], generation)

    def test_one_bad_item_does_not_stop_the_others(self) -> None:
        self.cfg.config(group='sriov', vf_count=['eth9=2', 'enp1s0=1'])
        self.cfg.config(group='agent', bind_devices=[
            '0000:7f:00.0', IGB_VFS[0]])
        problems = self.agent().apply_desired()
        self.assertEqual(2, len(problems), problems)
        self.assertIn('eth9', problems[0])
        self.assertIn('0000:7f:00.0', problems[1])
        self.assertEqual('vfio-pci', self.host.driver(IGB_VFS[0]))

    def test_store_down_is_retried_next_tick(self) -> None:
        agent = self.agent(BrokenStore)
        self.assertFalse(agent.tick())
        BrokenStore.up = True
        self.addCleanup(setattr, BrokenStore, 'up', False)
        self.assertTrue(agent.tick())
        self.assertFalse(agent.tick())

    def test_bad_bind_devices_value(self) -> None:
        self.cfg.config(group='agent', bind_devices=['3b:10'])
        e = self.assertRaises(exception.InvalidPciAddress, self.agent)
        self.assertIn('[agent] bind_devices', e.message)
