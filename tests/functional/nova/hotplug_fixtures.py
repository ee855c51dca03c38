"""A compute host for live hotplug tests: fake sysfs, file store, ledger,
and nova's fakelibvirt behind libvirt's API, with fault injection."""

from __future__ import annotations

import os
import textwrap
import threading
from typing import Any

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from oslo_config import cfg

from passthrough_plugin import conf as conf_mod
from passthrough_plugin import exception
from passthrough_plugin.agent import hotplug_follow
from passthrough_plugin.agent import hotplug_journal
from passthrough_plugin.agent import libvirt_events
from passthrough_plugin.agent import libvirt_guest
from passthrough_plugin.agent import live_hotplug
from passthrough_plugin.agent import privsep
from passthrough_plugin.agent import service
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.store import file as file_store
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.lifecycle import fakes

HOST = 'compute-1'
DEST = 'compute-2'
INSTANCE = fakes.INSTANCE
OTHER = fakes.OTHER
PROJECT = fakes.PROJECT
GPU0 = '0000:5e:00.0'         # NUMA node 0, shares its group with:
GPU0_AUDIO = '0000:5e:00.1'   # its HDMI audio function
GPU1 = '0000:d8:00.0'         # NUMA node 1, a group of its own
POOL = (GPU0, GPU0_AUDIO, GPU1)
GPU_ALIAS = ('{"name": "gpu", "vendor_id": "10de", "product_id": "20b5", '
             '"device_type": "type-PCI", "numa_policy": "preferred"}')


class Crash(BaseException):
    """The agent killed at this point: no except clause of ours runs."""


class FaultyStore(file_store.FileReportStore):
    """The file store, with a failing or crashing claim on demand."""

    fail_claim = False
    crash_after_claim = False
    fail_publish = False

    def publish(self, report: Any) -> int:
        if self.fail_publish:
            raise exception.StoreUnavailable(store='file',
                                             reason='injected outage')
        return super().publish(report)

    def claim(self, host: str, consumer: str, devices: Any,
              expected_generation: int | None = None,
              source: str = 'flavor') -> int:
        if self.fail_claim:
            raise exception.StoreUnavailable(store='file',
                                             reason='injected fault')
        generation = super().claim(host, consumer, devices,
                                   expected_generation, source)
        if self.crash_after_claim:
            raise Crash('after the claim')
        return generation


class Faults:
    """What the libvirt side does wrong, counted per call."""

    def __init__(self) -> None:
        self.fail_attach_at: int | None = None
        self.crash_after_attach_at: int | None = None
        self.crash_after_detach = False
        self.hung_guest = False
        # The guest takes its time: the live detach waits for release().
        self.slow_guest = False
        self.unreleased: list[tuple[Any, str]] = []
        self.asked = threading.Event()  # the slow guest was asked
        self.attach_calls = 0
        self.sent: list[str] = []


def release(domain: Any, xml: str) -> None:
    """The guest released the device: what libvirt does when QEMU reports
    DEVICE_DELETED (the device leaves the domain, then libvirt sends its
    device-removed event, which fakelibvirt does not send by itself)."""
    alias = 'hostdev'
    for info in domain._def['devices']['hostdevs']:
        if "bus='%s' slot='%s'" % (info['bus'], info['slot']) in xml:
            alias = info.get('alias', alias)
    domain.detachDeviceFlags(xml, 3)
    connection = domain._connection
    callback = connection._event_callbacks.get(
        libvirt_events.EVENT_ID_DEVICE_REMOVED)
    if callback is not None:
        callback[0](connection, domain, alias, callback[1])


