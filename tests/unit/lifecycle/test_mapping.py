"""Domain XML parsing and the host <-> guest map."""

from __future__ import annotations

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import claims
from passthrough_plugin.lifecycle import mapping
from tests.unit.lifecycle import fakes

USB_AND_MDEV = """<domain type='kvm'><uuid>%s</uuid><devices>
  <hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/>
    <product id='0x2'/></source></hostdev>
  <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>
    <address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source>
  </hostdev>
  <interface type='bridge'><source bridge='br0'/>
    <address type='pci' domain='0x0000' bus='0x00' slot='0x03'
             function='0x0'/></interface>
</devices></domain>""" % fakes.INSTANCE


class TestParse(testtools.TestCase):

    def test_hostdev_and_hostdev_interface(self) -> None:
        domain = mapping.parse_domain_xml(fakes.domain_xml(
            fakes.INSTANCE, [('0000:5e:00.0', '0000:00:07.0')],
            [('0000:3b:02.2', '0000:00:05.0', 'fa:16:3e:aa:bb:cc')]))
        self.assertEqual(fakes.INSTANCE, domain.uuid)
        self.assertEqual('instance-0000002a', domain.name)
        self.assertEqual(
            [('0000:5e:00.0', '0000:00:07.0', 'hostdev', None),
             ('0000:3b:02.2', '0000:00:05.0', 'interface',
              'fa:16:3e:aa:bb:cc')],
            [(d.host_address, d.guest_address, d.kind, d.mac)
             for d in domain.devices])

    def test_other_devices_ignored(self) -> None:
        self.assertEqual((), mapping.parse_domain_xml(USB_AND_MDEV).devices)

    def test_hostdev_without_guest_address(self) -> None:
        text = ("<domain><uuid>x</uuid><devices><hostdev mode='subsystem' "
                "type='pci'><source><address domain='0x0000' bus='0x81' "
                "slot='0x00' function='0x1'/></source></hostdev>"
                "</devices></domain>")
        device, = mapping.parse_domain_xml(text).devices
        self.assertEqual(('0000:81:00.1', None),
                         (device.host_address, device.guest_address))

    def test_errors_name_the_source(self) -> None:
        error = self.assertRaises(exception.DomainXmlError,
                                  mapping.parse_domain_xml, '<domain>',
                                  'vm.xml')
        self.assertIn('vm.xml', str(error))
        error = self.assertRaises(exception.DomainXmlError,
                                  mapping.parse_domain_xml, '<network/>',
                                  'net.xml')
        self.assertIn('root element is <network>', str(error))
        bad = ("<domain><devices><hostdev mode='subsystem' type='pci'>"
               "<source><address domain='0x0000' bus='0x1ff' slot='0x00' "
               "function='0x0'/></source></hostdev></devices></domain>")
        error = self.assertRaises(exception.DomainXmlError,
                                  mapping.parse_domain_xml, bad, 'b.xml')
        self.assertIn('bus="0x1ff"', str(error))
        error = self.assertRaises(exception.DomainXmlError,
                                  mapping.read_domain_file, '/nonexistent')
        self.assertIn('/nonexistent', str(error))


class TestMapRows(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.ledger = self.useFixture(fakes.LedgerFixture()).ledger
        self.pools = fakes.pools('compute-a')
        claims.boot(self.ledger, self.pools, fakes.INSTANCE, fakes.PROJECT,
                    fakes.flavor())
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def write(self, text: str) -> str:
        path = self.tmp + '/d.xml'
        with open(path, 'w', encoding='utf-8') as out:
            out.write(text)
        return path

    def test_drift_between_domain_and_ledger_is_shown(self) -> None:
        path = self.write(fakes.domain_xml(
            fakes.INSTANCE, [('0000:3b:02.3', '0000:00:05.0'),
                             ('0000:af:00.0', '0000:00:09.0')]))
        rows = mapping.map_rows(self.ledger, domain_xml=path)
        self.assertEqual(
            [('0000:3b:02.3', 'attached', 'flavor'),
             ('0000:af:00.0', 'domain-only', None),
             ('0000:3b:02.2', 'ledger-only', 'flavor')],
            [(r.host_address, r.state, r.source) for r in rows])

    def test_bad_input_names_the_field(self) -> None:
        error = self.assertRaises(exception.InvalidPciAddress,
                                  mapping.map_rows, self.ledger,
                                  host_address='3b:02')
        self.assertIn('--host-address', str(error))
        error = self.assertRaises(exception.UnknownInstance,
                                  mapping.map_rows, self.ledger,
                                  instance=fakes.OTHER)
        self.assertIn("Unknown instance '%s' in --instance" % fakes.OTHER,
                      str(error))
        path = self.write(fakes.domain_xml(fakes.INSTANCE, []))
        self.assertRaises(exception.InvalidLedgerInput, mapping.map_rows,
                          self.ledger, instance=fakes.OTHER,
                          domain_xml=path)

    def test_record_guest_addresses(self) -> None:
        domain = mapping.parse_domain_xml(fakes.domain_xml(
            fakes.INSTANCE, [('0000:3b:02.2', '0000:00:06.0')]))
        self.assertEqual(1, mapping.record_guest_addresses(
            self.ledger, fakes.INSTANCE, domain))
        self.assertEqual(0, mapping.record_guest_addresses(
            self.ledger, fakes.INSTANCE, domain))
        rows = mapping.map_rows(self.ledger, instance=fakes.INSTANCE)
        self.assertEqual([None, '0000:00:06.0'],
                         [r.guest_address for r in rows])

    def test_all_devices_of_a_host(self) -> None:
        self.assertEqual(2, len(mapping.map_rows(self.ledger,
                                                 host='compute-a')))
        self.assertEqual([], mapping.map_rows(self.ledger,
                                              host='compute-b'))
