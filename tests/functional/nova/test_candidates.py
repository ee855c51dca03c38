"""nova assigns the devices PciPoolFilter chose (PCI in Placement).

Real nova 34 in-process (fake libvirt), ``[pci] report_in_placement`` and
``[filter_scheduler] pci_in_placement`` on, the plugin enabled through
nova.conf, agent reports for the very devices fakelibvirt gives each
compute in the file store. Every scenario boots at least ten times and
reads back what the guest got: the instance's PciDevice rows, the hostdev
addresses in the guest's domain XML and its Placement allocations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

import fixtures
# nova's functional package patches the process for eventlet: it comes
# before anything that imports oslo.context (thread-locals created earlier
# stay shared between green threads, and nova's database transactions
# then collide: "Can't upgrade a READER transaction to a WRITER").
import nova.tests.functional  # noqa: F401

from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt

from passthrough_plugin.pci import report as report_mod
from tests.functional.nova import test_scheduler as base

VEND = fakelibvirt.PCI_VEND_ID
VF_SPEC = [json.dumps({'vendor_id': VEND,
                       'product_id': fakelibvirt.VF_PROD_ID})]
PCI_SPEC = [json.dumps({'vendor_id': VEND,
                        'product_id': fakelibvirt.PCI_PROD_ID})]
ALIASES = [json.dumps(x) for x in (
    {'vendor_id': VEND, 'product_id': fakelibvirt.VF_PROD_ID,
     'device_type': 'type-VF', 'name': 'vfs'},
    {'vendor_id': VEND, 'product_id': fakelibvirt.PCI_PROD_ID,
     'device_type': 'type-PCI', 'name': 'pci'},
)]
ANTI = {'pci_passthrough:alias': 'vfs:2',
        'passthrough:vf_anti_affinity': 'true'}
BOOTS = 10
# Polls of 0.5 s: nova's default (10) is too short on a loaded machine.
WAIT = 120
# fakelibvirt names a VF's PF wrongly beyond 6 VFs per PF: PFs here have
# at most 6.


class Guest:
    """The devices one guest got, read back from three places."""

    def __init__(self, test: Any, server: dict[str, Any]) -> None:
        ctxt = nova_context.get_admin_context()
        self.host = server['OS-EXT-SRV-ATTR:host']
        node = objects.ComputeNode.get_by_nodename(ctxt, self.host)
        # Only the devices on the guest's host (after an evacuation the
        # source keeps its rows until its compute service is back).
        devices = [d for d in objects.PciDeviceList.get_by_instance_uuid(
            ctxt, server['id']) if d.compute_node_id == node.id]
        self.addresses = sorted(d.address for d in devices)
        self.pfs = [d.parent_addr for d in sorted(
            devices, key=lambda d: d.address)]
        conn = test.computes[self.host].driver._host.get_connection()
        xml = conn.lookupByUUIDString(server['id']).XMLDesc(0)
        # After a resize fakelibvirt's domain lists a hostdev twice.
        self.hostdevs = sorted(set(_hostdev_addresses(xml)))
        allocations = test._get_allocations_by_server_uuid(server['id'])
        names = {rp['uuid']: rp['name']
                 for rp in test.placement.get(
                     '/resource_providers').body['resource_providers']}
        # Provider name -> devices taken there (nova names a PCI provider
        # <host>_<PF or device address>).
        self.providers = {
            names[rp].split('_', 1)[1].lower(): sum(a['resources'].values())
            for rp, a in allocations.items()
            if names[rp].startswith(self.host + '_')}

    def check(self, test: Any) -> None:
        """The three views agree."""
        test.assertEqual(self.addresses, self.hostdevs,
                         'PciDevice rows and the guest XML differ')
        per_provider: dict[str, int] = {}
        for address, pf in zip(self.addresses, self.pfs, strict=True):
            key = pf or address
            per_provider[key] = per_provider.get(key, 0) + 1
        test.assertEqual(per_provider, self.providers,
                         'PciDevice rows %s and Placement allocations on %s '
                         'differ' % (self.addresses, self.host))


def _hostdev_addresses(xml: str) -> list[str]:
    found = []
    for hostdev in ElementTree.fromstring(xml).findall('./devices/hostdev'):
        a = hostdev.find('./source/address')
        assert a is not None
        found.append('%04x:%02x:%02x.%x' % tuple(
            int(a.get(k) or '0', 16)
            for k in ('domain', 'bus', 'slot', 'function')))
    return found


class _CandidateTestBase(base._PluginTestBase):
    """PCI in Placement: nova's own inventory, the plugin's choices."""

    DEVICE_SPEC: Sequence[str] = VF_SPEC
    # nova's filter keeps its own checks; ours runs last, on what is left.
    ADDITIONAL_FILTERS = ['PciPassthroughFilter', 'PciPoolFilter']
    PCI_IN_PLACEMENT = True
    # Deletes run inline under the API's database reader otherwise, and
    # nova-compute's writes then fail now and again.
    CAST_AS_CALL = False

    def setUp(self) -> None:
        super().setUp()
        self.flags(device_spec=list(self.DEVICE_SPEC), alias=ALIASES,
                   report_in_placement=True, group='pci')
        self.flags(pci_in_placement=self.PCI_IN_PLACEMENT,
                   group='filter_scheduler')
        # More guests than nova's default quota of ten.
        self.flags(instances=4 * BOOTS, cores=4 * BOOTS, group='quota')

    def start_pci_compute(self, host: str, *, num_pfs: int = 0,
                          num_vfs: int = 0, num_pci: int = 0,
                          report: bool = True, tainted: str | None = None,
                          **compute: Any) -> report_mod.HostReport:
        """A compute and its agent's report; ``tainted``: the address of
        a device whose IOMMU group holds a device that cannot be
        assigned; ``compute``: more arguments of nova's start_compute."""
        pci_info = fakelibvirt.HostPCIDevicesInfo(
            num_pci=num_pci, num_pfs=num_pfs, num_vfs=num_vfs)
        self.start_compute(hostname=host, pci_info=pci_info, **compute)
        host_report = base.report_for(host, pci_info, self.DEVICE_SPEC)
        if tainted is not None:
            group = next(d.iommu_group for d in host_report.devices
                         if d.address == tainted)
            assert group is not None
            host_report.iommu.foreign_members = {group: ('0000:00:1f.3',)}
        if report:
            self.store.publish(host_report)
        return host_report

    def flavor(self, extra_spec: dict[str, str], memory_mb: int = 256
               ) -> str:
        """A small flavor: devices, not disk or RAM, run out first."""
        return str(self._create_flavor(
            memory_mb=memory_mb, vcpu=1, disk=1, ephemeral=0,
            extra_spec=extra_spec))

    def create(self, flavor: str, expected_state: str = 'ACTIVE',
               az: str | None = None) -> dict[str, Any]:
        """Boot one server and wait (bounded) for ``expected_state``;
        ``az='nova:<host>'`` places it on that host."""
        server = self.api.post_server({'server': self._build_server(
            flavor_id=flavor, networks='none', az=az)})
        return self._wait_for_state_change(server, expected_state,
                                           max_retries=WAIT)

    def boot_flavor(self, extra_spec: dict[str, str],
                    expected_state: str = 'ACTIVE') -> dict[str, Any]:
        return self.create(self.flavor(extra_spec), expected_state)

    def multi_create(self, flavor: str, count: int
                     ) -> list[dict[str, Any]]:
        """One request for ``count`` servers (min_count = max_count)."""
        body = self._build_server(flavor_id=flavor, networks='none')
        body.update(min_count=count, max_count=count,
                    return_reservation_id=True)
        reservation = self.api.post_server({'server': body})[
            'reservation_id']
        servers = self.api.get_servers(
            detail=False, search_opts={'reservation_id': reservation})
        self.assertEqual(count, len(servers))
        return [self._wait_for_state_change(s, 'ACTIVE', max_retries=WAIT)
                for s in servers]

    def guest(self, server: dict[str, Any]) -> Guest:
        found = Guest(self, server)
        found.check(self)
        return found

    def assertDistinctPfs(self, guest: Guest, count: int) -> None:
        self.assertEqual(count, len(guest.addresses), guest.addresses)
        self.assertEqual(count, len(set(guest.pfs)),
                         'VFs %s share a PF' % guest.addresses)
        self.assertEqual(count, len(guest.providers), guest.providers)