class FaultyDomain:
    """A fakelibvirt domain behind the same calls, with injected faults."""

    def __init__(self, domain: Any, faults: Faults) -> None:
        self._domain = domain
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._domain, name)

    def attachDeviceFlags(self, xml: str, flags: int) -> None:  # noqa: N802
        faults = self._faults
        faults.attach_calls += 1
        faults.sent.append(xml)
        if faults.attach_calls == faults.fail_attach_at:
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError, 'internal error: unable to '
                'execute QEMU command device_add (injected)',
                error_code=fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        self._domain.attachDeviceFlags(xml, flags)
        if faults.attach_calls == faults.crash_after_attach_at:
            raise Crash('after attach call %d' % faults.attach_calls)

    def detachDeviceFlags(self, xml: str, flags: int) -> None:  # noqa: N802
        faults = self._faults
        faults.sent.append(xml)
        live = flags & libvirt_guest.AFFECT_LIVE
        if faults.hung_guest and live:
            # The guest ignores the unplug request: nothing changes live.
            return
        if faults.slow_guest and live:
            faults.unreleased.append((self._domain, xml))
            faults.asked.set()
            return
        release(self._domain, xml)
        if faults.crash_after_detach:
            raise Crash('after the detach call')


class FaultyConnection:
    def __init__(self, connection: Any, faults: Faults) -> None:
        self._connection = connection
        self._faults = faults

    def lookupByUUIDString(self, uuid: str) -> FaultyDomain:  # noqa: N802
        return FaultyDomain(self._connection.lookupByUUIDString(uuid),
                            self._faults)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class PinnedKernel:
    """The host's kernel emulator, with the in-process privileged side
    pinned to this host's tree before each write (two fake hosts share one
    process, and the privileged root is process-wide)."""

    def __init__(self, kernel: Any, root: str) -> None:
        self._kernel = kernel
        self._root = root

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kernel, name)

    def on_write(self, rel: str, value: str, commit: Any) -> None:
        def pinned() -> None:
            privsep.pin_root(self._root)
            commit()
        self._kernel.on_write(rel, value, pinned)


class ControlPlane(fixtures.Fixture):
    """What the hosts share: the report store's directory, the ledger's
    database, one clock."""

    def _setUp(self) -> None:
        self.root = self.useFixture(fixtures.TempDir()).path
        self.reports = os.path.join(self.root, 'reports')
        self.ledger_url = 'sqlite:///%s/ledger.sqlite' % self.root
        self.clock = fakes.Clock()


def domain_xml(uuid: str, name: str, node: int) -> str:
    return textwrap.dedent('''\
        <domain type='kvm'><name>%s</name><uuid>%s</uuid>
          <memory>1048576</memory><vcpu>2</vcpu><os><type>hvm</type></os>
          <numatune><memory mode='strict' nodeset='%d'/>
            <memnode cellid='0' mode='strict' nodeset='%d'/></numatune>
          <devices></devices></domain>''') % (name, uuid, node, node)


GUESTS = ((INSTANCE, 'instance-1', 0), (OTHER, 'instance-2', 1))


