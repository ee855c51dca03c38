"""Notifications after commit, the oslo.messaging notifier, [lifecycle]."""

from __future__ import annotations

import fixtures
import testtools
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin import exception
from passthrough_plugin.conf import lifecycle as conf_lifecycle
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import hotplug
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import notifications
from tests.unit.lifecycle import fakes


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    def attach(self, interval) -> None:
        self.seen.append(('attach', interval.host_address,
                          interval.end_reason))

    def detach(self, interval) -> None:
        self.seen.append(('detach', interval.host_address,
                          interval.end_reason))


class TestNotifications(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.recorder = Recorder()
        self.ledger = ledger_mod.Ledger('sqlite:///%s/l.sqlite' % tmp,
                                        fakes.Clock(), self.recorder)
        self.addCleanup(self.ledger.close)

    def test_sent_after_commit_only(self) -> None:
        pools = fakes.pools('compute-a', gpus=0)
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        self.assertRaises(exception.HotplugRefused, hotplug.attach,
                          self.ledger, pools, fakes.INSTANCE, 'gpu',
                          fakes.ALIASES)
        # A rolled-back operation sends nothing.
        stale = fakes.pools('compute-a')
        self.assertRaises(exception.LedgerError, claims.boot, self.ledger,
                          stale, fakes.OTHER, fakes.PROJECT, fakes.flavor())
        claims.delete(self.ledger, fakes.INSTANCE)
        self.assertEqual([('attach', '0000:3b:02.3', None),
                          ('attach', '0000:3b:02.2', None),
                          ('detach', '0000:3b:02.3', 'deleted'),
                          ('detach', '0000:3b:02.2', 'deleted')],
                         self.recorder.seen)


class TestConf(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(
            cfg.ConfigOpts())).conf
        conf_lifecycle.register_opts(self.conf)

    def test_defaults(self) -> None:
        self.assertEqual('sqlite:////var/lib/passthrough-plugin/'
                         'ledger.sqlite', self.conf.lifecycle.connection)
        self.assertEqual('require',
                         self.conf.lifecycle.evacuate_hotplug_policy)
        self.assertFalse(self.conf.lifecycle.notifications)
        self.assertIsInstance(notifications.from_conf(self.conf),
                              notifications.NullNotifier)
        (group, opts), = conf_lifecycle.list_opts().items()
        self.assertEqual('lifecycle', group.name)
        self.assertEqual(5, len(opts))

    def test_bad_policy_refused(self) -> None:
        self.assertRaises(ValueError, self.conf.set_override,
                          'evacuate_hotplug_policy', 'maybe', 'lifecycle')

    def test_messaging_notifier(self) -> None:
        try:
            import oslo_messaging
        except ImportError:
            self.skipTest('oslo.messaging (optional) is not installed')
        from oslo_messaging.notify import _impl_test

        self.conf.set_override('notifications', True, 'lifecycle')
        self.conf.set_override('notification_topic', 'metering',
                               'lifecycle')
        oslo_messaging.set_transport_defaults('passthrough')
        oslo_messaging.get_notification_transport(self.conf)  # registers
        self.conf.set_override('transport_url', 'fake:/',
                               'oslo_messaging_notifications')
        self.conf.set_override('driver', ['test'],
                               'oslo_messaging_notifications')
        notifier = notifications.from_conf(self.conf)
        _impl_test.reset()
        self.addCleanup(_impl_test.reset)
        tmp = self.useFixture(fixtures.TempDir()).path
        ledger = ledger_mod.Ledger('sqlite:///%s/l.sqlite' % tmp,
                                   fakes.Clock(), notifier)
        self.addCleanup(ledger.close)
        claims.boot(ledger, fakes.pools('compute-a'), fakes.INSTANCE,
                    fakes.PROJECT, fakes.flavor(
                        {'pci_passthrough:alias': 'vf:1'}))
        sent = _impl_test.NOTIFICATIONS
        self.assertEqual(1, len(sent))
        _ctxt, message, priority, _retry = sent[0]
        self.assertEqual(('passthrough.device.attach', 'INFO'),
                         (message['event_type'], priority))
        self.assertEqual({'instance': fakes.INSTANCE, 'source': 'flavor',
                          'host_address': '0000:3b:02.3',
                          'start': '2026-11-02T08:00:00Z', 'end': None},
                         {k: message['payload'][k] for k in (
                             'instance', 'source', 'host_address', 'start',
                             'end')})
