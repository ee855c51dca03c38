"""The HostReport, schema v1: what a host says about its PCI devices."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import jsonschema

from passthrough_plugin import exception
from passthrough_plugin.pci import limits
from passthrough_plugin.pci import names

VERSION = 1
STATUSES = ('available', 'claimed', 'allocated', 'unavailable',
            'unclaimable')
IN_USE = frozenset(('claimed', 'allocated'))
SOURCES = ('flavor', 'hotplug')
DEV_TYPES = ('type-PCI', 'type-PF', 'type-VF')

# The schema's string patterns ("(?!\n)": "$" alone lets a final newline
# through), and what each accepts, said for the operator reading an error.
_ADDRESS_RE = '^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\\.[0-7]$(?!\n)'
_HEX4_RE = '^[0-9a-f]{4}$(?!\n)'
_CLASS_RE = '^[0-9a-f]{6}$(?!\n)'
_NAME_RE = '^[A-Z0-9_]+$(?!\n)'
_GROUP_RE = '^(0|[1-9][0-9]*)$(?!\n)'
PATTERN_TEXT = {
    _ADDRESS_RE: 'a PCI address domain:bus:slot.function in lower-case hex, '
                 'slot 00-1f, function 0-7 (e.g. 0000:81:00.0)',
    _HEX4_RE: '4 lower-case hex digits (e.g. 8086)',
    _CLASS_RE: '6 lower-case hex digits (e.g. 020000)',
    _NAME_RE: 'upper-case letters, digits and _ only (e.g. CUSTOM_FAST)',
    _GROUP_RE: 'an IOMMU group number: decimal digits, no leading zero '
               '(e.g. 12)',
}
_ADDRESS = {'type': 'string', 'pattern': _ADDRESS_RE}
_HEX4 = {'type': 'string', 'pattern': _HEX4_RE}
_OPT_INT = {'type': ['integer', 'null'], 'minimum': 0}
_OPT_STR = {'type': ['string', 'null']}

DEVICE_SCHEMA: dict[str, Any] = {
    'type': 'object',
    'additionalProperties': False,
    'required': ['address', 'vendor_id', 'product_id', 'dev_type'],
    'properties': {
        'address': _ADDRESS,
        'vendor_id': _HEX4,
        'product_id': _HEX4,
        'class': {'type': 'string', 'pattern': _CLASS_RE},
        'dev_type': {'enum': list(DEV_TYPES)},
        'parent_address': {'oneOf': [_ADDRESS, {'type': 'null'}]},
        'numa_node': {**_OPT_INT, 'maximum': limits.MAX_NUMA_NODE},
        'iommu_group': _OPT_INT,
        'driver': _OPT_STR,
        'devname': _OPT_STR,
        'tags': {'type': 'object',
                 'additionalProperties': {'type': 'string'}},
        'resource_class': {'type': 'string', 'pattern': _NAME_RE},
        'traits': {'type': 'array', 'uniqueItems': True,
                   'items': {'type': 'string', 'pattern': _NAME_RE}},
        'status': {'enum': list(STATUSES)},
        'owner': _OPT_STR,
        'source': {'enum': [*SOURCES, None]},
        # nova's pool keys beyond the tags: spec tags given as null, and
        # the netdev name of a VF's PF (nova's libvirt driver adds it).
        'null_tags': {'type': 'array', 'uniqueItems': True,
                      'items': {'type': 'string'}},
        'parent_ifname': _OPT_STR,
        # nova's history-dependent pool order (pci/pools.py): when the
        # device's pool was listed, when the device joined it.
        'pool_stamp': _OPT_INT,
        'join_stamp': _OPT_INT,
        # In [hotplug] device_spec, not nova's: only the plugin hands it
        # out (live attach), only hotplug headroom counts it.
        'hotplug_pool': {'type': 'boolean'},
    },
}

SCHEMA: dict[str, Any] = {
    '$schema': 'http://json-schema.org/draft-07/schema#',
    'title': 'passthrough-plugin HostReport',
    'type': 'object',
    'additionalProperties': False,
    'required': ['version', 'host', 'generation', 'devices'],
    'properties': {
        'version': {'const': VERSION},
        'host': {'type': 'string', 'minLength': 1, 'maxLength': 255},
        'generation': {'type': 'integer', 'minimum': 0},
        'reported_at': _OPT_STR,
        'numa_cells': {
            'type': 'array',
            'items': {
                'type': 'object',
                'additionalProperties': False,
                'required': ['id'],
                'properties': {'id': {'type': 'integer', 'minimum': 0},
                               'socket': _OPT_INT},
            },
        },
        'iommu': {
            'type': 'object',
            'additionalProperties': False,
            'properties': {
                'enabled': {'type': 'boolean'},
                'interrupt_remapping': {'type': ['boolean', 'null']},
                # Per IOMMU group: members that are neither in this report
                # nor PCI bridges. Any such member makes the group unusable.
                'foreign_members': {
                    'type': 'object',
                    'propertyNames': {
                        'pattern': _GROUP_RE},
                    'additionalProperties': {'type': 'array',
                                             'items': _ADDRESS},
                },
            },
        },
        'devices': {'type': 'array', 'items': DEVICE_SCHEMA,
                    'maxItems': limits.MAX_DEVICES},
    },
}
# JSON Schema counts 1.0 as an integer; a generation or a NUMA node must be
# a real int here, or arithmetic on it goes wrong.
_TYPES = jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
    'integer',
    lambda _checker, value: isinstance(value, int)
    and not isinstance(value, bool))
_VALIDATOR = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft7Validator, type_checker=_TYPES)(SCHEMA)


@dataclasses.dataclass(slots=True)
class Device:
    """One whitelisted PCI device of a host."""

    address: str
    vendor_id: str
    product_id: str
    dev_type: str
    class_code: str = '000000'
    parent_address: str | None = None
    numa_node: int | None = None
    iommu_group: int | None = None
    driver: str | None = None
    devname: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    resource_class: str = ''
    traits: tuple[str, ...] = ()
    status: str = 'available'
    owner: str | None = None
    source: str | None = None
    null_tags: tuple[str, ...] = ()
    parent_ifname: str | None = None
    pool_stamp: int | None = None
    join_stamp: int | None = None
    hotplug_pool: bool = False

    def __post_init__(self) -> None:
        if not self.resource_class:
            self.resource_class = names.resource_class(
                None, self.vendor_id, self.product_id)

    def to_dict(self) -> dict[str, Any]:
        out = self._base_dict()
        # nova's extra pool keys and pool history, only when known.
        if self.null_tags:
            out['null_tags'] = list(self.null_tags)
        for key in ('parent_ifname', 'pool_stamp', 'join_stamp'):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.hotplug_pool:
            out['hotplug_pool'] = True
        return out

    def _base_dict(self) -> dict[str, Any]:
        return {
            'address': self.address,
            'vendor_id': self.vendor_id,
            'product_id': self.product_id,
            'class': self.class_code,
            'dev_type': self.dev_type,
            'parent_address': self.parent_address,
            'numa_node': self.numa_node,
            'iommu_group': self.iommu_group,
            'driver': self.driver,
            'devname': self.devname,
            'tags': dict(self.tags),
            'resource_class': self.resource_class,
            'traits': list(self.traits),
            'status': self.status,
            'owner': self.owner,
            'source': self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Device:
        return cls(
            address=data['address'],
            vendor_id=data['vendor_id'],
            product_id=data['product_id'],
            dev_type=data['dev_type'],
            class_code=data.get('class', '000000'),
            parent_address=data.get('parent_address'),
            numa_node=data.get('numa_node'),
            iommu_group=data.get('iommu_group'),
            driver=data.get('driver'),
            devname=data.get('devname'),
            tags=dict(data.get('tags') or {}),
            resource_class=data.get('resource_class', ''),
            traits=tuple(data.get('traits') or ()),
            status=data.get('status', 'available'),
            owner=data.get('owner'),
            source=data.get('source'),
            null_tags=tuple(data.get('null_tags') or ()),
            parent_ifname=data.get('parent_ifname'),
            pool_stamp=data.get('pool_stamp'),
            join_stamp=data.get('join_stamp'),
            hotplug_pool=bool(data.get('hotplug_pool', False)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class NumaCell:
    id: int
    socket: int | None = None


@dataclasses.dataclass(slots=True)
class IommuState:
    enabled: bool = True
    interrupt_remapping: bool | None = None
    foreign_members: dict[int, tuple[str, ...]] = dataclasses.field(
        default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


@dataclasses.dataclass(slots=True)
class HostReport:
    """The latest state of one host's whitelisted PCI devices."""

    host: str
    generation: int = 0
    devices: list[Device] = dataclasses.field(default_factory=list)
    numa_cells: list[NumaCell] = dataclasses.field(default_factory=list)
    iommu: IommuState = dataclasses.field(default_factory=IommuState)
    reported_at: str | None = dataclasses.field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            'version': VERSION,
            'host': self.host,
            'generation': self.generation,
            'reported_at': self.reported_at,
            'numa_cells': [{'id': c.id, 'socket': c.socket}
                           for c in self.numa_cells],
            'iommu': {
                'enabled': self.iommu.enabled,
                'interrupt_remapping': self.iommu.interrupt_remapping,
                'foreign_members': {
                    str(g): list(m)
                    for g, m in sorted(self.iommu.foreign_members.items())},
            },
            'devices': [d.to_dict() for d in self.devices],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = 'report') -> HostReport:
        """Validate and load a report.

        :raises: InvalidHostReport with the JSON path of the bad field.
        """
        validate(data, source)
        iommu = data.get('iommu') or {}
        report = cls(
            host=data['host'],
            generation=data['generation'],
            reported_at=data.get('reported_at'),
            numa_cells=[NumaCell(c['id'], c.get('socket'))
                        for c in data.get('numa_cells') or ()],
            iommu=IommuState(
                enabled=iommu.get('enabled', True),
                interrupt_remapping=iommu.get('interrupt_remapping'),
                foreign_members={
                    int(g): tuple(m) for g, m in
                    (iommu.get('foreign_members') or {}).items()}),
            devices=[Device.from_dict(d) for d in data['devices']],
        )
        return report

    @classmethod
    def from_json(cls, text: str | bytes, source: str = 'report'
                  ) -> HostReport:
        if len(text) > limits.MAX_REPORT_BYTES:
            raise exception.InvalidHostReport(
                host=source, path='$', reason='the report is %d bytes; at '
                'most %d' % (len(text), limits.MAX_REPORT_BYTES))
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise exception.InvalidHostReport(
                host=source, path='$', reason='not valid JSON: %s'
                % str(exc)[:200]) from None
        return cls.from_dict(data, source)

    def device(self, address: str) -> Device | None:
        for dev in self.devices:
            if dev.address == address:
                return dev
        return None


