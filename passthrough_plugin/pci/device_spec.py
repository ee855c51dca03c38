"""``[pci] device_spec``: which host devices may be assigned, and tags."""

from __future__ import annotations

import re
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import jsonopt
from passthrough_plugin.pci import names

ANY = '*'
# Tags nova normalises to "true"/"false" and rejects when not boolean.
BOOL_TAGS = ('managed', 'live_migratable', 'one_time_use')
# Tags nova documents; every other key is kept as a string tag too.
KNOWN_TAGS = ('physical_network', 'trusted', 'remote_managed',
              'resource_class', 'traits') + BOOL_TAGS
# Tags that select placement resources, not pools (nova's ignored_pool_tags).
PLACEMENT_TAGS = ('resource_class', 'traits')
# nova's own pool keys: a tag of that name overwrites or hides them in
# nova's pools (wrong counts, crashes), so it is refused here.
RESERVED_TAGS = ('dev_type', 'numa_node', 'count', 'devices', 'rp_uuid',
                 'rp_uuids', 'parent_ifname')
_HEX_ID = re.compile('[0-9a-fA-F]{1,4}')
# ``serial`` of DeviceSpec.match when the caller does not read the VPD.
SERIAL_UNKNOWN = object()
_TRUE = ('1', 't', 'true', 'on', 'y', 'yes')
_FALSE = ('0', 'f', 'false', 'off', 'n', 'no')


