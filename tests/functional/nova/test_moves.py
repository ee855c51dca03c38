"""nova's move operations keep the plugin's rules, or are refused saying why.

Real nova 34 in-process (fake libvirt), PCI in Placement on, the plugin
enabled through nova.conf. After each move the test reads back what the
guest got on its new host (PciDevice rows, hostdev XML, Placement
allocations; see test_candidates.Guest). What nova 34 does per operation
(doc/nova.rst, "Move operations"):

- live migration and unshelve claim the devices of the scheduler's
  allocation: the candidate the plugin put first;
- cold migration, resize and evacuation re-pick the devices on the
  compute from the flavor (the first free devices of nova's pools): the
  plugin refuses the hosts where that pick breaks a rule, and elsewhere
  puts the candidate matching the pick first so Placement records the
  devices nova takes.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib import parse as urlparse
from xml.etree import ElementTree

import fixtures
import nova.tests.functional  # noqa: F401  (first: see test_candidates)

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt.libvirt import driver as libvirt_driver
from oslo_utils import versionutils

from passthrough_plugin.pci import report as report_mod
from tests.functional.nova import test_candidates as base

VEND = fakelibvirt.PCI_VEND_ID
# nova 34 live-migrates flavor-based PCI devices only when both the
# device_spec and the alias say live_migratable.
LM_VF_SPEC = [json.dumps({'vendor_id': VEND,
                          'product_id': fakelibvirt.VF_PROD_ID,
                          'live_migratable': 'yes'})]
LM_PCI_SPEC = [json.dumps({'vendor_id': VEND,
                           'product_id': fakelibvirt.PCI_PROD_ID,
                           'live_migratable': 'yes'})]
LM_ALIASES = [json.dumps(x) for x in (
    {'vendor_id': VEND, 'product_id': fakelibvirt.VF_PROD_ID,
     'device_type': 'type-VF', 'name': 'vfs', 'live_migratable': 'yes'},
    {'vendor_id': VEND, 'product_id': fakelibvirt.PCI_PROD_ID,
     'device_type': 'type-PCI', 'name': 'pci', 'live_migratable': 'yes'},
)]
# A hypervisor new enough for live_migratable devices (vfio-pci variants).
VERSIONS = {
    'libvirt_version': versionutils.convert_version_to_int(
        libvirt_driver.MIN_VFIO_PCI_VARIANT_LIBVIRT_VERSION),
    'qemu_version': versionutils.convert_version_to_int(
        libvirt_driver.MIN_VFIO_PCI_VARIANT_QEMU_VERSION)}
# Moves per scenario (each one a full nova operation on a loaded machine).
MOVES = 4
FIRST, SECOND = '0000:81:00.0', '0000:81:01.0'
MOVE_PICKS = ('on a resize, cold migration or evacuation nova 34 picks the '
              'devices itself')


class _MoveTestBase(base._CandidateTestBase):

    ALIASES = LM_ALIASES

    def setUp(self) -> None:
        super().setUp()
        self.flags(alias=self.ALIASES, group='pci')
        # Shelving offloads at once: an unshelve is scheduled anew.
        self.flags(shelved_offload_time=0)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.migrateToURI3',
            self._migrate_stub))
        # The fake hypervisor has no disk to copy (nova's own PCI move
        # tests stub the same call).
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver'
            '.migrate_disk_and_power_off', return_value='{}'))

    def _migrate_stub(self, domain: Any, destination: str,
                      params: dict[str, Any], flags: int) -> None:
        """fakelibvirt cannot migrate: the guest appears on the
        destination with the XML nova wrote for it (as nova's own PCI
        live-migration tests do)."""
        dst = self.computes[urlparse.urlparse(destination).netloc]
        dst.driver._host.get_connection().createXML(
            params['destination_xml'], 'fake')
        uuid = ElementTree.fromstring(params['destination_xml']).findtext(
            './uuid')
        src = self.computes[domain._connection.hostname]
        src.driver._host.get_connection().lookupByUUIDString(
            uuid).complete_job()

    def start_pci_compute(self, host: str, **kw: Any
                          ) -> report_mod.HostReport:
        # live_migratable in [pci] device_spec needs a new enough
        # hypervisor on every compute, or nova-compute refuses to start.
        return super().start_pci_compute(host, **dict(VERSIONS, **kw))

    def migrations(self, server: dict[str, Any]) -> dict[int, str]:
        return {m['id']: m['status'] for m in self.api.api_get(
            '/os-migrations').body['migrations']
            if m['instance_uuid'] == server['id']}

    def live_migrate(self, server: dict[str, Any], status: str = 'completed'
                     ) -> dict[str, Any]:
        """Live-migrate ``server`` (the scheduler picks the host) and wait
        (bounded) for this migration's record to reach ``status`` and the
        guest to be ACTIVE with no task."""
        before = set(self.migrations(server))
        self.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': None, 'block_migration': 'auto'}})
        found: dict[int, str] = {}
        for _ in range(2 * base.WAIT):
            found = {i: s for i, s in self.migrations(server).items()
                     if i not in before}
            if status in found.values():
                break
            time.sleep(0.5)
        else:
            self.fail('live migration of %s: no new migration record %s '
                      'within %d s (found %s)' % (
                          server['id'], status, base.WAIT, found))
        return self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None},
            max_retries=base.WAIT)

    def other(self, host: str) -> str:
        return 'compute2' if host == 'compute1' else 'compute1'


class LiveMigrationTest(_MoveTestBase):
    """nova 34 claims the scheduler's allocation on the destination."""

    DEVICE_SPEC = LM_VF_SPEC

    def test_distinct_pfs_after_every_live_migration(self) -> None:
        for host in ('compute1', 'compute2'):
            self.start_pci_compute(host, num_pfs=2, num_vfs=12)
        server = self.create(self.flavor(base.ANTI))
        host = server['OS-EXT-SRV-ATTR:host']
        for _ in range(MOVES):
            server = self.live_migrate(server)
            self.assertEqual(self.other(host),
                             server['OS-EXT-SRV-ATTR:host'])
            host = server['OS-EXT-SRV-ATTR:host']
            self.assertDistinctPfs(self.guest(server), 2)


