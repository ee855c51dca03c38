"""Vendor, device and class names from the text of a ``pci.ids`` file."""

from __future__ import annotations

import dataclasses
import re

_VENDOR = re.compile(r'^([0-9a-f]{4})\s+(.+)$')
_DEVICE = re.compile(r'^\t([0-9a-f]{4})\s+(.+)$')
_CLASS = re.compile(r'^C ([0-9a-f]{2})\s+(.+)$')
_SUBCLASS = re.compile(r'^\t([0-9a-f]{2})\s+(.+)$')


@dataclasses.dataclass(slots=True)
class PciIds:
    """Names by lower-case hex ids; empty when no file was found."""

    vendors: dict[str, str] = dataclasses.field(default_factory=dict)
    devices: dict[tuple[str, str], str] = dataclasses.field(
        default_factory=dict)
    classes: dict[str, str] = dataclasses.field(default_factory=dict)
    source: str | None = None

    @classmethod
    def parse(cls, text: str, source: str | None = None) -> PciIds:
        """Vendors with their devices, and classes with their subclasses
        (subsystem and programming-interface lines are skipped)."""
        ids = cls(source=source)
        vendor: str | None = None
        klass: str | None = None
        for line in text.splitlines():
            if not line or line.startswith('#') or line.startswith('\t\t'):
                continue
            if line.startswith('C '):
                match = _CLASS.match(line)
                vendor, klass = None, match.group(1) if match else None
                if match:
                    ids.classes[klass or ''] = match.group(2)
                continue
            if not line.startswith('\t'):
                match = _VENDOR.match(line)
                vendor, klass = (match.group(1) if match else None), None
                if match:
                    ids.vendors[match.group(1)] = match.group(2)
                continue
            if vendor is not None:
                match = _DEVICE.match(line)
                if match:
                    ids.devices[(vendor, match.group(1))] = match.group(2)
            elif klass is not None:
                match = _SUBCLASS.match(line)
                if match:
                    ids.classes[klass + match.group(1)] = match.group(2)
        return ids

    def vendor(self, vendor_id: str) -> str | None:
        return self.vendors.get(vendor_id.lower())

    def device(self, vendor_id: str, product_id: str) -> str | None:
        return self.devices.get((vendor_id.lower(), product_id.lower()))

    def class_name(self, class_code: str) -> str | None:
        """The subclass name of a 6-digit class code, else the class's."""
        code = class_code.lower()
        return self.classes.get(code[:4]) or self.classes.get(code[:2])
