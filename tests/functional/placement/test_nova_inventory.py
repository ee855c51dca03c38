"""[placement_store] inventory = nova against a real Placement: no providers
of ours, the agent's facts in the host reports."""

from __future__ import annotations

import uuid

import fixtures

from passthrough_plugin import exception
from passthrough_plugin.agent import service
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.store import base as store_base
from passthrough_plugin.store import loader
from passthrough_plugin.store import nova_inventory
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement import sync
from tests.functional.placement import base

NOVA_RC = 'CUSTOM_PCI_8086_154C'


class NovaInventoryTest(base.PlacementTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.reports = self.useFixture(fixtures.TempDir()).path
        self.conf.set_override('path', self.reports, group='file_store')
        self.log = self.useFixture(fixtures.FakeLogger(
            name='passthrough_plugin.store.nova_inventory'))

    def nova_store(self) -> nova_inventory.NovaInventoryStore:
        self.conf.set_override('inventory', 'nova', group='placement_store')
        return nova_inventory.NovaInventoryStore(self.conf, client=self.client)

    def nova_compute(self, host: str, pci: bool = True) -> str:
        """What nova-compute writes: the compute node provider and, with
        [pci] report_in_placement, one PCI provider per PF."""
        root = self.client.create_provider(host, uuid=str(uuid.uuid4()))
        if pci:
            rp = self.client.create_provider(
                '%s_0000:10:00.0' % host, uuid=str(uuid.uuid4()),
                parent_provider_uuid=root.uuid)
            self.client.ensure_resource_class(NOVA_RC)
            self.client.set_inventories(rp.uuid, {NOVA_RC: {
                'total': 3, 'reserved': 0, 'min_unit': 1, 'max_unit': 3,
                'step_size': 1, 'allocation_ratio': 1.0}})
            self.client.set_traits(rp.uuid, [mapping.NOVA_MANAGED])
        return root.uuid

    def names(self, root: str) -> set[str]:
        return {rp.name for rp in self.client.list_providers(in_tree=root)}

    def test_loader_picks_the_mode(self) -> None:
        self.assertIsInstance(loader.load_store(self.conf),
                              store_base.PoolLevelStore)
        self.assertIn('inventory = own', self.log.output)
        self.conf.set_override('inventory', 'nova', group='placement_store')
        store = loader.load_store(self.conf)
        self.assertIsInstance(store, nova_inventory.NovaInventoryStore)
        # Device-level reports: the scheduler joins them with nova's pools.
        self.assertNotIsInstance(store, store_base.PoolLevelStore)
        self.assertIn('inventory = nova', self.log.output)
        self.assertIn(self.reports, self.log.output)

    def test_publish_writes_no_provider_and_keeps_the_facts(self) -> None:
        root = self.nova_compute('cn1')
        before = self.names(root)
        report = base.scarce_host('cn1', vfs=3)
        store = self.nova_store()
        generation = store.publish(report)
        self.assertEqual(before, self.names(root))
        self.assertEqual([], sync.with_trait(self.client, mapping.DEVICE))
        self.assertEqual({'cn1': generation}, store.generations())
        got = store.get('cn1')
        want = {d.address: (d.iommu_group, d.parent_address, d.dev_type)
                for d in report.devices}
        self.assertEqual(want, {d.address: (d.iommu_group, d.parent_address,
                                            d.dev_type) for d in got.devices})
        self.assertIn('nova reports 1 PCI providers', self.log.output)
        # Publishing again looks at Placement no more and still writes none.
        self.assertGreater(store.publish(report), generation)
        self.assertEqual(1, self.log.output.count('nova reports'))
        self.assertEqual(before, self.names(root))

    def test_providers_of_an_earlier_own_run_are_deleted(self) -> None:
        own = self.store  # [placement_store] inventory = own (default)
        root = self.nova_compute('cn1', pci=False)
        own.publish(base.scarce_host('cn1', vfs=3))
        theirs = {n for n in self.names(root) if mapping.split_name(n)}
        self.assertEqual({'cn1:passthrough:0000:10:00.0',
                          'cn1:passthrough:0000:20:00.0'}, theirs)
        store = self.nova_store()
        store.publish(base.scarce_host('cn1', vfs=3))
        self.assertEqual({'cn1'}, self.names(root))
        for name in sorted(theirs):
            self.assertIn('deleted provider %s' % name, self.log.output)
        # nova has no PCI provider under cn1: the operator is told.
        self.assertIn('set [pci] report_in_placement = True',
                      self.log.output)

    def test_allocated_leftover_is_kept_and_named(self) -> None:
        own = self.store
        root = self.nova_compute('cn1', pci=False)
        own.publish(base.scarce_host('cn1', vfs=3))
        consumer = base.new_consumer()
        own.claim('cn1', consumer, ['0000:10:00.0'])
        self.nova_store().publish(base.scarce_host('cn1', vfs=3))
        self.assertEqual({'cn1', 'cn1:passthrough:0000:10:00.0'},
                         self.names(root))
        self.assertIn('provider cn1:passthrough:0000:10:00.0 of an earlier '
                      '[placement_store] inventory = own run is still '
                      'allocated', self.log.output)

    def test_unreachable_placement_stores_the_report_and_looks_later(
            self) -> None:
        root = self.nova_compute('cn1', pci=False)
        self.store.publish(base.scarce_host('cn1', vfs=3))  # own: leftovers
        store = self.nova_store()
        self.server.stop()
        report = base.scarce_host('cn1', vfs=3)
        store.publish(report)
        self.assertEqual(['cn1'], store.hosts())
        self.assertIn('cannot look at Placement', self.log.output)
        self.server.start()
        # The next publish looks: the leftovers go.
        store.publish(report)
        self.assertEqual({'cn1'}, self.names(root))

    def test_own_mode_refuses_a_host_nova_reports(self) -> None:
        self.nova_compute('cn1')
        exc = self.assertRaises(exception.NovaPciInPlacement,
                                self.store.publish,
                                base.scarce_host('cn1', vfs=3))
        self.assertIn('[placement_store] inventory = nova', exc.message)
        self.assertIn('cn1_0000:10:00.0', exc.message)

    def test_agent_publishes_its_facts_and_no_provider(self) -> None:
        """The agent's scan of a host: its report (IOMMU groups, drivers,
        parents) reaches the store, Placement keeps only what nova-compute
        wrote."""
        tree = self.igb_host('cn1')
        pf = base.PF_ADDRESS
        root = self.nova_compute('cn1')
        before = self.names(root)
        store = self.nova_store()
        agent = service.Agent(
            self.conf, sysfs_mod.Sysfs(str(tree.sys), str(tree.proc)),
            store_factory=lambda conf: store)
        self.assertTrue(agent.tick())
        self.assertEqual(before, self.names(root))
        self.assertEqual([], sync.with_trait(self.client, mapping.DEVICE))
        got = {d.address: d for d in store.get('cn1').devices}
        self.assertEqual({'0000:01:10.0', '0000:01:10.1'}, set(got))
        for device in got.values():
            self.assertEqual(pf, device.parent_address)
            self.assertIsNotNone(device.iommu_group)
            self.assertEqual('igbvf', device.driver)
        # More VFs: the report follows, Placement still gets nothing.
        tree.remove_vfs(pf)
        tree.create_vfs(pf, 4)
        self.assertTrue(agent.tick())
        self.assertEqual(4, len(store.get('cn1').devices))
        self.assertEqual(before, self.names(root))
