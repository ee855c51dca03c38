"""Benchmark: discovery of 4,096 PCI devices on a fake sysfs tree."""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from passthrough_plugin.agent import discovery
from passthrough_plugin.fakehost import sysfs_tree
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import device_spec

TARGET_S = 0.3
PFS = 256
VFS_PER_PF = 15  # 256 PFs + 3,840 VFs = 4,096 devices


def build(root: str, pfs: int = PFS, vfs_per_pf: int = VFS_PER_PF
          ) -> sysfs_tree.FakeSysfs:
    """Two NUMA nodes of NICs, each PF with its VFs enabled."""
    tree = sysfs_tree.FakeSysfs(root)
    tree.add_driver('igb', (('8086', '10c9'),))
    tree.add_driver('igbvf', (('8086', '10ca'),))
    tree.enable_iommu()
    tree.add_numa_node(0, (0,), 0)
    tree.add_numa_node(1, (1,), 1)
    for n in range(pfs):
        bus = n + 1
        pf = '0000:%02x:00.0' % bus if bus < 256 else '0001:%02x:00.0' % (
            bus - 255)
        head = pf[:7]
        vfs = ['%s:%02x.%x' % (head, 0x10 + i // 8, i % 8)
               for i in range(vfs_per_pf)]
        tree.add_device(pf, vendor='8086', product='10c9',
                        class_code='020000', driver='igb', numa_node=n % 2,
                        netdev='enp%ds0' % bus,
                        vfs=sysfs_tree.VfPlan('10ca', 'igbvf', vfs))
        tree.create_vfs(pf, vfs_per_pf)
    return tree


def tmpfs_dir() -> str | None:
    """A tmpfs directory when there is one: sysfs is in memory too."""
    shm = '/dev/shm'  # noqa: S108 - a private mkdtemp() is made inside
    return shm if os.access(shm, os.W_OK) else None


def run() -> None:
    with tempfile.TemporaryDirectory(prefix='pt-bench-agent-',
                                     dir=tmpfs_dir()) as tmp:
        t0 = time.perf_counter()
        tree = build(tmp)
        built = time.perf_counter() - t0
        fs = sysfs_mod.Sysfs(str(tree.sys), str(tree.proc))
        specs = device_spec.DeviceSpecList.from_config([
            '{"vendor_id": "8086", "product_id": "10ca",'
            ' "physical_network": "physnet1"}',
            '{"vendor_id": "8086", "product_id": "10c9"}'])
        times = []
        report = None
        for _ in range(5):
            t0 = time.perf_counter()
            report = discovery.build_report(fs, specs, 'bench-host')
            times.append(time.perf_counter() - t0)
        assert report is not None
        best, median = min(times), statistics.median(times)
        print('agent discovery: %d devices (%d whitelisted), tree built in '
              '%.1f s' % (len(list(fs.pci_addresses())),
                          len(report.devices), built))
        print('  best %.3f s, median %.3f s of %d runs; target <= %.1f s: %s'
              % (best, median, len(times), TARGET_S,
                 'OK' if median <= TARGET_S else 'MISSED'))
