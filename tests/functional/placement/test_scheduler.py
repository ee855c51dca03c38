"""The scheduler on the placement store against a real Placement."""

from __future__ import annotations

import io
import os

import fixtures

from passthrough_plugin import exception
from passthrough_plugin.agent import service
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.cmd import scheduler as scheduler_cmd
from passthrough_plugin.pci import explain
from passthrough_plugin.store import loader
from passthrough_plugin.store.placement import mapping
from tests.functional.placement import base

VF2 = {'pci_passthrough:alias': 'vf:2'}


class SchedulerTest(base.PlacementTestCase):

    def setUp(self) -> None:
        super().setUp()
        # cn1: 2 PFs x 3 VFs; cn2: 1 PF x 1 VF (cannot take 2 VFs).
        self.store.publish(base.scarce_host('cn1', pfs=2, vfs=3))
        self.store.publish(base.scarce_host('cn2', pfs=1, vfs=1))
        self.engine_ = self.engine()
        self.engine_.refresh()

    def used(self, host: str, address: str) -> dict[str, int]:
        rp = self.provider(host, address)
        return {rc: n for rc, n in
                self.client.get_provider_usages(rp.uuid).items() if n}

    def test_select_explain_claim_release(self) -> None:
        engine = self.engine_
        request = engine.request(VF2)
        self.assertEqual(['cn1', 'cn2'], engine.hosts())
        self.assertEqual(['cn1'], [a.host for a in engine.select(request)])
        answers = {a.host: a for a in engine.explain(request)}
        self.assertTrue(answers['cn1'].ok)
        self.assertFalse(answers['cn2'].ok)
        self.assertIn('cn2', answers['cn2'].detail)
        consumer = base.new_consumer()
        taken = engine.claim('cn1', request, consumer)
        self.assertEqual(['0000:10:00.0 %s x2' % base.VF_RC], taken)
        self.assertEqual({base.VF_RC: 2}, self.used('cn1', '0000:10:00.0'))
        # The PF serving VFs is no longer free as a whole device.
        pf = engine.request({'pci_passthrough:alias': 'pf:2'})
        self.assertEqual([], engine.select(pf))
        self.assertEqual(['0000:10:00.0 %s x2' % base.VF_RC],
                         engine.release('cn1', consumer))
        self.assertEqual({}, self.used('cn1', '0000:10:00.0'))
        self.assertEqual(['cn1'], [a.host for a in engine.select(pf)])

    def test_per_host_decisions_for_the_nova_filter(self) -> None:
        engine = self.engine_
        self.assertEqual({}, engine.summaries)  # nothing read eagerly
        request = engine.request(VF2)
        self.assertTrue(engine.decide('cn1', request).ok)
        decision = engine.decide('cn2', request)
        self.assertFalse(decision.ok)
        self.assertEqual('insufficient', decision.reason)
        self.assertEqual(['cn1', 'cn2'], sorted(engine.summaries))
        # A claim changes cn1's generation: read again after a refresh.
        engine.claim('cn1', engine.request(
            {'pci_passthrough:alias': 'vf:3'}), base.new_consumer())
        engine.claim('cn1', engine.request(
            {'pci_passthrough:alias': 'vf:2'}), base.new_consumer())
        engine.refresh()
        self.assertEqual(['cn2'], sorted(engine.summaries))
        self.assertFalse(engine.decide('cn1', request).ok)
        self.assertEqual(1, engine.summaries['cn1'].summary.total_free)

    def test_whole_pf_takes_its_vfs_in_placement(self) -> None:
        engine = self.engine_
        consumer = base.new_consumer()
        found = engine.pools.select_and_claim(
            engine.request({'pci_passthrough:alias': 'pf:1'}), consumer,
            ['cn2'])
        self.assertEqual(('cn2', ['0000:10:00.0 %s x1' % base.VF_RC,
                                  '0000:10:00.0 %s x1' % base.PF_RC]),
                         found)
        # Placement itself now refuses a VF of that PF.
        self.assertIsNone(engine.pools.select_and_claim(
            engine.request({'pci_passthrough:alias': 'vf:1'}),
            base.new_consumer(), ['cn2']))

    def test_anti_affinity_takes_vfs_of_distinct_pfs(self) -> None:
        engine = self.engine_
        consumer = base.new_consumer()
        request = engine.request(dict(VF2, **{
            'passthrough:vf_anti_affinity': 'true'}))
        host, taken = engine.pools.select_and_claim(request, consumer)
        self.assertEqual('cn1', host)
        self.assertEqual(['0000:10:00.0 %s x1' % base.VF_RC,
                          '0000:20:00.0 %s x1' % base.VF_RC], sorted(taken))

    def test_numa_cells_choose_the_local_pf(self) -> None:
        engine = self.engine_
        aliases = [a.replace('}', ', "numa_policy": "required"}')
                   for a in base.ALIASES]
        from passthrough_plugin.pci import alias as alias_mod
        engine._aliases = alias_mod.parse_aliases(aliases)
        request = engine.request(VF2, numa_cells=[1])
        host, taken = engine.pools.select_and_claim(
            request, base.new_consumer())
        self.assertEqual(('cn1', ['0000:20:00.0 %s x2' % base.VF_RC]),
                         (host, taken))
        # Node 1 has one VF left: a second request of two must fail.
        self.assertIsNone(engine.pools.select_and_claim(
            request, base.new_consumer()))

    def test_claim_keeps_the_consumers_other_allocations(self) -> None:
        consumer = base.new_consumer()
        root = self.client.find_provider('cn1')
        self.client.set_inventories(root.uuid, {'VCPU': {'total': 8}})
        self.client.put_allocations(
            consumer, {root.uuid: {'VCPU': 2}}, consumer_generation=None,
            project_id='p', user_id='u')
        self.engine_.claim('cn1', self.engine_.request(VF2), consumer)
        held = self.client.get_allocations(consumer).allocations
        self.assertEqual({'VCPU': 2}, held[root.uuid])
        self.assertEqual(2, len(held))  # the root and one PF
        self.engine_.release('cn1', consumer)
        self.assertEqual({root.uuid: {'VCPU': 2}},
                         self.client.get_allocations(consumer).allocations)

    def test_bad_consumer_is_a_clear_error(self) -> None:
        error = self.assertRaises(
            exception.Invalid, self.engine_.claim, 'cn1',
            self.engine_.request(VF2), 'not-a-uuid')
        self.assertIn("'not-a-uuid'", str(error))

    def test_unexpressible_alias_names_the_alias(self) -> None:
        from passthrough_plugin.pci import alias as alias_mod
        self.engine_._aliases = alias_mod.parse_aliases(
            ['{"name": "any", "vendor_id": "8086", "product_id": "154c", '
             '"device_type": "type-VF"}',
             '{"name": "any", "vendor_id": "8086", "product_id": "10ca", '
             '"device_type": "type-VF"}'])
        error = self.assertRaises(
            exception.PlacementRequestNotExpressible,
            self.engine_.select,
            self.engine_.request({'pci_passthrough:alias': 'any:1'}))
        self.assertIn('any', str(error))
        self.assertIn('CUSTOM_PCI_8086_10CA, CUSTOM_PCI_8086_154C',
                      str(error))

    def test_cli_with_the_installed_placement_store(self) -> None:
        # A stale install (entry points from before the placement store)
        # is a failure to fix with `pip install -e .`, never a skip.
        self.assertIn('placement', loader.available(),
                      'the installed passthrough_plugin.report_stores entry '
                      'points lack "placement": pip install -e . again')
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'sched.conf')
        with open(path, 'w') as f:
            f.write('[report_store]\ndriver = placement\n[placement]\n'
                    'auth_type = admin_token\nendpoint = %s\ntoken = admin\n'
                    '[pci]\n%s' % (self.server.url, ''.join(
                        'alias = %s\n' % a for a in base.ALIASES)))
        out = io.StringIO()
        consumer = base.new_consumer()
        code = scheduler_cmd.main(
            ['--config-file', path, 'claim', '--extra-spec',
             'pci_passthrough:alias=vf:2', '--consumer', consumer], out,
            io.StringIO())
        self.assertEqual(0, code, out.getvalue())
        self.assertIn('claimed on cn1 for %s: 0000:10:00.0 %s x2' % (
            consumer, base.VF_RC), out.getvalue())
        out = io.StringIO()
        code = scheduler_cmd.main(
            ['--config-file', path, 'explain', '--extra-spec',
             'pci_passthrough:alias=vf:4'], out, io.StringIO())
        # cn1 has 4 VFs left over its two PFs; cn2 has one VF.
        self.assertEqual(0, code, out.getvalue())
        self.assertIn('cn1   yes', out.getvalue())
        self.assertIn('no_candidate', out.getvalue())
        out = io.StringIO()
        self.assertEqual(0, scheduler_cmd.main(
            ['--config-file', path, 'release', 'cn1', '--consumer',
             consumer], out, io.StringIO()))
        self.assertIn('released 1 device(s)', out.getvalue())


