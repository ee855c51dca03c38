"""A failed restore is kept in the journal until a restore works."""

from __future__ import annotations

import testtools
from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.agent import binding
from passthrough_plugin.agent import doctor
from passthrough_plugin.agent import service
from passthrough_plugin.conf import agent as agent_conf
from passthrough_plugin.conf import pci as pci_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import device_spec
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.agent.fixtures import E1000E

SPEC = '{"vendor_id": "8086", "product_id": "10d3"}'


class FailedRestoreTest(testtools.TestCase):

    privileged: agent_fixtures.Privileged | None = None

    def setUp(self) -> None:
        super().setUp()
        self.host = self.useFixture(agent_fixtures.FakeHost(
            privileged=self.privileged))
        # Bind the two-function group; the second device's unbind fails,
        # and so does the first write of the rollback (its override).
        self.host.kernel.fail_at(4)
        self.host.kernel.fail_at(5)
        e = self.assertRaises(exception.BindError, self.gb().bind, E1000E)
        self.assertIn('ROLLBACK FAILED (%s: ' % E1000E[1], e.message)
        self.assertIn('passthrough-agent unbind %s' % E1000E[1], e.message)

    def gb(self) -> binding.GroupBinding:
        return binding.GroupBinding(
            self.host.fs, self.host.journal(),
            specs=device_spec.DeviceSpecList.from_config([SPEC]))

    def journal_check(self) -> doctor.Check:
        return doctor.check_journal(self.host.state_path)

    def test_the_journal_keeps_it_and_doctor_reports_it(self) -> None:
        journal = self.host.journal()
        self.assertEqual([E1000E[1]], sorted(journal.failed))
        self.assertEqual((None, {}), (journal.pending, journal.bound))
        record, error = journal.failed[E1000E[1]]
        self.assertEqual(('e1000e', True),
                         (record.original_driver, record.set_override))
        self.assertIn('EIO', error)
        self.assertEqual('vfio-pci', self.host.fs.driver_override(E1000E[1]))
        check = self.journal_check()
        self.assertEqual(doctor.FAIL, check.status)
        self.assertIn('restore failed for %s (to e1000e)' % E1000E[1],
                      check.detail)
        self.assertIn('passthrough-agent unbind %s' % E1000E[1], check.hint)
        # The first device came back.
        self.assertEqual((None, 'e1000e'), (
            self.host.fs.driver_override(E1000E[0]),
            self.host.driver(E1000E[0])))

    def test_unbind_restores_it(self) -> None:
        self.assertEqual([E1000E[1]], self.gb().unbind([E1000E[1]]))
        self.assertEqual((None, 'e1000e'), (
            self.host.fs.driver_override(E1000E[1]),
            self.host.driver(E1000E[1])))
        self.assertEqual({}, self.host.journal().failed)
        self.assertEqual(doctor.PASS, self.journal_check().status)

    def test_a_restore_that_fails_again_is_still_kept(self) -> None:
        self.host.kernel.fail_at(len(self.host.kernel.writes))
        e = self.assertRaises(exception.AgentError, self.gb().unbind,
                              [E1000E[0]])
        self.assertIn('RESTORE FAILED (%s: ' % E1000E[1], e.message)
        self.assertEqual([E1000E[1]], sorted(self.host.journal().failed))
        self.host.kernel.fail_at(len(self.host.kernel.writes))
        still = self.gb().retry_failed()
        self.assertEqual(1, len(still))
        self.assertTrue(still[0].startswith(E1000E[1] + ': '), still)
        self.assertIn('EIO', still[0])
        self.assertEqual([], self.gb().retry_failed())
        self.assertEqual({}, self.host.journal().failed)

    def test_run_retries_it(self) -> None:
        conf = cfg.ConfigOpts()
        for module in (pci_conf, store_conf, agent_conf):
            module.register_opts(conf)
        conf([])
        agent = service.Agent(conf, self.host.fs,
                              store_factory=lambda c: None,  # type: ignore
                              state_path=self.host.state_path)
        self.assertEqual([], agent.apply_desired())
        self.assertEqual({}, self.host.journal().failed)
        self.assertEqual(None, self.host.fs.driver_override(E1000E[1]))

    def test_binding_it_again_keeps_the_original_driver(self) -> None:
        self.assertEqual(E1000E, self.gb().bind(E1000E))
        journal = self.host.journal()
        self.assertEqual({}, journal.failed)
        self.assertEqual('e1000e', journal.bound[E1000E[1]].original_driver)
        self.gb().unbind(E1000E)
        self.assertEqual(['e1000e', 'e1000e'],
                         [self.host.driver(a) for a in E1000E])