class AntiAffinityTest(_CandidateTestBase):

    def test_distinct_pfs_on_every_boot(self) -> None:
        self.start_pci_compute('compute1', num_pfs=4, num_vfs=24)
        flavor = self.flavor(ANTI)
        for _ in range(BOOTS):
            server = self.create(flavor)
            self.assertDistinctPfs(self.guest(server), 2)

    def test_multi_create_obeys_for_every_instance(self) -> None:
        self.start_pci_compute('compute1', num_pfs=3, num_vfs=18)
        self.start_pci_compute('compute2', num_pfs=3, num_vfs=18)
        flavor = self.flavor(ANTI)
        servers: list[dict[str, Any]] = []
        while len(servers) < BOOTS:
            servers.extend(self.multi_create(flavor, 3))
        for server in servers:
            self.assertDistinctPfs(self.guest(server), 2)

    def test_evacuate_keeps_distinct_pfs_or_says_why_not(self) -> None:
        """nova 34's evacuation claim picks the devices itself, the first
        free ones of its pools (see the resize test). The plugin passes
        only the hosts where that pick keeps the rule: compute2, whose
        PFs have one free VF each, not compute3."""
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=12)
        flavor = self.flavor(ANTI)
        servers = self.multi_create(flavor, 2)
        self.start_pci_compute('compute2', num_pfs=2, num_vfs=2)
        self.start_pci_compute('compute3', num_pfs=2, num_vfs=12)
        self.computes['compute1'].stop()
        self.api.put_service_force_down(
            self.api.get_services(host='compute1',
                                  binary='nova-compute')[0]['id'], True)
        self.api.post_server_action(servers[0]['id'], {'evacuate': {}})
        # As nova's own _evacuate_server expects: the guest of a stopped
        # fake compute comes back SHUTOFF.
        server = self._wait_for_server_parameter(
            servers[0], {'OS-EXT-SRV-ATTR:host': 'compute2',
                         'status': 'SHUTOFF'}, max_retries=WAIT)
        self.assertDistinctPfs(self.guest(server), 2)
        self.assertIn(
            'compute3 rejected: compute3: 2 x vfs with '
            'passthrough:vf_anti_affinity: on a resize, cold migration or '
            'evacuation nova 34 picks the devices itself',
            self.stdlog.logger.output)
        # compute2 is full now: the second guest has nowhere to keep it.
        self.api.post_server_action(servers[1]['id'], {'evacuate': {}})
        self._wait_for_server_parameter(
            servers[1], {'OS-EXT-SRV-ATTR:host': 'compute1',
                         'status': 'ERROR'}, max_retries=WAIT)

    def test_resize_nova_would_break_is_refused_with_the_reason(
            self) -> None:
        """nova 34 does not apply the scheduler's PCI allocation on a
        resize, cold migration or evacuation: its move claim rebuilds the
        PCI requests from the flavor without the providers and takes the
        first free devices of its pools. Where that breaks anti-affinity
        the plugin refuses the host, and says why."""
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=12)
        self.start_pci_compute('compute2', num_pfs=2, num_vfs=12)
        small, large = (self.flavor(ANTI, memory_mb=m) for m in (256, 512))
        server = self.create(small)
        before = self.guest(server)
        self.assertDistinctPfs(before, 2)
        # The fake hypervisor has no disk to copy (nova's own PCI resize
        # tests stub the same call).
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver'
            '.migrate_disk_and_power_off', return_value='{}'))
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': large}})
        self.notifier.wait_for_versioned_notifications(
            'compute_task.migrate_server.error', timeout=WAIT / 2)
        target = 'compute2' if before.host == 'compute1' else 'compute1'
        self.assertIn(
            '%s rejected: %s: 2 x vfs with passthrough:vf_anti_affinity: on '
            'a resize, cold migration or evacuation nova 34 picks the '
            'devices itself' % (target, target), self.stdlog.logger.output)
        server = self._wait_for_state_change(server, 'ACTIVE',
                                             max_retries=WAIT)
        self.assertEqual(before.addresses, self.guest(server).addresses)
        # Without the rule, nova's own pick is no harm: the resize goes.
        plain = self.flavor({'pci_passthrough:alias': 'vfs:2'}, 512)
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': plain}})
        server = self._wait_for_state_change(server, 'VERIFY_RESIZE',
                                             max_retries=WAIT)
        self.assertEqual(target, server['OS-EXT-SRV-ATTR:host'])


