"""PCI Vital Product Data: the card serial number nova's remote_managed needs.

The VPD (PCI Local Bus 3.0, section 6.4; sysfs ``vpd``) is a list of
resources: a large resource starts with a tag byte with bit 7 set
(``0x82`` identifier string, ``0x90`` read-only fields, ``0x91`` writable
fields) and a 16-bit little-endian length; the small end tag ``0x78``
closes it. The read-only resource holds keywords: two ASCII letters, a
length byte, the value. ``SN`` is the serial number libvirt reports as
``card_serial_number``.
"""

from __future__ import annotations

_LARGE = 0x80
_READ_ONLY = 0x90
_END = 0x78
_MAX = 32768  # the VPD address space is 15 bits


def card_serial(data: bytes | None) -> str | None:
    """The ``SN`` keyword of the read-only resource, or None.

    Malformed data (truncated, wrong lengths) yields None, never an error:
    a device without a readable serial is one without a serial.
    """
    if not data:
        return None
    data = data[:_MAX]
    pos = 0
    while pos < len(data):
        tag = data[pos]
        if tag == _END or not tag & _LARGE:
            return None
        if pos + 3 > len(data):
            return None
        length = data[pos + 1] | data[pos + 2] << 8
        start, pos = pos + 3, pos + 3 + length
        if pos > len(data):
            return None
        if tag == _READ_ONLY:
            return _keyword(data[start:pos], b'SN')
    return None


def _keyword(fields: bytes, key: bytes) -> str | None:
    pos = 0
    while pos + 3 <= len(fields):
        name, length = fields[pos:pos + 2], fields[pos + 2]
        value = fields[pos + 3:pos + 3 + length]
        if len(value) < length:
            return None
        if name == key:
            text = value.decode('ascii', errors='replace').strip(' \x00')
            return text or None
        pos += 3 + length
    return None