class LiveMigrationTaintedTest(_MoveTestBase):

    DEVICE_SPEC = LM_PCI_SPEC

    def test_tainted_device_never_taken_then_refused(self) -> None:
        self.start_pci_compute('compute1', num_pci=2)
        flavor = self.flavor({'pci_passthrough:alias': 'pci:1'})
        first, second = self.create(flavor), self.create(flavor)
        # The destination's first device (nova's pool order, Placement's
        # first candidate) shares its IOMMU group with a foreign device.
        self.start_pci_compute('compute2', num_pci=2, tainted=FIRST)
        server = self.live_migrate(first)
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([SECOND], self.guest(server).addresses)
        # Only the tainted device is left there: the plugin refuses.
        server = self.live_migrate(second, status='error')
        self.assertEqual('compute1', server['OS-EXT-SRV-ATTR:host'])
        self.assertIn('compute2 rejected: compute2: type-PCI %s is in an '
                      'IOMMU group with devices that cannot be assigned'
                      % FIRST, self.stdlog.logger.output)
        self.assertEqual(1, len(self.guest(server).addresses))


class UnshelveTest(_MoveTestBase):
    """nova 34 claims the scheduler's allocation on unshelve."""

    DEVICE_SPEC = LM_VF_SPEC

    def test_distinct_pfs_after_every_unshelve(self) -> None:
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=12)
        server = self.create(self.flavor(base.ANTI))
        for _ in range(MOVES):
            self._shelve_server(server)
            server = self._unshelve_server(server)
            self.assertDistinctPfs(self.guest(server), 2)