class ClassicModeTest(_CandidateTestBase):
    """No PCI in Placement: no channel to nova-compute, say so."""

    PCI_IN_PLACEMENT = False

    def test_anti_affinity_is_no_valid_host_with_the_reason(self) -> None:
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=8)
        server = self.boot_flavor(ANTI, expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('compute1 rejected: compute1: '
                      'passthrough:vf_anti_affinity needs '
                      '[filter_scheduler] pci_in_placement = True', log)
        self.assertIn('PciPoolFilter runs in classic mode', log)


class _TaintedCase:
    """Eleven type-PCI devices; one shares its IOMMU group with a device
    that cannot be assigned."""

    DEVICE_SPEC = PCI_SPEC
    TAINTED = ''

    def test_tainted_device_is_never_assigned(self: Any) -> None:
        self.start_pci_compute('compute1', num_pci=BOOTS + 1,
                               tainted=self.TAINTED)
        flavor = self.flavor({'pci_passthrough:alias': 'pci:1'})
        got = []
        for _ in range(BOOTS):
            server = self.create(flavor)
            got.extend(self.guest(server).addresses)
        self.assertNotIn(self.TAINTED, got)
        self.assertEqual(BOOTS, len(set(got)))
        # Only the tainted one is left: nova would take it, the plugin
        # says why not.
        server = self.create(flavor, 'ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('compute1 rejected: compute1: type-PCI %s is in an '
                      'IOMMU group with devices that cannot be assigned'
                      % self.TAINTED, self.stdlog.logger.output)


class TaintedFirstTest(_TaintedCase, _CandidateTestBase):
    TAINTED = '0000:81:00.0'


class TaintedLastTest(_TaintedCase, _CandidateTestBase):
    TAINTED = '0000:81:0a.0'


class _StrategyCase(_CandidateTestBase):
    """2 PFs x 6 VFs, VFs asked one at a time: how they are spread."""

    def usage(self, servers: list[dict[str, Any]]) -> dict[str, int]:
        """VFs in use per PF, from the guests' PciDevice rows."""
        found = {'0000:81:00.0': 0, '0000:81:01.0': 0}
        for server in servers:
            for pf in self.guest(server).pfs:
                found[pf] += 1
        return found

    def boots(self) -> list[dict[str, int]]:
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=12)
        flavor = self.flavor({'pci_passthrough:alias': 'vfs:1'})
        servers: list[dict[str, Any]] = []
        usages = []
        for _ in range(BOOTS):
            servers.append(self.create(flavor))
            usages.append(self.usage(servers))
        return usages