def parse_bool(value: object) -> bool | None:
    """oslo strict boolean parsing; None when ``value`` is not a boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_id(value: object, item: str, field: str) -> int | None:
    """A vendor or product id: 1 to 4 hex digits, or ``*`` (None)."""
    if not isinstance(value, str):
        raise exception.InvalidDeviceSpec(
            item=item, reason='%s %r must be a string of 4 hex digits or '
            '"*"' % (field, value))
    text = value.strip()
    if text == ANY:
        return None
    if not _HEX_ID.fullmatch(text):
        raise exception.InvalidDeviceSpec(
            item=item, reason='%s %r is not a hex number of at most 4 '
            'digits (0000-ffff) or "*"%s' % (field, value,
                                             _nova_id(text)))
    return int(text, 16)


def _nova_devname(devname: object) -> str:
    if devname == '':
        return ' (nova would have accepted it and matched every device)'
    if isinstance(devname, str):
        return ' (nova would have accepted it and matched no device)'
    return ''


def _nova_id(text: str) -> str:
    """What nova, which reads an id with int(text, 16), makes of it."""
    try:
        number = int(text, 16)
    except ValueError:
        return ''
    if number > 0xffff:
        return ''
    return ' (nova would have accepted it as %04x; write "%04x")' % (
        number, number)


class DeviceSpec:
    """One ``[pci] device_spec`` entry."""

    __slots__ = ('vendor_id', 'product_id', 'address', 'devname', 'exact',
                 'tags', 'pool_tags', 'null_tags', 'resource_class',
                 'traits', 'item', 'source', 'remote_managed')

    def __init__(self, spec: dict[str, Any], item: str = 'entry',
                 nova_compatible: bool = False) -> None:
        if not isinstance(spec, dict):
            raise exception.InvalidDeviceSpec(
                item=item, reason='each entry must be a JSON object, got %r'
                % (spec,))
        self.item = item
        self.source = dict(spec)
        rest = dict(spec)
        self.vendor_id = parse_id(rest.pop('vendor_id', ANY), item,
                                  'vendor_id')
        self.product_id = parse_id(rest.pop('product_id', ANY), item,
                                   'product_id')
        devname = rest.pop('devname', None)
        raw_address = rest.pop('address', None)
        if devname is not None and raw_address is not None:
            raise exception.InvalidDeviceSpec(
                item=item, reason='"devname" and "address" are mutually '
                'exclusive; give one of them')
        if devname is not None and (not isinstance(devname, str)
                                    or not devname.strip()):
            raise exception.InvalidDeviceSpec(
                item=item, reason='devname %r must be a non-empty interface '
                'name%s' % (devname, _nova_devname(devname)))
        self.devname: str | None = devname.strip() if devname else None
        try:
            self.address = addr.address_spec(
                raw_address if raw_address is not None else '*:*:*.*',
                '%s address' % item, nova_compatible)
        except exception.InvalidPciAddress as exc:
            raise exception.InvalidDeviceSpec(
                item=item, reason=exc.message) from None
        # A fully specified address matches that device and, when it is a
        # PF, its VFs (nova decides "is a PF" from sysfs; a device whose
        # parent is this address can only be a VF of this PF).
        self.exact = self.address.exact()
        tags: dict[str, str] = {}
        null_tags: list[str] = []
        for key, value in rest.items():
            if value is None:
                # nova keeps a null tag in its pool key: devices of a spec
                # with "physical_network": null pool apart from untagged
                # ones. Only requests that do not name the tag match it.
                if key not in PLACEMENT_TAGS:
                    null_tags.append(key)
                continue
            if not isinstance(key, str) or not key:
                raise exception.InvalidDeviceSpec(
                    item=item, reason='tag name %r must be a non-empty '
                    'string' % (key,))
            if key in RESERVED_TAGS:
                raise exception.InvalidDeviceSpec(
                    item=item, reason='tag name %r is one of nova\'s own '
                    'pool keys (%s): nova would have accepted it and broken '
                    'its device pools; give the tag another name' % (
                        key, ', '.join(RESERVED_TAGS)))
            if key in BOOL_TAGS:
                parsed = parse_bool(value)
                if parsed is None:
                    raise exception.InvalidDeviceSpec(
                        item=item, reason='tag %s=%r is not a boolean; use '
                        'true or false' % (key, value))
                tags[key] = 'true' if parsed else 'false'
            elif isinstance(value, (dict, list)):
                raise exception.InvalidDeviceSpec(
                    item=item, reason='tag %s=%r must be a string (nova '
                    'would have accepted it, and matched no request with '
                    'it); write it as one string' % (key, value))
            else:
                tags[key] = str(value).lower() if isinstance(
                    value, bool) else str(value)
        for key in ('trusted', 'remote_managed'):
            if key in tags and parse_bool(tags[key]) is None:
                raise exception.InvalidDeviceSpec(
                    item=item, reason='tag %s=%r is not a boolean; use true '
                    'or false (nova would have accepted it and read it as '
                    'false)' % (key, tags[key]))
        self.tags = tags
        self.null_tags = tuple(sorted(null_tags))
        self.remote_managed = parse_bool(
            tags.get('remote_managed', 'false')) is True
        self.pool_tags = tuple(sorted(
            (k, v) for k, v in tags.items() if k not in PLACEMENT_TAGS))
        self.resource_class: str | None = tags.get('resource_class') or None
        try:
            self.traits = names.traits(tags.get('traits'))
        except (ValueError, TypeError) as exc:
            raise exception.InvalidDeviceSpec(
                item=item, reason='traits %r: %s' % (tags.get('traits'), exc)
            ) from None

    def match(self, address: addr.PciAddress, vendor_id: int,
              product_id: int, parent: addr.PciAddress | None = None,
              devname: str | None = None,
              parent_devname: str | None = None,
              serial: object = SERIAL_UNKNOWN) -> bool:
        """Whether a device matches this entry.

        ``serial``: the card serial number from the device's VPD (None or
        empty when it has none). A ``remote_managed`` entry matches only
        devices with one, as in nova (the next entry may match the others);
        callers that do not read the VPD leave it unknown.
        """
        if self.vendor_id is not None and self.vendor_id != vendor_id:
            return False
        if self.product_id is not None and self.product_id != product_id:
            return False
        if (self.remote_managed and serial is not SERIAL_UNKNOWN
                and not serial):
            return False
        if self.devname is not None:
            # A PF's interface name covers its VFs, as in nova.
            return devname == self.devname or (
                parent is not None and parent_devname == self.devname)
        if parent is not None and self.exact is not None \
                and parent == self.exact:
            return True
        return self.address.match(address)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.source)


class DeviceSpecList:
    """All ``[pci] device_spec`` entries, in order: the first match wins."""

    __slots__ = ('specs',)

    def __init__(self, specs: list[DeviceSpec]) -> None:
        self.specs = specs

    @classmethod
    def from_config(cls, values: list[str],
                    option: str = '[pci] device_spec',
                    nova_compatible: bool = False) -> DeviceSpecList:
        """Parse the option's values: each a JSON object or list of them.

        ``nova_compatible``: regex address fields match as nova's do
        (case-sensitive, anchored at the start only).

        :raises: InvalidDeviceSpec naming the value, the field and why.
        """
        specs = [DeviceSpec(entry, item, nova_compatible)
                 for item, entry in
                 jsonopt.entries(values, option,
                                 exception.InvalidDeviceSpec)]
        # Placement's rules: no name that normalises to nothing or to
        # another's class.
        problem = names.class_problem(
            (s.item, s.resource_class) for s in specs if s.resource_class)
        if problem is not None:
            raise exception.InvalidDeviceSpec(item=problem[0],
                                              reason=problem[1])
        return cls(specs)

    def match(self, address: addr.PciAddress, vendor_id: int,
              product_id: int, parent: addr.PciAddress | None = None,
              devname: str | None = None,
              parent_devname: str | None = None,
              serial: object = SERIAL_UNKNOWN) -> DeviceSpec | None:
        """The first entry matching the device, or None."""
        for spec in self.specs:
            if spec.match(address, vendor_id, product_id, parent, devname,
                          parent_devname, serial):
                return spec
        return None

    @property
    def needs_serial(self) -> bool:
        """Whether matching needs the devices' VPD serial numbers."""
        return any(spec.remote_managed for spec in self.specs)

    def __len__(self) -> int:
        return len(self.specs)
