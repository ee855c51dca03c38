"""map --instance against a live domain of libvirt's in-process test driver."""

from __future__ import annotations

import re

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import hotplug
from passthrough_plugin.lifecycle import mapping
from tests.unit.lifecycle import fakes

try:
    import libvirt
except ImportError:  # optional for the package, required here
    libvirt = None

URI = 'test:///default'


class TestDomain(fixtures.Fixture):
    """A running domain in libvirt's test driver (no hypervisor needed)."""

    def __init__(self, xml: str) -> None:
        super().__init__()
        # The test driver wants a bootable definition and no bare disks.
        xml = re.sub('<disk.*?</disk>', '', xml)
        self.xml = xml.replace(
            '<domain type="kvm">', '<domain type="test"><memory>1024'
            '</memory><os><type>hvm</type></os>')

    def _setUp(self) -> None:
        # The test driver's state lives while a connection is open.
        self.connection = libvirt.open(URI)
        self.addCleanup(self.connection.close)
        domain = self.connection.defineXML(self.xml)
        self.addCleanup(domain.undefine)
        domain.create()
        self.addCleanup(domain.destroy)


class TestLiveMap(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        # A failure, never a skip: tox's functional env builds the binding
        # (tools/install-system-deps.sh).
        self.assertIsNotNone(libvirt, 'libvirt-python is not installed: '
                             'run tools/install-system-deps.sh as root')
        self.ledger = self.useFixture(fakes.LedgerFixture()).ledger
        pools = fakes.pools('compute-a')
        claims.boot(self.ledger, pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        hotplug.attach(self.ledger, pools, fakes.INSTANCE, 'gpu',
                       fakes.ALIASES)
        self.useFixture(TestDomain(fakes.domain_xml(
            fakes.INSTANCE, [('0000:5e:00.0', '0000:00:07.0')],
            [('0000:3b:02.3', '0000:00:05.0', 'fa:16:3e:00:00:01')])))

    def test_live_domain_joined_with_the_ledger(self) -> None:
        self.assertTrue(mapping.libvirt_available())
        rows = mapping.map_rows(self.ledger, instance=fakes.INSTANCE,
                                libvirt_uri=URI)
        self.assertEqual(
            [('0000:5e:00.0', '0000:00:07.0', 'hotplug', 'hostdev',
              'attached'),
             ('0000:3b:02.3', '0000:00:05.0', 'flavor', 'interface',
              'attached'),
             ('0000:3b:02.2', None, 'flavor', None, 'ledger-only')],
            [(r.host_address, r.guest_address, r.source, r.kind, r.state)
             for r in rows])

    def test_record_guest_addresses_from_live_domain(self) -> None:
        domain = mapping.read_live_domain(fakes.INSTANCE, URI)
        self.assertEqual(2, mapping.record_guest_addresses(
            self.ledger, fakes.INSTANCE, domain))
        rows = mapping.map_rows(self.ledger, instance=fakes.INSTANCE)
        self.assertEqual(['0000:00:05.0', None, '0000:00:07.0'],
                         [r.guest_address for r in rows])

    def test_missing_domain_is_a_clear_error(self) -> None:
        error = self.assertRaises(exception.DomainXmlError,
                                  mapping.read_live_domain, fakes.OTHER, URI)
        self.assertIn('%s on %s' % (fakes.OTHER, URI), str(error))

    def test_instance_elsewhere_answered_from_the_ledger(self) -> None:
        claims.boot(self.ledger, fakes.pools('compute-b'), fakes.OTHER,
                    fakes.PROJECT, fakes.flavor())
        for uri in (URI, 'qemu+unix:///system?socket=/nonexistent'):
            rows = mapping.map_rows(self.ledger, instance=fakes.OTHER,
                                    libvirt_uri=uri)
            self.assertEqual(
                [('compute-b', '0000:3b:02.3', 'attached'),
                 ('compute-b', '0000:3b:02.2', 'attached')],
                [(r.host, r.host_address, r.state) for r in rows])
