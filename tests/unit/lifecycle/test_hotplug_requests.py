"""The hotplug request queue in the ledger: submit, pending, finish."""

from __future__ import annotations

import testtools

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import hotplug_requests as hr
from tests.unit.lifecycle import fakes


class HotplugRequestsTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.ledger = self.useFixture(fakes.LedgerFixture()).ledger
        with self.ledger.begin() as txn:
            txn.add_instance(fakes.INSTANCE, fakes.PROJECT, 'compute-a', {},
                             self.ledger.now())

    def test_submit_pending_finish_result(self) -> None:
        request = hr.submit(self.ledger, fakes.INSTANCE, 'attach',
                            alias='gpu', count=1)
        self.assertEqual('compute-a', request.host)
        self.assertIsNone(hr.result(self.ledger, request))
        found, = hr.pending(self.ledger, 'compute-a')
        self.assertEqual((request.id, fakes.INSTANCE, 'attach',
                          {'alias': 'gpu', 'count': 1}),
                         (found.id, found.instance, found.action,
                          found.params))
        self.assertEqual([], hr.pending(self.ledger, 'compute-b'))
        self.assertEqual([], hr.pending(self.ledger, 'compute-a',
                                        after=found.event_id))
        hr.finish(self.ledger, found, True, 'done', ['0000:5e:00.0'])
        # Served once: a restarted agent does not run it again.
        self.assertEqual([], hr.pending(self.ledger, 'compute-a'))
        self.assertEqual({'request': request.id, 'ok': True,
                          'message': 'done', 'devices': ['0000:5e:00.0']},
                         hr.result(self.ledger, request))

    def test_bad_action_and_unknown_instance(self) -> None:
        error = self.assertRaises(exception.InvalidLedgerInput, hr.submit,
                                  self.ledger, fakes.INSTANCE, 'reboot')
        self.assertIn('expected one of attach, detach', error.message)
        self.assertRaises(exception.UnknownInstance, hr.submit, self.ledger,
                          fakes.OTHER, 'detach')

    def test_other_events_are_not_requests(self) -> None:
        with self.ledger.begin() as txn:
            txn.event(fakes.INSTANCE, hr.REQUEST, 'compute-a',
                      self.ledger.now(), 'not json')
            txn.event(fakes.INSTANCE, 'hotplug', 'compute-a',
                      self.ledger.now(), '{"request": "x"}')
        self.assertEqual([], hr.pending(self.ledger, 'compute-a'))
