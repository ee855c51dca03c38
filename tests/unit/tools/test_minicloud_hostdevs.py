"""tools/cloud/mc_hostdevs.py: each compute's fake sysfs mirrors nova's
fake driver as mc_fakevirt reports it; the domain XML mc_fakevirt writes."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import fixtures
import testtools

from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import sysfs

CLOUD = Path(__file__).resolve().parents[3] / 'tools' / 'cloud'
sys.path.insert(0, str(CLOUD))

import mc_fakedevs  # noqa: E402
import mc_hostdevs  # noqa: E402
import mc_settings  # noqa: E402

VENDOR, PF, VF = '8086', '1528', '1515'


def nova_fake_devices() -> list[dict[str, Any]]:
    """What nova's FakeDriverWithPciResources reports, ids made hex and a
    second VF per PF as tools/cloud/mc_fakevirt.py does.

    :raises ImportError: without nova (the py3 env; functional has it).
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import nova.conf
        from nova.virt import fake

    nova.conf.CONF([], project='nova', default_config_files=[])
    driver = fake.FakeDriverWithPciResources(None)
    driver.init_host('mc-compute')
    status = driver.get_available_resource('mc-compute')
    devices: list[dict[str, Any]] = mc_fakedevs.with_second_vfs(json.loads(
        status['pci_passthrough_devices']))
    for dev in devices:
        dev['vendor_id'] = VENDOR
        dev['product_id'] = PF if dev['dev_type'] == 'type-PF' else VF
    return devices


def scanned(root: Path) -> discovery.Scan:
    return discovery.scan(sysfs.Sysfs(str(root / 'sys'),
                                      str(root / 'proc')))


class HostTreesTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.base = Path(self.useFixture(fixtures.TempDir()).path)
        self.assertEqual(0, mc_hostdevs.main(
            ['build', '--base', str(self.base), '--ids',
             f'{VENDOR}:{PF}:{VF}']))
        self.hosts = self.base / 'data' / 'hosts' / 'mc-compute'

    def test_full_tree_mirrors_the_fake_driver(self) -> None:
        try:
            devices = nova_fake_devices()
        except ImportError:
            self.skipTest('nova is not installed here')
        scan = scanned(self.hosts / 'current')
        got = {(d.address, d.vendor_id, d.product_id, d.physfn,
                d.numa_node) for d in scan.devices.values()}
        want = {(d['address'], d['vendor_id'], d['product_id'],
                 d['parent_addr'], d['numa_node'])
                for d in devices}
        self.assertEqual(want, got)
        groups = [d.iommu_group for d in scan.devices.values()]
        self.assertNotIn(None, groups)
        self.assertEqual(len(groups), len(set(groups)))

    def test_every_compute_host_has_its_trees(self) -> None:
        for host in mc_settings.COMPUTE_HOSTS:
            tree = self.base / 'data' / 'hosts' / host
            self.assertEqual('full', os.readlink(tree / 'current'))
            self.assertEqual(9, len(scanned(tree / 'current').devices))

    def test_remove_and_restore_switch_one_hosts_tree(self) -> None:
        out = self.useFixture(fixtures.StringStream('stdout'))
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out.stream))
        full = set(scanned(self.hosts / 'current').devices)
        other = self.base / 'data' / 'hosts' / 'mc-compute2'
        self.assertEqual(0, mc_hostdevs.main(
            ['remove', '--base', str(self.base)]))
        self.assertEqual('less', os.readlink(self.hosts / 'current'))
        self.assertEqual(full - {'0000:03:00.1', '0000:03:00.2'},
                         set(scanned(self.hosts / 'current').devices))
        self.assertEqual('full', os.readlink(other / 'current'))
        self.assertEqual(0, mc_hostdevs.main(
            ['restore', '--base', str(self.base)]))
        self.assertEqual(full, set(scanned(self.hosts / 'current').devices))
        self.assertEqual(0, mc_hostdevs.main(
            ['remove', '--base', str(self.base), '--host', 'mc-compute2']))
        self.assertEqual('less', os.readlink(other / 'current'))
        self.assertEqual('full', os.readlink(self.hosts / 'current'))

    def test_switch_without_trees_fails_with_a_message(self) -> None:
        err = self.useFixture(fixtures.StringStream('stderr'))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err.stream))
        empty = self.useFixture(fixtures.TempDir()).path
        self.assertEqual(1, mc_hostdevs.main(['remove', '--base', empty]))
        err.stream.flush()
        self.assertIn('missing', err.getDetails()['stderr'].as_text())


class DomainXmlTest(testtools.TestCase):
    """The domain XML mc_fakevirt writes is what passthrough-agent map
    reads."""

    def test_map_reads_the_hostdevs(self) -> None:
        from passthrough_plugin.lifecycle import mapping

        xml = mc_fakedevs.domain_xml('0b0f1ba7-0000-4000-8000-000000000001',
                                     'instance-1',
                                     ['0000:03:00.2', '0000:02:00.1'])
        domain = mapping.parse_domain_xml(xml)
        self.assertEqual('0b0f1ba7-0000-4000-8000-000000000001', domain.uuid)
        self.assertEqual([('0000:02:00.1', '0000:00:05.0'),
                          ('0000:03:00.2', '0000:00:06.0')],
                         [(d.host_address, d.guest_address)
                          for d in domain.devices])

    def test_second_vf_per_pf(self) -> None:
        devices = [{'address': '0000:02:00.0', 'dev_type': 'type-PF'},
                   {'address': '0000:02:00.1', 'dev_type': 'type-VF',
                    'parent_addr': '0000:02:00.0'}]
        got = mc_fakedevs.with_second_vfs(devices)
        self.assertEqual(['0000:02:00.0', '0000:02:00.1', '0000:02:00.2'],
                         [d['address'] for d in got])
        self.assertEqual('0000:02:00.0', got[2]['parent_addr'])
