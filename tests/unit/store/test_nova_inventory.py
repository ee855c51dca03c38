"""[placement_store] inventory: which store the placement driver stands for."""

from __future__ import annotations

import fixtures
import testtools
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin.conf import placement_store as placement_store_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.store import base
from passthrough_plugin.store import file as file_store
from passthrough_plugin.store import nova_inventory
from passthrough_plugin.store.placement import store as placement_store


class ModeTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(
            config_fixture.Config(cfg.ConfigOpts())).conf
        self.path = self.useFixture(fixtures.TempDir()).path
        self.log = self.useFixture(fixtures.FakeLogger(
            name='passthrough_plugin.store.nova_inventory'))
        self.built: list[str] = []
        store_conf.register_opts(self.conf)
        placement_store_conf.register_opts(self.conf)

    def own(self, conf: cfg.ConfigOpts) -> base.ReportStore:
        self.built.append('own')
        return file_store.FileReportStore(conf)

    def test_default_is_own(self) -> None:
        self.assertEqual('own', nova_inventory.mode(self.conf))
        store = nova_inventory.select(self.conf, self.own)
        self.assertEqual(['own'], self.built)
        self.assertNotIsInstance(store, nova_inventory.NovaInventoryStore)
        self.assertIn('[placement_store] inventory = own', self.log.output)

    def test_nova_mode_keeps_reports_and_is_not_pool_level(self) -> None:
        self.conf.set_override('inventory', 'nova', group='placement_store')
        self.conf.set_override('path', self.path, group='file_store')
        store = nova_inventory.select(self.conf, self.own)
        self.assertEqual([], self.built)
        self.assertIsInstance(store, nova_inventory.NovaInventoryStore)
        self.assertNotIsInstance(store, base.PoolLevelStore)
        self.assertIn('[placement_store] inventory = nova', self.log.output)
        self.assertIn(self.path, self.log.output)

    def test_placement_driver_class_selects_by_mode(self) -> None:
        self.conf.set_override('path', self.path, group='file_store')
        own = placement_store.PlacementReportStore.for_conf(self.conf)
        self.assertIsInstance(own, placement_store.PlacementReportStore)
        self.conf.set_override('inventory', 'nova', group='placement_store')
        nova = placement_store.PlacementReportStore.for_conf(self.conf)
        self.assertIsInstance(nova, nova_inventory.NovaInventoryStore)

    def test_unknown_mode_is_refused_naming_the_choices(self) -> None:
        conf_file = self.useFixture(fixtures.TempDir()).join('x.conf')
        with open(conf_file, 'w') as fh:
            fh.write('[placement_store]\ninventory = both\n')
        conf = cfg.ConfigOpts()
        placement_store_conf.register_opts(conf)
        conf(['--config-file', conf_file])
        exc = self.assertRaises(cfg.ConfigFileValueError, lambda:
                                conf.placement_store.inventory)
        self.assertIn('both', str(exc))
        self.assertIn('own', str(exc))
        self.assertIn('nova', str(exc))

    def test_option_help_says_which_mode_is_which(self) -> None:
        opts = {o.name: o for o in
                placement_store_conf.placement_store_opts}
        text = opts['inventory'].help
        self.assertIn('without nova', text)
        self.assertIn('report_in_placement', text)
        self.assertEqual('own', opts['inventory'].default)
