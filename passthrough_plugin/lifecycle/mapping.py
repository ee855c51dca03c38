"""Which host device is which guest device: libvirt domain XML and ledger."""

from __future__ import annotations

import dataclasses
import datetime
import xml.etree.ElementTree as ET  # noqa: S405 - types and tostring only
from typing import Any

import defusedxml  # type: ignore[import-untyped,unused-ignore]
from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped,unused-ignore]
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import records
from passthrough_plugin.pci import address as address_mod
from passthrough_plugin.pci import limits

LOG = logging.getLogger(__name__)

ATTACHED = 'attached'          # in the domain and in the ledger
LEDGER_ONLY = 'ledger-only'    # the ledger says held, the domain lacks it
DOMAIN_ONLY = 'domain-only'    # in the domain, the ledger never saw it

COLUMNS = (('host', 'Host'),
           ('host_address', 'Host address'),
           ('guest_address', 'Guest address'),
           ('instance', 'Instance'),
           ('source', 'Source'),
           ('since', 'Since'),
           ('resource_class', 'Resource class'),
           ('state', 'State'))


@dataclasses.dataclass(frozen=True, slots=True)
class DomainDevice:
    host_address: str
    guest_address: str | None
    kind: str                  # 'hostdev' or 'interface'
    mac: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Domain:
    uuid: str
    name: str
    devices: tuple[DomainDevice, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class MapRow:
    host_address: str
    guest_address: str | None
    instance: str
    source: str | None
    since: datetime.datetime | None
    resource_class: str | None
    alias: str | None
    host: str | None
    kind: str | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _pci(element: ET.Element | None, where: str) -> str | None:
    """A libvirt ``<address type='pci' .../>`` as ``dddd:bb:ss.f``."""
    if element is None:
        return None
    if element.get('type', 'pci') != 'pci':
        return None
    try:
        parts = [int(element.get(name, '0'), 0)
                 for name in ('domain', 'bus', 'slot', 'function')]
        return str(address_mod.PciAddress.parse(
            '%04x:%02x:%02x.%x' % tuple(parts), where))
    except (ValueError, exception.InvalidPciAddress):
        raise exception.DomainXmlError(
            source=where, reason='bad PCI address %s' % limits.excerpt(
                ET.tostring(element, encoding='unicode').strip(), 200)
        ) from None


def parse_domain_xml(text: str | bytes,
                     source: str = 'domain XML') -> Domain:
    """The PCI devices of a libvirt domain, host side and guest side.

    The parser is defusedxml's: no entity expansion, no external entities
    or DTDs; inputs beyond ``limits.MAX_DOMAIN_XML_BYTES`` are refused.

    :raises: DomainXmlError naming ``source``.
    """
    if len(text) > limits.MAX_DOMAIN_XML_BYTES:
        raise exception.DomainXmlError(
            source=source, reason='%d bytes; a domain XML may have at most '
            '%d' % (len(text), limits.MAX_DOMAIN_XML_BYTES))
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except ET.ParseError as exc:
        raise exception.DomainXmlError(
            source=source, reason='not well-formed XML: %s'
            % str(exc)[:200]) from None
    except defusedxml.DefusedXmlException as exc:
        raise exception.DomainXmlError(
            source=source, reason='refused: %s (DTDs and entities are not '
            'allowed in a domain XML)' % type(exc).__name__) from None
    except (ValueError, RecursionError) as exc:
        raise exception.DomainXmlError(
            source=source, reason='unreadable XML: %s'
            % str(exc)[:200]) from None
    if root.tag != 'domain':
        raise exception.DomainXmlError(
            source=source, reason='the root element is <%s>, not <domain>'
            % limits.excerpt(root.tag)[1:-1])
    devices: list[DomainDevice] = []
    for hostdev in root.iterfind('./devices/hostdev'):
        if hostdev.get('mode', 'subsystem') != 'subsystem' \
                or hostdev.get('type') != 'pci':
            continue
        host = _pci(hostdev.find('./source/address'), source)
        if host is not None:
            devices.append(DomainDevice(
                host, _pci(hostdev.find('./address'), source), 'hostdev'))
    for iface in root.iterfind('./devices/interface'):
        if iface.get('type') != 'hostdev':
            continue
        host = _pci(iface.find('./source/address'), source)
        mac = iface.find('./mac')
        if host is not None:
            devices.append(DomainDevice(
                host, _pci(iface.find('./address'), source), 'interface',
                mac.get('address') if mac is not None else None))
    return Domain(root.findtext('uuid', '').strip(),
                  root.findtext('name', '').strip(), tuple(devices))


def read_domain_file(path: str) -> Domain:
    """:raises: DomainXmlError (missing, unreadable or not a domain)."""
    try:
        with open(path, 'rb') as handle:
            # The XML declaration names the encoding; the parser decodes.
            text = handle.read(limits.MAX_DOMAIN_XML_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise exception.DomainXmlError(
            source=limits.printable(path),
            reason=getattr(exc, 'strerror', None) or str(exc)) from None
    if len(text) > limits.MAX_DOMAIN_XML_BYTES:
        raise exception.DomainXmlError(
            source=limits.printable(path), reason='larger than %d bytes; a '
            'domain XML may have at most %d bytes' % (
                limits.MAX_DOMAIN_XML_BYTES, limits.MAX_DOMAIN_XML_BYTES))
    return parse_domain_xml(text, path)


def libvirt_available() -> bool:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return False
    return True


def read_live_domain(instance: str, uri: str) -> Domain:
    """The running domain of ``instance`` (nova names domains by UUID).

    :raises: DomainXmlError, ImportError without libvirt-python.
    """
    import libvirt

    # libvirt prints every error on stderr by default; ours is one line.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        connection = libvirt.openReadOnly(uri)
        try:
            text = connection.lookupByUUIDString(instance).XMLDesc(0)
        finally:
            connection.close()
    except libvirt.libvirtError as exc:
        raise exception.DomainXmlError(
            source='%s on %s' % (instance, uri), reason=str(exc)) from None
    return parse_domain_xml(str(text), instance)


def _row(interval: records.Interval | None, device: DomainDevice | None,
         instance: str, state: str) -> MapRow:
    guest = device.guest_address if device is not None else None
    if guest is None and interval is not None:
        guest = interval.guest_address
    address = device.host_address if device is not None else \
        interval.host_address if interval is not None else ''
    return MapRow(
        address, guest, instance,
        interval.source if interval else None,
        interval.start if interval else None,
        interval.resource_class if interval else None,
        interval.alias if interval else None,
        interval.host if interval else None,
        device.kind if device else None, state)


def join(domain: Domain, intervals: list[records.Interval],
         instance: str) -> list[MapRow]:
    """Domain devices against the instance's open intervals."""
    by_address = {i.host_address: i for i in intervals}
    rows = []
    for device in domain.devices:
        interval = by_address.pop(device.host_address, None)
        rows.append(_row(interval, device, instance,
                         ATTACHED if interval else DOMAIN_ONLY))
    rows += [_row(i, None, instance, LEDGER_ONLY)
             for i in by_address.values()]
    return rows


def map_rows(ledger: ledger_mod.Ledger, instance: str | None = None,
             domain_xml: str | None = None,
             host_address: str | None = None, *, host: str | None = None,
             libvirt_uri: str | None = None,
             at: datetime.datetime | None = None) -> list[MapRow]:
    """One row per device: host address, guest address, instance, source.

    * ``domain_xml``: a file; its devices joined with the ledger.
    * ``instance``: the live domain through libvirt-python when it is
      installed and ``libvirt_uri`` is given, else the ledger's record.
    * ``host_address`` alone: who holds that host device now.
    * nothing: every device held now (on ``host`` if given).
    * ``at``: the ledger as it was at that instant instead of now (a
      domain XML file is then taken to be from that time too).

    :raises: InvalidPciAddress, UnknownInstance, DomainXmlError,
        InvalidLedgerInput
    """
    wanted = None
    if host_address is not None:
        wanted = str(address_mod.PciAddress.parse(host_address,
                                                  '--host-address'))
    rows: list[MapRow]
    held: dict[str, Any] = {'at': at} if at is not None else {'active': True}
    if domain_xml is not None:
        domain = read_domain_file(domain_xml)
        if instance is not None and domain.uuid and domain.uuid != instance:
            raise exception.InvalidLedgerInput(
                field='--domain-xml', value=domain_xml,
                reason='it describes domain %s, not instance %s' % (
                    domain.uuid, instance))
        uuid = instance or domain.uuid
        rows = join(domain, ledger.intervals(instance=uuid, **held), uuid)
    elif instance is not None:
        info = ledger.instance(instance, '--instance')
        intervals = ledger.intervals(instance=instance, **held)
        domain = None
        if (at is None and info.deleted_at is None and libvirt_uri
                and libvirt_available()):
            try:
                domain = read_live_domain(instance, libvirt_uri)
            except exception.DomainXmlError as exc:
                # Not on this host, or no libvirtd here (a controller): the
                # ledger still knows the answer.
                LOG.warning('%s; answering from the ledger alone', exc)
        if domain is not None:
            rows = join(domain, intervals, instance)
        else:
            rows = [_row(i, None, instance, ATTACHED) for i in intervals]
    else:
        rows = [_row(i, None, i.instance, ATTACHED) for i in
                ledger.intervals(host=host, host_address=wanted, **held)]
    if wanted is not None:
        rows = [r for r in rows if r.host_address == wanted]
    return rows


def record_guest_addresses(ledger: ledger_mod.Ledger, instance: str,
                           domain: Domain) -> int:
    """Store the guest addresses libvirt chose; return how many changed."""
    by_address = {d.host_address: d.guest_address for d in domain.devices}
    changed = 0
    with ledger.begin() as txn:
        for assignment in txn.open_intervals(instance):
            guest = by_address.get(assignment.host_address)
            if guest and guest != assignment.guest_address:
                txn.set_guest_address(assignment.id, guest)
                changed += 1
    return changed
