"""The mini cloud's fake PCI devices and domain XML (stdlib only).

``mc_fakevirt`` (inside nova-compute) uses them; the unit tests import them
without nova.
"""

from __future__ import annotations

from typing import Any

# The VF each PF gets beside the parent's: function 2.
EXTRA_VF_FUNCTION = 2


def with_second_vfs(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``devices`` plus a second VF, ``<PF bus>:00.2``, for every PF."""
    out = list(devices)
    for dev in devices:
        if dev['dev_type'] != 'type-VF':
            continue
        extra = dict(dev)
        extra['address'] = dev['address'][:-1] + str(EXTRA_VF_FUNCTION)
        out.append(extra)
    return sorted(out, key=lambda d: d['address'])


def domain_xml(uuid: str, name: str, addresses: list[str]) -> str:
    """A libvirt domain with one ``<hostdev>`` per host PCI address, guest
    slots from 5 up (as libvirt numbers them after its own devices)."""
    lines = ["<domain type='kvm'>", f'  <name>{name}</name>',
             f'  <uuid>{uuid}</uuid>', '  <devices>']
    for slot, address in enumerate(sorted(addresses), 5):
        domain, bus, rest = address.split(':')
        dev, function = rest.split('.')
        lines += [
            "    <hostdev mode='subsystem' type='pci' managed='yes'>",
            '      <source>',
            f"        <address domain='0x{domain}' bus='0x{bus}' "
            f"slot='0x{dev}' function='0x{function}'/>",
            '      </source>',
            f"      <address type='pci' domain='0x0000' bus='0x00' "
            f"slot='0x{slot:02x}' function='0x0'/>",
            '    </hostdev>']
    lines += ['  </devices>', '</domain>', '']
    return '\n'.join(lines)