class UnshelveTaintedTest(_MoveTestBase):

    DEVICE_SPEC = LM_PCI_SPEC

    def test_tainted_device_never_taken_then_refused(self) -> None:
        self.start_pci_compute('compute1', num_pci=2, tainted=FIRST)
        flavor = self.flavor({'pci_passthrough:alias': 'pci:1'})
        server = self.create(flavor)
        for _ in range(MOVES):
            self._shelve_server(server)
            server = self._unshelve_server(server)
            self.assertEqual([SECOND], self.guest(server).addresses)
        # Another guest takes the clean device while this one is shelved:
        # only the tainted one is left, the plugin refuses the unshelve.
        self._shelve_server(server)
        self.create(flavor)
        self.api.post_server_action(server['id'], {'unshelve': None})
        # The conductor's scheduling step fails (No valid host); the
        # guest stays shelved.
        self._wait_for_action_fail_completion(server, 'unshelve',
                                              'schedule_instances')
        self._wait_for_server_parameter(
            server, {'status': 'SHELVED_OFFLOADED',
                     'OS-EXT-STS:task_state': None}, max_retries=base.WAIT)
        self.assertIn('compute1 rejected: compute1: type-PCI %s is in an '
                      'IOMMU group with devices that cannot be assigned'
                      % FIRST, self.stdlog.logger.output)


class ColdMigrationTest(_MoveTestBase):
    """nova 34 re-picks the devices on the destination from the flavor."""

    DEVICE_SPEC = LM_PCI_SPEC

    def test_tainted_first_device_refused_with_the_reason(self) -> None:
        self.start_pci_compute('compute1', num_pci=2)
        server = self.create(self.flavor({'pci_passthrough:alias': 'pci:1'}))
        # nova's move claim would take the destination's first free
        # device: the tainted one. A candidate filter cannot steer it.
        self.start_pci_compute('compute2', num_pci=2, tainted=FIRST)
        self.api.post_server_action(server['id'], {'migrate': None})
        self.notifier.wait_for_versioned_notifications(
            'compute_task.migrate_server.error', timeout=base.WAIT / 2)
        self.assertIn(
            'compute2 rejected: compute2: %s, ignoring the scheduler\'s '
            'choice, and would take the devices of %s: type-PCI %s is in '
            'an IOMMU group with devices that cannot be assigned' % (
                MOVE_PICKS, FIRST, FIRST), self.stdlog.logger.output)
        server = self._wait_for_state_change(server, 'ACTIVE',
                                             max_retries=base.WAIT)
        self.assertEqual('compute1', server['OS-EXT-SRV-ATTR:host'])

    def test_tainted_last_device_migrates_to_the_clean_one(self) -> None:
        self.start_pci_compute('compute1', num_pci=2)
        server = self.create(self.flavor({'pci_passthrough:alias': 'pci:1'}))
        self.start_pci_compute('compute2', num_pci=2, tainted=SECOND)
        server = self._migrate_server(server)
        self.assertEqual('compute2', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([FIRST], self.guest(server).addresses)
        server = self._confirm_resize(server)
        self.assertEqual([FIRST], self.guest(server).addresses)


class ColdMigrationAllocationTest(_MoveTestBase):
    """Placement records the devices nova's move claim takes."""

    DEVICE_SPEC = LM_VF_SPEC

    def test_allocation_follows_nova_pick_not_pack(self) -> None:
        # compute2: a guest on its second PF only. pack would take the
        # next VF there; nova's move claim takes the first PF's.
        self.start_pci_compute('compute2', num_pfs=2, num_vfs=12)
        flavor = self.flavor({'pci_passthrough:alias': 'vfs:1'})
        self.flags(weigh_strategy='spread', group='passthrough_scheduler')
        first, second = self.create(flavor), self.create(flavor)
        on_first_pf = [s for s in (first, second)
                       if self.guest(s).pfs == [FIRST]]
        self.assertEqual(1, len(on_first_pf))
        self._delete_server(on_first_pf[0])
        self.flags(weigh_strategy='pack', group='passthrough_scheduler')
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=12)
        mover = self.create(flavor, az='nova:compute1')
        for _ in range(MOVES // 2):
            mover = self._migrate_server(mover)
            self.assertEqual('compute2', mover['OS-EXT-SRV-ATTR:host'])
            # Rows, XML and Placement agree (Guest.check): nova's pick.
            self.assertEqual([FIRST], self.guest(mover).pfs)
            self.api.post_server_action(mover['id'], {'revertResize': None})
            mover = self._wait_for_state_change(mover, 'ACTIVE',
                                                max_retries=base.WAIT)
            self.assertEqual('compute1', mover['OS-EXT-SRV-ATTR:host'])
