"""A running guest through libvirt's API: its hostdevs, NUMA nodes, hotplug."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - types only
from collections.abc import Callable
from typing import Any

from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped,unused-ignore]
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import hostdev
from passthrough_plugin.agent import libvirt_events
from passthrough_plugin.pci import address as addr

LOG = logging.getLogger(__name__)
# libvirt's stable ABI values (virDomainModificationImpact, XML flags).
AFFECT_LIVE = 1
AFFECT_CONFIG = 2
XML_INACTIVE = 2
NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'
Connect = Callable[[str], Any]


def default_connect(uri: str) -> Any:
    """``libvirt.open(uri)``; libvirt-python is needed for live hotplug.

    libvirt's event loop runs first, on a thread of its own, so that the
    connection delivers domain events (lifecycle, device removed).
    :raises: AgentError when the binding is missing or the URI fails.
    """
    try:
        import libvirt
    except ImportError:
        raise exception.AgentError(
            reason='live hotplug needs libvirt-python (pip install '
            'libvirt-python); it is not installed') from None
    try:
        libvirt_events.start_default_loop(libvirt)
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise exception.AgentError(
            reason='cannot connect to libvirt at %s ([lifecycle] '
            'libvirt_uri): %s' % (uri, exc)) from None


def _hex(element: ET.Element, key: str) -> int:
    return int(element.get(key) or '0', 16)


def _pci(element: ET.Element | None) -> str | None:
    if element is None or element.get('bus') is None:
        return None
    return '%04x:%02x:%02x.%x' % (
        _hex(element, 'domain'), _hex(element, 'bus'), _hex(element, 'slot'),
        _hex(element, 'function'))


def _parse(xml: str) -> ET.Element:
    """defusedxml's parser: no entities, no DTD (a guest's XML is the
    guest owner's to shape, through metadata)."""
    root: ET.Element = SafeET.fromstring(xml, forbid_dtd=True)
    return root


def hostdevs(xml: str) -> dict[str, str | None]:
    """PCI hostdevs of a domain XML: {host address: guest address}."""
    found: dict[str, str | None] = {}
    for dev in _parse(xml).iter('hostdev'):
        if dev.get('type') != 'pci':
            continue
        host = _pci(dev.find('./source/address'))
        if host is not None:
            guest = dev.find("./address[@type='pci']")
            found[host] = _pci(guest)
    return found


def _nodeset(text: str) -> list[int]:
    cells: set[int] = set()
    for part in text.split(','):
        part = part.strip()
        if not part or part.startswith('^'):
            continue
        low, _sep, high = part.partition('-')
        cells.update(range(int(low), int(high or low) + 1))
    return sorted(cells)


def numa_cells(xml: str) -> list[int] | None:
    """The host NUMA nodes the guest's memory is pinned to, or None."""
    memory = _parse(xml).find('./numatune/memory')
    if memory is None or not memory.get('nodeset'):
        return None
    try:
        return _nodeset(memory.get('nodeset') or '') or None
    except ValueError:
        LOG.warning('cannot read numatune nodeset %r; ignoring NUMA',
                    memory.get('nodeset'))
        return None


def project(xml: str) -> str | None:
    """The owning project nova wrote into the domain's metadata, if any."""
    owner = _parse(xml).find(
        './metadata/{%s}instance/{%s}owner/{%s}project' % (
            NOVA_NS, NOVA_NS, NOVA_NS))
    return owner.get('uuid') if owner is not None else None


class Guest:
    """One domain, looked up by instance UUID on a libvirt connection."""

    def __init__(self, connection: Any, instance: str) -> None:
        self.instance = instance
        try:
            self.domain = connection.lookupByUUIDString(instance)
        except Exception as exc:  # libvirtError of whichever binding
            raise exception.AgentError(
                reason='no libvirt domain for instance %s: %s' % (
                    instance, str(exc).splitlines()[0] if str(exc)
                    else type(exc).__name__)) from None

    def xml(self, live: bool = True) -> str:
        return str(self.domain.XMLDesc(0 if live else XML_INACTIVE))

    def active(self) -> bool:
        return bool(self.domain.isActive())

    def persistent(self) -> bool:
        check = getattr(self.domain, 'isPersistent', None)
        return bool(check()) if check is not None else True

    def hostdevs(self, live: bool = True) -> dict[str, str | None]:
        return hostdevs(self.xml(live))

    def _flags(self, host: str, present: bool) -> int:
        """Which of live and config still need the change (re-runs)."""
        flags = 0
        if self.active() and (host in self.hostdevs(True)) != present:
            flags |= AFFECT_LIVE
        if self.persistent() and (host in self.hostdevs(False)) != present:
            flags |= AFFECT_CONFIG
        return flags

    def lacks(self, host: str) -> bool:
        """Whether the live (if running) or persistent domain lacks it."""
        return bool(self._flags(host, present=True))

    def attach(self, host: str, guest: str | None = None) -> str | None:
        """Attach ``host`` live and persistently (what is not yet done).

        ``managed='no'``: the agent bound the group to vfio-pci already.
        :returns: the guest address libvirt shows for the device.
        """
        flags = self._flags(host, present=True)
        if flags:
            xml = hostdev.hostdev_xml(
                addr.PciAddress.parse(host),
                addr.PciAddress.parse(guest) if guest else None,
                managed=False)
            self.domain.attachDeviceFlags(xml, flags)
        return self.hostdevs(True).get(host, guest)

    def detach(self, host: str) -> None:
        """Ask for ``host`` to go, live and persistently (what remains)."""
        flags = self._flags(host, present=False)
        if flags:
            xml = hostdev.hostdev_xml(addr.PciAddress.parse(host),
                                      managed=False)
            self.domain.detachDeviceFlags(xml, flags)

    def wait_removed(self, host: str, timeout: float,
                     events: libvirt_events.DomainEvents) -> bool:
        """Wait for libvirt's device-removed event for ``host``.

        libvirt drops the device from the live domain and sends the event
        when QEMU reports the guest released it (the event nova waits for);
        the live XML is looked at again at each such event, never polled.
        :returns: False on timeout.
        """
        return events.wait_removed(
            lambda: not self.active() or host not in self.hostdevs(True),
            timeout)
