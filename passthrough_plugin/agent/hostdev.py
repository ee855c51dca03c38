"""libvirt ``<hostdev>`` XML and the QEMU ``-device vfio-pci`` argument."""

from __future__ import annotations

from passthrough_plugin.pci import address as addr


def _attrs(a: addr.PciAddress) -> str:
    return ("domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'"
            % (a.domain, a.bus, a.slot, a.function))


def hostdev_xml(host: addr.PciAddress,
                guest: addr.PciAddress | None = None,
                managed: bool = True) -> str:
    """The domain XML element that passes ``host`` through.

    ``guest`` pins where the device appears inside the guest (the
    ``<address>`` outside ``<source>``), so the guest's ``lspci`` shows the
    host-to-guest mapping.
    """
    lines = ["<hostdev mode='subsystem' type='pci' managed='%s'>"
             % ('yes' if managed else 'no'),
             '  <driver name="vfio"/>',
             '  <source>',
             '    <address %s/>' % _attrs(host),
             '  </source>']
    if guest is not None:
        lines.append("  <address type='pci' %s/>" % _attrs(guest))
    lines.append('</hostdev>')
    return '\n'.join(lines)


def qemu_device(host: addr.PciAddress,
                guest: addr.PciAddress | None = None) -> str:
    """The ``-device`` value for QEMU on a q35 machine."""
    arg = 'vfio-pci,host=%s' % host
    if guest is not None:
        bus = 'pcie.0' if guest.bus == 0 else 'pci.%d' % guest.bus
        arg += ',bus=%s,addr=0x%x.0x%x' % (bus, guest.slot, guest.function)
    return arg
