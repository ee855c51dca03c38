"""Domain XML under hostile input: size, entities, encodings (issue 12)."""

from __future__ import annotations

import os

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import mapping
from passthrough_plugin.pci import limits
from tests.unit.lifecycle import fakes

LAUGHS = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
          + ''.join('<!ENTITY %s "%s">' % (chr(98 + n), ('&%s;' % chr(97 + n))
                                          * 10) for n in range(8))
          + ']><domain><name>&i;</name></domain>')


class TestDomainXmlSafety(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, data: bytes) -> str:
        path = os.path.join(self.tmp, 'domain.xml')
        with open(path, 'wb') as handle:
            handle.write(data)
        return path

    def refused(self, data: bytes) -> str:
        path = self.write(data)
        exc = self.assertRaises(exception.DomainXmlError,
                                mapping.read_domain_file, path)
        self.assertIn(path, exc.message)
        self.assertNotIn('\n', exc.message)
        self.assertLess(len(exc.message), 400, exc.message)
        return exc.message

    def test_too_big_is_refused_before_parsing(self) -> None:
        data = (b'<domain><name>' + b'a' * limits.MAX_DOMAIN_XML_BYTES
                + b'</name></domain>')
        self.assertIn('at most %d bytes' % limits.MAX_DOMAIN_XML_BYTES,
                      self.refused(data))
        exc = self.assertRaises(exception.DomainXmlError,
                                mapping.parse_domain_xml, data, 'live')
        self.assertIn('at most %d' % limits.MAX_DOMAIN_XML_BYTES,
                      exc.message)

    def test_entities_and_dtds_are_refused(self) -> None:
        self.assertIn('DTDForbidden', self.refused(LAUGHS.encode()))
        self.assertIn('DTDForbidden', self.refused(
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
            b'"file:///etc/passwd">]><domain>&x;</domain>'))

    def test_encodings(self) -> None:
        # A latin-1 file that says so is read; one that does not, or
        # binary, is one line naming the file.
        domain = mapping.read_domain_file(self.write(
            '<?xml version="1.0" encoding="iso-8859-1"?><domain><name>'
            'caf\xe9</name></domain>'.encode('latin-1')))
        self.assertEqual('caf\xe9', domain.name)
        self.assertIn('not well-formed', self.refused(
            '<domain><name>caf\xe9</name></domain>'.encode('latin-1')))
        self.assertIn('not well-formed', self.refused(bytes(range(256))))

    def test_libvirt_xml_still_maps(self) -> None:
        domain = mapping.read_domain_file(self.write(fakes.domain_xml(
            fakes.INSTANCE, [('0000:3b:02.0', '0000:00:05.0')]).encode()))
        self.assertEqual([('0000:3b:02.0', '0000:00:05.0')],
                         [(d.host_address, d.guest_address)
                          for d in domain.devices])
