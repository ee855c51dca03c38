"""The hotplug pool in the report, doctor's overlap check, and host-side
hotplug in ``run``: devices that appear, and held devices that vanish."""

from __future__ import annotations

import os
import textwrap

import fixtures
import oslo_messaging
import testtools
from oslo_config import cfg
from oslo_messaging.notify import _impl_test

from passthrough_plugin import conf as conf_mod
from passthrough_plugin import exception
from passthrough_plugin.agent import doctor
from passthrough_plugin.agent import hotplug_pool
from passthrough_plugin.agent import service
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.store import file as file_store
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.lifecycle import fakes

GPU = '0000:5e:00.0'
HOST = 'compute-1'
GPU_ALIAS = ('{"name": "gpu", "vendor_id": "10de", "product_id": "20b5", '
             '"device_type": "type-PCI"}')


class HostWithPool(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.host.tree.add_driver('nouveau', (('10de', '20b5'),))
        self.host.tree.add_device(GPU, vendor='10de', product='20b5',
                                  class_code='030200', driver='nouveau',
                                  numa_node=0)
        self.config = os.path.join(self.host.root, 'agent.conf')

    def agent(self, pci: str, pool: str, extra: str = ''
              ) -> service.Agent:
        with open(self.config, 'w') as out:
            out.write(textwrap.dedent('''\
                [agent]
                host = %s
                [file_store]
                path = %s/reports
                [pci]
                device_spec = %s
                alias = %s
                [hotplug]
                device_spec = %s
                [lifecycle]
                connection = sqlite:///%s/ledger.sqlite
                ''') % (HOST, self.host.root, pci, GPU_ALIAS, pool,
                        self.host.root) + textwrap.dedent(extra))
        conf = cfg.ConfigOpts()
        conf_mod.register_all(conf)
        conf([], project='passthrough-plugin',
             default_config_files=[self.config])
        self.conf = conf
        return service.Agent(conf, self.host.fs,
                             file_store.FileReportStore,
                             state_path=self.host.state_path)


class PoolReportTest(HostWithPool):

    def test_pool_devices_are_marked(self) -> None:
        agent = self.agent('{"vendor_id": "8086", "product_id": "10c9"}',
                           '{"vendor_id": "10de"}')
        report = agent.report()
        self.assertEqual({'0000:01:00.0': False, GPU: True},
                         {d.address: d.hotplug_pool for d in report.devices})
        self.assertTrue(report.to_dict()['devices'][1]['hotplug_pool'])
        self.assertNotIn('hotplug_pool', report.to_dict()['devices'][0])
        check = hotplug_pool.check_overlap(agent.fs, agent.specs,
                                           agent.hotplug_specs)
        self.assertEqual(doctor.PASS, check.status)

    def test_headroom_counts_the_pool_flavor_does_not(self) -> None:
        agent = self.agent('{"vendor_id": "8086", "product_id": "10c9"}',
                           '{"vendor_id": "10de"}')
        pools = pools_mod.HostPools.from_report(agent.report())
        aliases = alias_mod.parse_aliases([GPU_ALIAS])

        def fit(specs: dict[str, str]) -> pools_mod.Fit:
            return pools.fit(request_mod.RequestSet.from_extra_specs(
                specs, aliases))
        self.assertFalse(fit({'pci_passthrough:alias': 'gpu:1'}).ok)
        self.assertTrue(fit({'passthrough:hotplug_headroom': 'gpu:1'}).ok)
        refused = fit({'passthrough:hotplug_headroom': 'gpu:2'})
        self.assertEqual('hotplug_headroom', refused.reason)

    def test_device_in_both_specs_is_nova_s_and_doctor_warns(self) -> None:
        agent = self.agent('{"vendor_id": "10de"}', '{"address": "%s"}'
                           % GPU)
        gpu = agent.report().device(GPU)
        assert gpu is not None
        self.assertFalse(gpu.hotplug_pool)
        check = hotplug_pool.check_overlap(agent.fs, agent.specs,
                                           agent.hotplug_specs)
        self.assertEqual((doctor.WARN, 'hotplug-pool'),
                         (check.status, check.name))
        self.assertIn(GPU, check.detail)

    def test_bad_pool_spec_names_the_option(self) -> None:
        error = self.assertRaises(
            exception.InvalidDeviceSpec, self.agent, '{"vendor_id": "10de"}',
            '{"vendor_id": "xyz"}')
        self.assertIn('[hotplug] device_spec', str(error))


class HostSideHotplugTest(HostWithPool):
    """``run``'s scan loop notices devices that come and go."""

    def setUp(self) -> None:
        super().setUp()
        oslo_messaging.set_transport_defaults('passthrough')
        _impl_test.reset()
        self.addCleanup(_impl_test.reset)
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='passthrough_plugin', level=10,
            format='%(levelname)s %(message)s'))
        self.agent_ = self.agent(
            '{"vendor_id": "8086", "product_id": "10c9"}',
            '{"vendor_id": "10de"}', '''\
            [lifecycle]
            notifications = true
            [oslo_messaging_notifications]
            transport_url = fake:/
            driver = test
            ''')
        self.ledger = ledger_mod.Ledger.from_conf(self.conf)
        self.addCleanup(self.ledger.close)

    def test_new_device_is_published_at_the_next_scan(self) -> None:
        self.assertTrue(self.agent_.tick())
        self.assertFalse(self.agent_.tick())
        self.host.tree.add_device('0000:5f:00.0', vendor='10de',
                                  product='20b5', class_code='030200',
                                  driver='nouveau', numa_node=1)
        self.assertTrue(self.agent_.tick())
        report = self.agent_.store.get(HOST)
        self.assertTrue(report.device('0000:5f:00.0').hotplug_pool)
        self.assertIn('INFO PCI device 0000:5f:00.0 appeared on %s' % HOST,
                      self.logs.output)

    def test_held_device_that_vanishes_closes_its_interval(self) -> None:
        self.agent_.tick()
        pools = pools_mod.HostPools.from_report(self.agent_.store.get(HOST))
        aliases = alias_mod.parse_aliases([GPU_ALIAS])
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    request_mod.RequestSet())
        with self.ledger.begin() as txn:
            hotplug_id = txn.add_hotplug(fakes.INSTANCE, 'gpu',
                                         self.ledger.now())
            txn.start(txn.instance(fakes.INSTANCE), HOST, GPU,
                      resource_class='CUSTOM_PCI_10DE_20B5',
                      source='hotplug', at=self.ledger.now(), alias='gpu',
                      hotplug_id=hotplug_id)
        self.assertIn('gpu', aliases)
        _impl_test.reset()
        self.host.tree.remove_device(GPU)
        self.assertTrue(self.agent_.tick())
        interval, = self.ledger.intervals(instance=fakes.INSTANCE)
        self.assertEqual('device_removed', interval.end_reason)
        self.assertEqual([], self.ledger.hotplugs(fakes.INSTANCE))
        self.assertIn('ERROR PCI device %s of %s held by instance %s '
                      '(hotplug) vanished from the host; its interval is '
                      'closed with reason device_removed' % (
                          GPU, HOST, fakes.INSTANCE),
                      self.logs.output)
        (_ctxt, message, priority, _retry), = _impl_test.NOTIFICATIONS
        self.assertEqual(('passthrough.device.detach', 'INFO',
                          'device_removed', GPU),
                         (message['event_type'], priority,
                          message['payload']['end_reason'],
                          message['payload']['host_address']))

    def test_vanished_device_nobody_holds_is_only_republished(self) -> None:
        self.agent_.tick()
        self.host.tree.remove_device(GPU)
        self.assertTrue(self.agent_.tick())
        self.assertIsNone(self.agent_.store.get(HOST).device(GPU))
        self.assertEqual([], _impl_test.NOTIFICATIONS)
        self.assertIn('WARNING PCI device %s disappeared from %s' % (
            GPU, HOST), self.logs.output)