class PackTest(_StrategyCase):
    STRATEGY = 'pack'

    def test_vfs_come_from_the_pf_in_use(self) -> None:
        # Placement lists the first PF's candidates first: start with a
        # guest on the second PF only, so following Placement's order
        # would break the whole first PF.
        self.start_pci_compute('compute1', num_pfs=2, num_vfs=12)
        flavor = self.flavor({'pci_passthrough:alias': 'vfs:1'})
        self.flags(weigh_strategy='spread', group='passthrough_scheduler')
        first, second = self.create(flavor), self.create(flavor)
        on_first_pf = [s for s in (first, second)
                       if self.guest(s).pfs == ['0000:81:00.0']]
        self.assertEqual(1, len(on_first_pf))
        self._delete_server(on_first_pf[0])
        kept = second if on_first_pf[0] is first else first
        self.flags(weigh_strategy='pack', group='passthrough_scheduler')
        servers = [kept]
        for n in range(1, BOOTS + 1):
            servers.append(self.create(flavor))
            # The second PF serves every VF until it is full (6), the
            # first stays whole until then.
            self.assertEqual({'0000:81:00.0': max(n - 5, 0),
                              '0000:81:01.0': min(n + 1, 6)},
                             self.usage(servers))


class SpreadTest(_StrategyCase):
    STRATEGY = 'spread'

    def test_vfs_come_from_the_freest_pf(self) -> None:
        for n, usage in enumerate(self.boots(), 1):
            self.assertEqual([n // 2, n - n // 2], sorted(usage.values()),
                             usage)