class OutageTest(base.PlacementTestCase):
    """Placement stopped mid-run: clear errors, recovery when it returns."""

    def test_scheduler_fails_closed_then_recovers(self) -> None:
        self.store.publish(base.scarce_host('cn1'))
        engine = self.engine()
        engine.refresh()
        request = engine.request(VF2)
        self.assertEqual(['cn1'], [a.host for a in engine.select(request)])
        self.server.stop()
        self.assertEqual([], engine.select(request))
        answers = engine.explain(request)
        self.assertEqual([('cn1', False, explain.STORE_DOWN)],
                         [(a.host, a.ok, a.reason) for a in answers])
        self.assertIn(self.server.url, answers[0].detail)
        error = self.assertRaises(exception.StoreUnavailable,
                                  engine.pools.select_and_claim, request,
                                  base.new_consumer())
        self.assertIn(self.server.url, str(error))
        self.assertRaises(exception.StoreUnavailable, engine.refresh)
        self.server.start()
        engine.refresh()
        self.assertIsNotNone(engine.pools.select_and_claim(
            request, base.new_consumer()))

    def test_agent_keeps_its_report_and_republishes(self) -> None:
        tree = self.igb_host('agent-host')
        pf = base.PF_ADDRESS
        self.conf.set_override('publish_attempts', 3,
                               group='placement_store')
        agent = service.Agent(
            self.conf, sysfs_mod.Sysfs(str(tree.sys), str(tree.proc)),
            store_factory=lambda conf: self.store)
        self.server.stop()
        log = self.useFixture(fixtures.FakeLogger())
        self.assertFalse(agent.tick())
        self.assertEqual([1.0, 2.0], self.sleeps)  # bounded backoff
        self.assertIn('cannot publish the report', log.output)
        self.assertIn(self.server.url, log.output)
        self.server.start()
        self.assertTrue(agent.tick())
        self.assertEqual(2, self.inventory('agent-host', pf)[
            'CUSTOM_PCI_8086_10CA']['total'])
        self.assertFalse(agent.tick())  # unchanged: nothing to publish
        tree.remove_vfs(pf)
        tree.create_vfs(pf, 4)
        self.assertTrue(agent.tick())
        self.assertEqual(4, self.inventory('agent-host', pf)[
            'CUSTOM_PCI_8086_10CA']['total'])
        self.assertIn(mapping.DEVICE, self.client.get_traits(
            self.provider('agent-host', pf).uuid)[1])
