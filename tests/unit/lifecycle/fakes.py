"""Host reports, aliases, a settable clock and domain XML for ledger tests."""

from __future__ import annotations

import datetime
import json

import fixtures

from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)

VF_ALIAS = {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
            'device_type': 'type-VF'}
GPU_ALIAS = {'name': 'gpu', 'vendor_id': '10de', 'product_id': '20b5',
             'device_type': 'type-PCI'}
ALIASES = alias_mod.parse_aliases([json.dumps(VF_ALIAS),
                                   json.dumps(GPU_ALIAS)])

INSTANCE = '6f1c2a9e-3d4b-4c1e-9a2f-0e5d7b8c9a10'
OTHER = '0b7e1f2d-5a6c-4e3f-8d9a-1c2b3e4f5a6b'
PROJECT = 'c0ffee00c0ffee00c0ffee00c0ffee00'


class Clock:
    """An injectable clock: starts at T0, moves only when told."""

    def __init__(self, start: datetime.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> datetime.datetime:
        self.now += datetime.timedelta(**delta)
        return self.now


def host_report(host: str, vfs: int = 4, gpus: int = 1) -> \
        report_mod.HostReport:
    """A PF 0000:3b:00.0 with ``vfs`` VFs and ``gpus`` GPUs at 0000:5e:0N.0."""
    devices = [report_mod.Device(
        '0000:3b:00.0', '8086', '1572', 'type-PF', numa_node=0,
        iommu_group=40, tags={'physical_network': 'physnet1'})]
    for n in range(vfs):
        devices.append(report_mod.Device(
            '0000:3b:02.%d' % n, '8086', '154c', 'type-VF',
            parent_address='0000:3b:00.0', numa_node=0, iommu_group=60 + n,
            tags={'physical_network': 'physnet1'}))
    for n in range(gpus):
        devices.append(report_mod.Device(
            '0000:5e:%02x.0' % n, '10de', '20b5', 'type-PCI',
            class_code='030200', numa_node=0, iommu_group=80 + n,
            resource_class='CUSTOM_GPU_A100'))
    return report_mod.HostReport(
        host, 1, devices, [report_mod.NumaCell(0, 0)],
        reported_at='2026-11-01T00:00:00+00:00')


def pools(host: str, vfs: int = 4, gpus: int = 1) -> pools_mod.HostPools:
    return pools_mod.HostPools.from_report(host_report(host, vfs, gpus))


def flavor(extra_specs: dict[str, str] | None = None
           ) -> request_mod.RequestSet:
    return request_mod.RequestSet.from_extra_specs(
        extra_specs or {'pci_passthrough:alias': 'vf:2'}, ALIASES)


def domain_xml(uuid: str, hostdevs: list[tuple[str, str]],
               interfaces: list[tuple[str, str, str]] = ()) -> str:
    """A libvirt domain with PCI hostdevs and hostdev interfaces.

    ``hostdevs``: (host address, guest address); ``interfaces``: (host
    address, guest address, MAC).
    """
    def attrs(address: str) -> str:
        dom, bus, rest = address.split(':')
        slot, func = rest.split('.')
        return ("domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'"
                % (dom, bus, slot, func))

    parts = ['<domain type="kvm"><name>instance-0000002a</name>',
             '<uuid>%s</uuid><devices>' % uuid,
             '<disk type="file"><address type="pci" domain="0x0000" '
             'bus="0x00" slot="0x04" function="0x0"/></disk>']
    for host, guest in hostdevs:
        parts.append(
            "<hostdev mode='subsystem' type='pci' managed='yes'>"
            "<driver name='vfio'/><source><address %s/></source>"
            "<address type='pci' %s/></hostdev>" % (attrs(host),
                                                   attrs(guest)))
    for host, guest, mac in interfaces:
        parts.append(
            "<interface type='hostdev' managed='yes'><mac address='%s'/>"
            "<source><address type='pci' %s/></source>"
            "<address type='pci' %s/></interface>" % (mac, attrs(host),
                                                     attrs(guest)))
    parts.append('</devices></domain>')
    return ''.join(parts)


class LedgerFixture(fixtures.Fixture):
    """A fresh ledger at ``url`` (an SQLite file in a temp dir by default)."""

    def __init__(self, url: str | None = None) -> None:
        super().__init__()
        self.url = url
        self.clock = Clock()

    def _setUp(self) -> None:
        if self.url is None:
            tmp = self.useFixture(fixtures.TempDir()).path
            self.url = 'sqlite:///%s/ledger.sqlite' % tmp
        self.ledger = ledger_mod.Ledger(self.url, self.clock)
        self.addCleanup(self.ledger.close)
