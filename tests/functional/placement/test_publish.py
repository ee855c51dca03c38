"""The agent's side of the placement store against a real Placement."""

from __future__ import annotations

import dataclasses

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.fakehost import sysfs_tree
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement import sync
from tests.functional.placement import base

PF0, PF1 = '0000:10:00.0', '0000:20:00.0'


class PublishTest(base.PlacementTestCase):

    def test_empty_placement_has_no_hosts(self) -> None:
        self.assertEqual({}, self.store.generations())
        self.assertEqual({}, self.store.problems())
        self.assertRaises(exception.HostReportNotFound, self.store.get,
                          'cn1')

    def test_providers_inventories_and_fact_traits(self) -> None:
        report = base.scarce_host('cn1', vfs=3)
        generation = self.store.publish(report)
        root = self.client.find_provider('cn1')
        self.assertIsNotNone(root)
        rp = self.provider('cn1', PF0)
        self.assertEqual('cn1:passthrough:' + PF0, rp.name)
        self.assertEqual(root.uuid, rp.parent_provider_uuid)
        inv = self.inventory('cn1', PF0)
        self.assertEqual((3, 0), (inv[base.VF_RC]['total'],
                                  inv[base.VF_RC]['reserved']))
        self.assertEqual(1, inv[base.PF_RC]['total'])
        _gen, traits = self.client.get_traits(rp.uuid)
        for trait in (mapping.DEVICE, mapping.VIABLE,
                      'CUSTOM_PASSTHROUGH_TYPE_PF',
                      'CUSTOM_PASSTHROUGH_TYPE_VF',
                      'CUSTOM_PASSTHROUGH_VENDOR_8086',
                      'CUSTOM_PASSTHROUGH_PRODUCT_1572',
                      'CUSTOM_PASSTHROUGH_VF_PRODUCT_154C',
                      'CUSTOM_PASSTHROUGH_NUMA_0',
                      'CUSTOM_PASSTHROUGH_CELL_1_SOCKET_1'):
            self.assertIn(trait, traits)
        self.assertEqual({'cn1': generation}, self.store.generations())
        # The same report again writes nothing: the generation stays.
        self.assertEqual(generation, self.store.publish(report))
        got = self.store.get('cn1')
        self.assertEqual([PF0, PF1], [d.address for d in got.devices])
        self.assertEqual({'type-PF'}, {d.dev_type for d in got.devices})

    def test_physnet_trusted_and_tags_round_trip(self) -> None:
        report = base.scarce_host('cn1')
        for dev in report.devices:
            dev.tags = {'physical_network': 'physnet1', 'trusted': 'true'}
        self.store.publish(report)
        _gen, traits = self.client.get_traits(
            self.provider('cn1', PF0).uuid)
        self.assertIn('CUSTOM_PHYSNET_PHYSNET1', traits)
        self.assertIn(mapping.TRUSTED, traits)
        facts = self.store.facts('cn1')
        vf = [p for p in facts.pools if p.dev_type == 'type-VF'][0]
        self.assertEqual({'physical_network': 'physnet1',
                          'trusted': 'true'}, vf.pool_tags)
        self.assertEqual(frozenset(), vf.traits)

    def test_vf_count_changes_update_the_inventory(self) -> None:
        self.store.publish(base.scarce_host('cn1', vfs=3))
        before = self.store.generations()['cn1']
        self.store.publish(base.scarce_host('cn1', vfs=5))
        self.assertEqual(5, self.inventory('cn1', PF0)[base.VF_RC]['total'])
        self.store.publish(base.scarce_host('cn1', vfs=2))
        self.assertEqual(2, self.inventory('cn1', PF0)[base.VF_RC]['total'])
        self.assertGreater(self.store.generations()['cn1'], before)

    def test_non_viable_devices_are_reserved(self) -> None:
        report = base.scarce_host('cn1', vfs=3)
        # A foreign device in the group of PF1's first VF, and a VF of PF0
        # the agent marks unavailable.
        vf1 = [d for d in report.devices if d.parent_address == PF1][0]
        report.iommu.foreign_members = {vf1.iommu_group: ('0000:99:00.0',)}
        [d for d in report.devices if d.parent_address == PF0][1].status = \
            'unavailable'
        self.store.publish(report)
        self.assertEqual(1, self.inventory('cn1', PF0)[base.VF_RC]['reserved'])
        self.assertEqual(1, self.inventory('cn1', PF1)[base.VF_RC]['reserved'])
        # Fixed by the operator: offered again.
        self.store.publish(base.scarce_host('cn1', vfs=3))
        self.assertEqual(0, self.inventory('cn1', PF1)[base.VF_RC]['reserved'])

    def test_vanished_device_is_removed(self) -> None:
        self.store.publish(base.scarce_host('cn1', pfs=2))
        self.store.publish(base.scarce_host('cn1', pfs=1))
        self.assertIsNone(self.provider('cn1', PF1))
        self.assertIsNotNone(self.provider('cn1', PF0))
        self.assertEqual([], self.store.status('cn1'))

    def test_vanished_but_allocated_is_reserved_and_reported(self) -> None:
        self.store.publish(base.scarce_host('cn1', pfs=2))
        consumer = base.new_consumer()
        requests = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': 'pf:1'}, self.aliases)
        engine = self.engine()
        engine.refresh()
        request = engine.request({'pci_passthrough:alias': 'pf:1'})
        self.assertEqual(requests, request.requests)
        engine.claim('cn1', request, consumer)
        held = [u for u, a in self.client.get_allocations(
            consumer).allocations.items()]
        self.assertEqual(1, len(held))
        taken = PF0 if held[0] == self.provider('cn1', PF0).uuid else PF1
        other = PF1 if taken == PF0 else PF0
        # The claimed PF vanishes with its VFs; the other PF goes too.
        self.store.publish(base.scarce_host('cn1', pfs=0))
        self.assertIsNone(self.provider('cn1', other))
        inv = self.inventory('cn1', taken)
        self.assertEqual(inv[base.PF_RC]['total'],
                         inv[base.PF_RC]['reserved'])
        problems = self.store.status('cn1')
        self.assertEqual(1, len(problems))
        self.assertIn('cn1:passthrough:%s: device vanished but still '
                      'allocated' % taken, problems[0])
        # ... and passthrough-scheduler explain shows it.
        engine.refresh()
        (answer,) = engine.explain(request, exact=True)
        self.assertIn('vanished but still allocated', answer.detail)
        # Released: the next publish removes it.
        self.assertTrue(self.store.release('cn1', consumer))
        self.store.publish(base.scarce_host('cn1', pfs=0))
        self.assertIsNone(self.provider('cn1', taken))

    def test_fewer_vfs_than_allocated_keeps_usage_and_reserves(self) -> None:
        self.store.publish(base.scarce_host('cn1', pfs=1, vfs=4))
        engine = self.engine()
        engine.refresh()
        consumer = base.new_consumer()
        engine.claim('cn1', engine.request({'pci_passthrough:alias': 'vf:3'}),
                     consumer)
        self.store.publish(base.scarce_host('cn1', pfs=1, vfs=1))
        rp = self.provider('cn1', PF0)
        used = self.client.get_provider_usages(rp.uuid)[base.VF_RC]
        self.assertEqual(3, used)
        inv = self.inventory('cn1', PF0)[base.VF_RC]
        # Placement keeps the allocation; nothing more is handed out.
        self.assertGreaterEqual(used, inv['total'] - inv['reserved'])
        self.assertIsNone(engine.pools.select_and_claim(
            engine.request({'pci_passthrough:alias': 'vf:1'}),
            base.new_consumer()))

    def test_nova_report_in_placement_is_detected(self) -> None:
        root = self.client.ensure_provider('cn1')
        nova_rp = self.client.ensure_provider(
            'cn1_0000:10:00.0', parent_provider_uuid=root.uuid)
        self.client.set_traits(nova_rp.uuid, [mapping.NOVA_MANAGED])
        error = self.assertRaises(exception.NovaPciInPlacement,
                                  self.store.publish, base.scarce_host('cn1'))
        self.assertIn('cn1_0000:10:00.0', str(error))
        self.assertIn('report_in_placement', str(error))
        self.assertIsNone(self.provider('cn1', PF0))

    def test_compute_node_not_created_when_told_not_to(self) -> None:
        self.conf.set_override('create_compute_node', False,
                               group='placement_store')
        error = self.assertRaises(exception.NoComputeNodeProvider,
                                  self.store.publish,
                                  base.scarce_host('cn1'))
        self.assertIn('named cn1', str(error))
        self.assertIn(self.server.url, str(error))
        self.assertIsNone(self.client.find_provider('cn1'))
        self.client.ensure_provider('cn1')  # nova-compute registers
        self.store.publish(base.scarce_host('cn1'))
        self.assertIsNotNone(self.provider('cn1', PF0))

    def test_found_compute_node_is_reused(self) -> None:
        nova_root = self.client.ensure_provider('cn1')
        self.store.publish(base.scarce_host('cn1'))
        self.assertEqual(nova_root.uuid,
                         self.provider('cn1', PF0).root_provider_uuid)

    def test_agent_discovery_report_from_fake_sysfs(self) -> None:
        tree = sysfs_tree.FakeSysfs(self.useFixture(
            fixtures.TempDir()).path)
        tree.add_numa_node(0, (0, 1), socket=0)
        tree.enable_iommu()
        tree.add_driver('igb', (('8086', '10c9'),))
        tree.add_driver('igbvf', (('8086', '10ca'),))
        pf = '0000:01:00.0'
        vfs = ['0000:01:10.%d' % n for n in range(4)]
        tree.add_device(pf, vendor='8086', product='10c9', driver='igb',
                        numa_node=0, vfs=sysfs_tree.VfPlan('10ca', 'igbvf',
                                                        vfs))
        tree.create_vfs(pf, 4)
        fs = sysfs_mod.Sysfs(str(tree.sys), str(tree.proc))
        specs = device_spec.DeviceSpecList.from_config(
            ['{"vendor_id": "8086", "product_id": "10ca", '
             '"physical_network": "physnet1"}'])
        report = discovery.build_report(fs, specs, 'agent-host')
        self.assertEqual(4, len(report.devices))
        self.store.publish(report)
        inv = self.inventory('agent-host', pf)
        self.assertEqual({'CUSTOM_PCI_8086_10CA'}, set(inv))
        self.assertEqual(4, inv['CUSTOM_PCI_8086_10CA']['total'])
        self.assertEqual(0, inv['CUSTOM_PCI_8086_10CA']['reserved'])


class MappingTest(testtools.TestCase):
    """The pure mapping, no server."""

    def test_shared_group_offers_one_member(self) -> None:
        report = base.scarce_host('cn1', pfs=1, vfs=3)
        for dev in report.devices:
            if dev.dev_type == 'type-VF':
                dev.iommu_group = 99
        want = mapping.desired(report)[PF0]
        self.assertEqual(2, want.inventories[base.VF_RC]['reserved'])

    def test_in_use_marks_of_the_report_are_ignored(self) -> None:
        report = base.scarce_host('cn1', pfs=1, vfs=3)
        report.devices[1] = dataclasses.replace(
            report.devices[1], status='allocated', owner='x')
        self.assertIn(report.devices[1].address,
                      mapping.assignable(report))
        self.assertIsInstance(sync.VANISHED, str)
        self.assertEqual(report_mod.IN_USE, frozenset(('claimed',
                                                       'allocated')))