class HotplugHost(fixtures.Fixture):
    """One compute host with a hotplug pool of two GPUs, and its guests."""

    def __init__(self, name: str = HOST, plane: ControlPlane | None = None,
                 guests: Any = GUESTS) -> None:
        super().__init__()
        self.name = name
        self.plane = plane
        self.guests = guests

    def _setUp(self) -> None:
        plane = self.plane or self.useFixture(ControlPlane())
        self.host = self.useFixture(agent_fixtures.FakeHost())
        self.host.fs.kernel = PinnedKernel(self.host.kernel,
                                           str(self.host.tree.sys))
        tree = self.host.tree
        tree.add_driver('nouveau', (('10de', '20b5'),))
        tree.add_driver('snd_hda_intel', (('10de', '1aef'),))
        shared = tree.new_group()
        tree.add_device(GPU0, vendor='10de', product='20b5',
                        class_code='030200', driver='nouveau', numa_node=0,
                        iommu_group=shared)
        tree.add_device(GPU0_AUDIO, vendor='10de', product='1aef',
                        class_code='040300', driver='snd_hda_intel',
                        numa_node=0, iommu_group=shared)
        tree.add_device(GPU1, vendor='10de', product='20b5',
                        class_code='030200', driver='nouveau', numa_node=1)
        self.config = os.path.join(self.host.root, 'agent.conf')
        self.ledger_url = plane.ledger_url
        with open(self.config, 'w') as out:
            out.write(textwrap.dedent("""\
                [agent]
                host = %s
                [file_store]
                path = %s
                [pci]
                device_spec = {"vendor_id": "8086", "product_id": "10ca"}
                alias = %s
                [hotplug]
                device_spec = {"vendor_id": "10de"}
                detach_timeout = 0.3
                [lifecycle]
                connection = %s
                """) % (self.name, plane.reports, GPU_ALIAS,
                        self.ledger_url))
        self.conf = cfg.ConfigOpts()
        conf_mod.register_all(self.conf)
        self.conf([], project='passthrough-plugin',
                  default_config_files=[self.config])
        self.store = FaultyStore(self.conf)
        self.agent = service.Agent(self.conf, self.host.fs,
                                   lambda _conf: self.store,
                                   state_path=self.host.state_path)
        self.clock = plane.clock
        self.ledger = ledger_mod.Ledger(self.ledger_url, self.clock)
        self.addCleanup(self.ledger.close)
        self.connection = fakelibvirt.Connection('qemu:///system')
        for uuid, name, node in self.guests:
            self.connection.defineXML(domain_xml(uuid, name, node)).create()
        self.faults = Faults()
        # One registration per connection, as the agent makes it.
        self.events = libvirt_events.DomainEvents(self.connection)
        self.addCleanup(self.events.close)
        self.agent.publish()

    def hotplugger(self) -> live_hotplug.LiveHotplug:
        return live_hotplug.LiveHotplug(
            self.agent, self.ledger,
            alias_mod.parse_aliases(self.conf.pci.alias),
            FaultyConnection(self.connection, self.faults),
            timeout=self.conf.hotplug.detach_timeout, events=self.events)

    def follower(self) -> hotplug_follow.Follower:
        """``run``'s side: following this host's domain events."""
        follower = hotplug_follow.Follower(self.hotplugger())
        follower.start()
        self.addCleanup(follower.stop)
        return follower

    # -- what nova does to a domain ----------------------------------------
    def nova_define(self, uuid: str = INSTANCE, start: bool = True) -> None:
        """Define the domain again from nova's records (no hostdev of
        ours), then start it: hard reboot, resize, a move's destination."""
        name, node = {u: (n, c) for u, n, c in GUESTS}[uuid]
        self.nova_destroy(uuid, undefine=False)
        domain = self.connection.defineXML(domain_xml(uuid, name, node))
        if start:
            domain.create()

    def nova_destroy(self, uuid: str = INSTANCE,
                     undefine: bool = True) -> None:
        """Power the domain off, and undefine it (a move's source)."""
        try:
            domain = self.connection.lookupByUUIDString(uuid)
        except fakelibvirt.libvirtError:
            return
        if domain.isActive():
            domain.destroy()
        if undefine:
            domain.undefine()

    def hostdev_xml(self, uuid: str = INSTANCE) -> list[str]:
        """The guest's PCI hostdev elements as libvirt shows them, one
        line each."""
        xml = self.guest(uuid).xml()
        return ['<hostdev ' + ' '.join(part.split('</hostdev>')[0].split())
                + '</hostdev>' for part in xml.split('<hostdev ')[1:]
                if "type='pci'" in part.split('>')[0]]

    def guest(self, uuid: str = INSTANCE) -> libvirt_guest.Guest:
        return libvirt_guest.Guest(self.connection, uuid)

    def journal(self) -> hotplug_journal.HotplugJournal:
        return hotplug_journal.HotplugJournal(
            live_hotplug.journal_path(self.host.state_path))

    def state(self, uuid: str = INSTANCE) -> dict[str, Any]:
        """Everything an attach changes, for before/after comparisons."""
        fs = self.host.fs
        report = self.store.get(self.name)
        journal = self.journal()
        try:
            guest: libvirt_guest.Guest | None = self.guest(uuid)
        except exception.AgentError:
            guest = None
        return {
            'drivers': {a: (fs.driver(a), fs.driver_override(a))
                        for a in POOL},
            'claims': {d.address: (d.status, d.owner, d.source)
                       for d in report.devices if d.address in POOL},
            'live': guest.hostdevs(True) if guest else None,
            'config': guest.hostdevs(False) if guest else None,
            'intervals': [(i.host_address, i.source, i.end_reason)
                          for i in self.ledger.intervals(
                              instance=uuid, host=self.name)],
            'pending': journal.pending,
            'attached': sorted(journal.held_by(uuid)),
        }
