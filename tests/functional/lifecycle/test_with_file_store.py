"""Evacuation against the real file report store: no double allocation."""

from __future__ import annotations

import datetime

import fixtures
import testtools
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin import exception
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import evacuate
from passthrough_plugin.lifecycle import hotplug
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.store import file as file_store
from tests.unit.lifecycle import fakes

UTC = datetime.timezone.utc


class TestEvacuateWithFileStore(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        conf = self.useFixture(config_fixture.Config(cfg.ConfigOpts())).conf
        store_conf.register_opts(conf)
        conf.set_override('path', self.useFixture(fixtures.TempDir()).path,
                          'file_store')
        self.store = file_store.FileReportStore(conf)
        self.store.publish(fakes.host_report('compute-a'))
        self.store.publish(fakes.host_report('compute-b', gpus=0))
        fx = self.useFixture(fakes.LedgerFixture())
        self.ledger, self.clock = fx.ledger, fx.clock

    def pools(self, host: str) -> pools_mod.HostPools:
        return pools_mod.HostPools.from_report(self.store.get(host))

    def claim(self, host: str, instance: str, addresses, source: str):
        self.store.claim(host, instance, list(addresses), source=source)

    def test_source_claims_held_until_the_host_reports_again(self) -> None:
        a = self.pools('compute-a')
        fit = claims.boot(self.ledger, a, fakes.INSTANCE, fakes.PROJECT,
                          fakes.flavor())
        self.claim('compute-a', fakes.INSTANCE, fit.addresses, 'flavor')
        self.clock.advance(hours=1)
        gpu, = hotplug.attach(self.ledger, a, fakes.INSTANCE, 'gpu',
                              fakes.ALIASES)
        self.claim('compute-a', fakes.INSTANCE, [gpu.host_address],
                   'hotplug')

        # compute-a goes dark; the instance is evacuated to compute-b.
        self.clock.advance(hours=1)
        evacuated_at = self.clock.now
        result = evacuate.evacuate(
            self.ledger, fakes.INSTANCE, self.pools('compute-b'),
            fakes.flavor(), fakes.ALIASES, policy=evacuate.BEST_EFFORT)
        self.claim('compute-b', fakes.INSTANCE,
                   [i.host_address for i in result.opened], 'flavor')

        # Before compute-a reports again, its devices stay claimed: a new
        # instance there gets other VFs and cannot have the GPU.
        a = self.pools('compute-a')
        fit = claims.boot(self.ledger, a, fakes.OTHER, fakes.PROJECT,
                          fakes.flavor())
        self.assertEqual(('0000:3b:02.1', '0000:3b:02.0'), fit.addresses)
        self.claim('compute-a', fakes.OTHER, fit.addresses, 'flavor')
        self.assertRaises(exception.HotplugRefused, hotplug.attach,
                          self.ledger, a, fakes.OTHER, 'gpu', fakes.ALIASES)

        # A late report made before the evacuation changes nothing.
        late = fakes.host_report('compute-a')
        late.reported_at = (evacuated_at - datetime.timedelta(
            seconds=1)).isoformat()
        self.store.publish(late)
        self.assertEqual([], evacuate.apply_pending_releases(
            self.ledger, self.store, late))
        self.assertEqual('claimed', self.store.get('compute-a').device(
            '0000:5e:00.0').status)

        # compute-a is back and reports: the old claims go, OTHER's stay.
        back = fakes.host_report('compute-a')
        back.reported_at = (evacuated_at + datetime.timedelta(
            minutes=5)).isoformat()
        self.store.publish(back)
        applied = evacuate.apply_pending_releases(self.ledger, self.store,
                                                  back)
        self.assertEqual([fakes.INSTANCE], [p.instance for p in applied])
        report = self.store.get('compute-a')
        self.assertEqual(
            {'0000:3b:02.0': fakes.OTHER, '0000:3b:02.1': fakes.OTHER,
             '0000:3b:02.2': None, '0000:3b:02.3': None,
             '0000:5e:00.0': None},
            {d.address: d.owner for d in report.devices
             if d.address != '0000:3b:00.0'})
        hotplug.attach(self.ledger, self.pools('compute-a'), fakes.OTHER,
                       'gpu', fakes.ALIASES)
