"""Shared set-up of the placement store tests: a real Placement, a store."""

from __future__ import annotations

import uuid

import fixtures
import testtools
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.fakehost import sysfs_tree
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import synthetic
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.store.placement import store as placement_store
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement.client import PlacementClient
from tests.functional.fixtures import placement as placement_fixture

VF_RC = 'CUSTOM_PCI_8086_154C'
PF_RC = 'CUSTOM_PCI_8086_1572'
ALIASES = [
    '{"name": "vf", "vendor_id": "8086", "product_id": "154c", '
    '"device_type": "type-VF"}',
    '{"name": "pf", "vendor_id": "8086", "product_id": "1572", '
    '"device_type": "type-PF"}',
]


# The PF of PlacementTestCase.igb_host.
PF_ADDRESS = '0000:01:00.0'

def new_consumer() -> str:
    return str(uuid.uuid4())


def scarce_host(host: str, pfs: int = 2, vfs: int = 3):  # type: ignore
    """A host with few VFs: PFs given whole or as VFs."""
    return synthetic.sriov_host(host, pfs=pfs, vfs=vfs, numa_nodes=2)


class PlacementTestCase(testtools.TestCase):
    """A fresh Placement server and a store on it per test."""

    # 'postgresql' for tests of concurrent writers (several workers).
    DATABASE = 'sqlite'

    def setUp(self) -> None:
        super().setUp()
        self.server = self.useFixture(placement_fixture.PlacementFixture(
            database=self.DATABASE))
        self.conf = self.useFixture(
            config_fixture.Config(cfg.ConfigOpts())).conf
        store_conf.register_opts(self.conf)
        scheduler_conf.register_opts(self.conf)
        self.conf.set_override('driver', 'placement', group='report_store')
        self.client = PlacementClient.from_endpoint(self.server.url,
                                                    timeout=5)
        self.sleeps: list[float] = []
        self.store = placement_store.PlacementReportStore(
            self.conf, client=self.client, sleep=self.sleeps.append)
        self.aliases = alias_mod.parse_aliases(ALIASES)

    def igb_host(self, host: str) -> sysfs_tree.FakeSysfs:
        """A fake sysfs of one igb PF (PF_ADDRESS) with 2 of its 4 VFs
        made, and the agent's config for ``host`` listing the VFs."""
        tree = sysfs_tree.FakeSysfs(self.useFixture(fixtures.TempDir()).path)
        tree.add_numa_node(0, (0,), socket=0)
        tree.enable_iommu()
        tree.add_driver('igb', (('8086', '10c9'),))
        tree.add_driver('igbvf', (('8086', '10ca'),))
        tree.add_device(PF_ADDRESS, vendor='8086', product='10c9',
                        driver='igb', numa_node=0, vfs=sysfs_tree.VfPlan(
                            '10ca', 'igbvf',
                            ['0000:01:10.%d' % n for n in range(4)]))
        tree.create_vfs(PF_ADDRESS, 2)
        conf_pkg.register_all(self.conf)
        self.conf.set_override('host', host, group='agent')
        self.conf.set_override('device_spec', [
            '{"vendor_id": "8086", "product_id": "10ca"}'], group='pci')
        return tree

    def engine(self) -> engine_mod.Engine:
        return engine_mod.Engine(self.conf, store=self.store,
                                 aliases=self.aliases)

    def provider(self, host: str, address: str):  # type: ignore
        return self.client.get_provider(
            mapping.provider_uuid(mapping.provider_name(host, address)))

    def inventory(self, host: str, address: str) -> dict:  # type: ignore
        rp = self.provider(host, address)
        self.assertIsNotNone(rp, '%s %s has no provider' % (host, address))
        return self.client.get_inventories(rp.uuid)[1]
