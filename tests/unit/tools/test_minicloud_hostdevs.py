"""tools/cloud/mc_hostdevs.py: mc-compute's fake sysfs mirrors nova's fake."""

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

import mc_hostdevs  # noqa: E402

VENDOR, PF, VF = '8086', '1528', '1515'


def nova_fake_devices() -> list[dict[str, Any]]:
    """What nova's FakeDriverWithPciResources reports, ids made hex as
    tools/cloud/mc_fakevirt.py does.

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
    devices: list[dict[str, Any]] = json.loads(
        status['pci_passthrough_devices'])
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
        self.hosts = self.base / 'data' / 'hosts'

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

    def test_remove_and_restore_switch_the_tree(self) -> None:
        out = self.useFixture(fixtures.StringStream('stdout'))
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out.stream))
        full = set(scanned(self.hosts / 'current').devices)
        self.assertEqual(0, mc_hostdevs.main(
            ['remove', '--base', str(self.base)]))
        self.assertEqual('less', os.readlink(self.hosts / 'current'))
        self.assertEqual(full - {'0000:03:00.1'},
                         set(scanned(self.hosts / 'current').devices))
        self.assertEqual(0, mc_hostdevs.main(
            ['restore', '--base', str(self.base)]))
        self.assertEqual(full, set(scanned(self.hosts / 'current').devices))

    def test_switch_without_trees_fails_with_a_message(self) -> None:
        err = self.useFixture(fixtures.StringStream('stderr'))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err.stream))
        empty = self.useFixture(fixtures.TempDir()).path
        self.assertEqual(1, mc_hostdevs.main(['remove', '--base', empty]))
        err.stream.flush()
        self.assertIn('missing', err.getDetails()['stderr'].as_text())