def _path(error: jsonschema.ValidationError) -> str:
    out = '$'
    for part in error.absolute_path:
        out += '[%d]' % part if isinstance(part, int) else '.%s' % part
    return out


def _short(message: str) -> str:
    """A validator's message, cut: it may quote the whole bad value."""
    return message if len(message) <= 200 else message[:200] + '...'


def _reason(error: jsonschema.ValidationError) -> str:
    """The error for the operator: a string that breaks a pattern is
    told what it should be, not the regular expression."""
    if error.validator == 'pattern':
        text = PATTERN_TEXT.get(str(error.validator_value))
        if text is not None:
            return '%s is not %s' % (_short(repr(error.instance)), text)
    return _short(error.message)


def validate(data: Any, source: str = 'report') -> None:
    """Check ``data`` against schema v1 and the cross-field rules.

    :raises: InvalidHostReport naming the host (or ``source``) and the path.
    """
    host = source
    if isinstance(data, dict) and isinstance(data.get('host'), str):
        # Named in messages: cut, control characters escaped.
        host = limits.printable(data['host'])
    # Sizes first: no validator may format a 5,000-digit number.
    too_big = limits.oversized(data)
    if too_big is not None:
        raise exception.InvalidHostReport(
            host=host, path=too_big[0], reason=too_big[1])
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(data))
    if error is not None:
        raise exception.InvalidHostReport(
            host=host, path=_path(error), reason=_reason(error))
    problem = limits.host_problem(data['host'])
    if problem is not None:
        raise exception.InvalidHostReport(host=host, path='$.host',
                                          reason=problem)
    seen: set[str] = set()
    types: dict[str, str] = {}
    for index, dev in enumerate(data['devices']):
        where = '$.devices[%d]' % index
        if dev['address'] in seen:
            raise exception.InvalidHostReport(
                host=host, path=where + '.address',
                reason='address %s appears twice' % dev['address'])
        seen.add(dev['address'])
        types[dev['address']] = dev['dev_type']
        parent = dev.get('parent_address')
        if dev['dev_type'] == 'type-VF' and not parent:
            raise exception.InvalidHostReport(
                host=host, path=where + '.parent_address',
                reason='a type-VF device needs the address of its PF')
        if dev['dev_type'] != 'type-VF' and parent:
            raise exception.InvalidHostReport(
                host=host, path=where + '.parent_address',
                reason='only type-VF devices have a parent PF, this is %s'
                % dev['dev_type'])
        status = dev.get('status', 'available')
        if status in IN_USE and not dev.get('owner'):
            raise exception.InvalidHostReport(
                host=host, path=where + '.owner',
                reason='a %s device needs its owner' % status)
        owner = dev.get('owner')
        problem = None if owner is None else limits.consumer_problem(owner)
        if problem is not None:
            raise exception.InvalidHostReport(
                host=host, path=where + '.owner', reason=problem)
        # A device that vanished while claimed stays "unavailable" with
        # its owner until released; a free device has none.
        for field in ('owner', 'source'):
            if status == 'available' and dev.get(field) is not None:
                raise exception.InvalidHostReport(
                    host=host, path='%s.%s' % (where, field),
                    reason='an available device has no %s' % field)
    cells: set[int] = set()
    for index, cell in enumerate(data.get('numa_cells') or ()):
        if cell['id'] in cells:
            raise exception.InvalidHostReport(
                host=host, path='$.numa_cells[%d].id' % index,
                reason='NUMA cell %d appears twice' % cell['id'])
        cells.add(cell['id'])
    for index, dev in enumerate(data['devices']):
        parent = dev.get('parent_address')
        if parent and types.get(parent, 'type-PF') != 'type-PF':
            raise exception.InvalidHostReport(
                host=host, path='$.devices[%d].parent_address' % index,
                reason='parent %s is %s, not a type-PF' % (
                    parent, types[parent]))
