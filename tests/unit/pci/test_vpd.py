"""The VPD serial number reader."""

from __future__ import annotations

import struct

import testtools

from passthrough_plugin.pci import vpd
from tests.unit.pci.fakes import case


def resource(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + struct.pack('<H', len(body)) + body


def field(name: bytes, value: bytes) -> bytes:
    return name + bytes([len(value)]) + value


def image(*fields: bytes) -> bytes:
    ident = resource(0x82, b'ConnectX-6 Dx')
    read_only = resource(0x90, b''.join(fields) + field(b'RV', b'\x00'))
    return ident + read_only + bytes([0x78])


class CardSerialTest(testtools.TestCase):

    def test_serial_of_a_read_only_resource(self) -> None:
        data = image(field(b'PN', b'MCX623106AN'),
                     field(b'SN', b'MT2113X00001  '))
        self.assertEqual('MT2113X00001', vpd.card_serial(data))

    def test_no_serial(self) -> None:
        for name, data in (
                ('empty', b''), ('none', None),
                ('no SN keyword', image(field(b'PN', b'X'))),
                ('blank SN', image(field(b'SN', b'   '))),
                ('truncated', image(field(b'SN', b'MT21'))[:12]),
                ('small tag first', bytes([0x78])),
                ('length past the end', resource(0x90, b'SN\x09MT')[:6])):
            with case(name):
                self.assertIsNone(vpd.card_serial(data))

    def test_serial_in_the_writable_resource_does_not_count(self) -> None:
        data = resource(0x91, field(b'SN', b'X1')) + bytes([0x78])
        self.assertIsNone(vpd.card_serial(data))
