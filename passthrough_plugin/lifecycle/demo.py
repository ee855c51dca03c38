"""A worked example in a ledger: boot, hotplug, rebuild, evacuate, delete.

``python -m passthrough_plugin.lifecycle.demo --ledger URL --xml-dir DIR``
records the life of one instance at fixed times (2026-11-02, UTC) and
writes the libvirt domain XML of each step to DIR, so that
``passthrough-agent map`` and ``passthrough-billing`` have something real
to show. Used for doc/lifecycle.rst.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence

from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import evacuate
from passthrough_plugin.lifecycle import hotplug
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import mapping
from passthrough_plugin.lifecycle import rebuild
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

UTC = datetime.timezone.utc
INSTANCE = '6f1c2a9e-3d4b-4c1e-9a2f-0e5d7b8c9a10'
PROJECT = 'c0ffee00c0ffee00c0ffee00c0ffee00'
ALIASES = alias_mod.parse_aliases([
    json.dumps({'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
                'device_type': 'type-VF'}),
    json.dumps({'name': 'gpu', 'vendor_id': '10de', 'product_id': '20b5',
                'device_type': 'type-PCI'})])
VF0, VF1, GPU = '0000:3b:02.0', '0000:3b:02.1', '0000:5e:00.0'
PORTS = [(VF0, '0000:00:05.0', 'fa:16:3e:4c:2a:01'),
         (VF1, '0000:00:06.0', 'fa:16:3e:4c:2a:02')]


def host(name: str, gpus: int) -> pools_mod.HostPools:
    devices = [report_mod.Device('0000:3b:00.0', '8086', '1572', 'type-PF',
                                 numa_node=0, iommu_group=40)]
    devices += [report_mod.Device('0000:3b:02.%d' % n, '8086', '154c',
                                  'type-VF', parent_address='0000:3b:00.0',
                                  numa_node=0, iommu_group=60 + n)
                for n in range(4)]
    devices += [report_mod.Device('0000:5e:%02x.0' % n, '10de', '20b5',
                                  'type-PCI', numa_node=0,
                                  iommu_group=80 + n,
                                  resource_class='CUSTOM_GPU_A100')
                for n in range(gpus)]
    return pools_mod.HostPools.from_report(report_mod.HostReport(
        name, 1, devices, [report_mod.NumaCell(0, 0)]))


def _address(text: str) -> str:
    dom, bus, rest = text.split(':')
    slot, func = rest.split('.')
    return ("domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'"
            % (dom, bus, slot, func))


def domain_xml(hostdevs: Sequence[tuple[str, str]],
               ports: Sequence[tuple[str, str, str]]) -> str:
    lines = ["<domain type='kvm'>", '  <name>instance-0000002a</name>',
             '  <uuid>%s</uuid>' % INSTANCE, '  <devices>']
    for host_addr, guest in hostdevs:
        lines += ["    <hostdev mode='subsystem' type='pci' managed='yes'>",
                  "      <source><address %s/></source>" % _address(
                      host_addr),
                  "      <address type='pci' %s/>" % _address(guest),
                  '    </hostdev>']
    for host_addr, guest, mac in ports:
        lines += ["    <interface type='hostdev' managed='yes'>",
                  "      <mac address='%s'/>" % mac,
                  "      <source><address type='pci' %s/></source>"
                  % _address(host_addr),
                  "      <address type='pci' %s/>" % _address(guest),
                  '    </interface>']
    return '\n'.join([*lines, '  </devices>', '</domain>', ''])


def run(url: str, xml_dir: str) -> None:
    now = [datetime.datetime(2026, 11, 2, 8, 0, 0, tzinfo=UTC)]
    ledger = ledger_mod.Ledger(url, lambda: now[0])
    a, b = host('compute-a', gpus=1), host('compute-b', gpus=0)
    flavor = request_mod.RequestSet.from_extra_specs(
        {'pci_passthrough:alias': 'vf:2'}, ALIASES)
    os.makedirs(xml_dir, exist_ok=True)

    def write(name: str, text: str) -> None:
        with open(os.path.join(xml_dir, name), 'w', encoding='utf-8') as f:
            f.write(text)

    def at(hms: str) -> None:
        h, m, s = (int(x) for x in hms.split(':'))
        now[0] = now[0].replace(hour=h, minute=m, second=s)

    try:
        claims.boot(ledger, a, INSTANCE, PROJECT, flavor)
        write('1-boot.xml', domain_xml([], PORTS))
        # What the agent does once libvirt has placed the devices.
        mapping.record_guest_addresses(
            ledger, INSTANCE, mapping.parse_domain_xml(domain_xml([], PORTS)))
        at('09:00:17')
        hotplug.attach(ledger, a, INSTANCE, 'gpu', ALIASES,
                       guest_addresses=['0000:00:07.0'])
        write('2-hotplug.xml', domain_xml([(GPU, '0000:00:07.0')], PORTS))
        at('09:30:00')
        rebuild.rebuild(ledger, INSTANCE, 'compute-a')
        at('10:15:42')
        evacuate.evacuate(ledger, INSTANCE, b, flavor, ALIASES,
                          policy=evacuate.BEST_EFFORT)
        write('3-evacuated.xml', domain_xml([], PORTS))
        mapping.record_guest_addresses(
            ledger, INSTANCE, mapping.parse_domain_xml(domain_xml([], PORTS)))
        at('12:00:05')
        claims.delete(ledger, INSTANCE, b)
    finally:
        ledger.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m ' + __name__)
    parser.add_argument('--ledger', required=True, metavar='URL')
    parser.add_argument('--xml-dir', required=True, metavar='DIR')
    args = parser.parse_args(argv)
    run(args.ledger, args.xml_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main())
