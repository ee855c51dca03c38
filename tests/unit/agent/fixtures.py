"""Fake hosts for agent tests: a sysfs tree, its kernel, in-process privsep."""

from __future__ import annotations

import os
from collections.abc import Callable

import fixtures

from passthrough_plugin.fakehost import kernel_emulator
from passthrough_plugin.fakehost import sysfs_tree
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import privsep
from passthrough_plugin.agent import sysfs as sysfs_mod

IGB_PF = '0000:01:00.0'
IGB_VFS = ['0000:01:10.%d' % n for n in range(8)]
NVME_PF = '0000:02:00.0'
NVME_VFS = ['0000:02:00.1', '0000:02:00.2']
HOST_BRIDGE = '0000:00:00.0'
VGA = '0000:00:01.0'
PCI_BRIDGE = '0000:03:00.0'
E1000 = ['0000:04:01.0', '0000:04:02.0']  # behind the bridge: one group
E1000E = ['0000:05:00.0', '0000:05:00.1']  # multifunction, no ACS: one group


class PrivsepInProcess(fixtures.Fixture):
    """Run the privileged entrypoints in this process (os-vif's pattern),
    with the privileged root pinned to ``root`` (a fake tree's sys)."""

    def __init__(self, root: str | None = None) -> None:
        super().__init__()
        self.root = root

    def _setUp(self) -> None:
        privsep.sysfs_admin.set_client_mode(False)
        self.addCleanup(privsep.sysfs_admin.set_client_mode, True)
        if self.root is not None:
            privsep.pin_root(self.root)
            self.addCleanup(privsep.unpin_root)


# Builds the fixture that performs privileged writes below a sysfs root.
Privileged = Callable[[str], fixtures.Fixture]


class FakeHost(fixtures.Fixture):
    """A fake /sys + /proc with an emulated kernel behind the writes."""

    def __init__(self, standard: bool = True, iommu: bool = True,
                 privileged: Privileged | None = None) -> None:
        super().__init__()
        self.standard = standard
        self.iommu = iommu
        # What runs the privileged writes: in-process here; the functional
        # tests pass the real daemon (tests/functional/agent/fixtures.py).
        self.privileged = privileged or PrivsepInProcess

    def _setUp(self) -> None:
        shm = '/dev/shm'
        root = self.useFixture(fixtures.TempDir(
            rootdir=shm if os.access(shm, os.W_OK) else None)).path
        self.root = root
        self.tree = sysfs_tree.FakeSysfs(root)
        self.useFixture(self.privileged(str(self.tree.sys)))
        self.kernel = kernel_emulator.FakeKernel(self.tree)
        self.fs = sysfs_mod.Sysfs(str(self.tree.sys), str(self.tree.proc),
                                  kernel=self.kernel)
        self.state_path = os.path.join(root, 'state', 'agent-state.json')
        if self.standard:
            build_standard(self.tree, iommu=self.iommu)

    def journal(self) -> journal_mod.Journal:
        return journal_mod.Journal(self.state_path)

    def driver(self, address: str) -> str | None:
        return self.fs.driver(address)


def build_standard(tree: sysfs_tree.FakeSysfs, iommu: bool = True) -> None:
    """Two NUMA nodes; an igb and an NVMe PF; shared and split groups."""
    tree.add_numa_node(0, (0, 1), socket=0)
    tree.add_numa_node(1, (2, 3), socket=1)
    tree.add_driver('igb', (('8086', '10c9'),))
    tree.add_driver('igbvf', (('8086', '10ca'),))
    tree.add_driver('nvme', (('1b36', '0010'),))
    tree.add_driver('e1000', (('8086', '100e'),))
    tree.add_driver('e1000e', (('8086', '10d3'),))
    tree.add_driver('pcieport', (('1b36', '000e'),))
    tree.add_driver('vfio-pci')
    tree.load_module('vfio')
    tree.add_driver('pci-stub')
    if iommu:
        tree.enable_iommu()
    kw = {} if iommu else {'with_group': False}
    tree.add_device(HOST_BRIDGE, vendor='8086', product='29c0',
                    class_code='060000', **kw)  # type: ignore[arg-type]
    tree.add_device(VGA, vendor='1234', product='1111', class_code='030000',
                    boot_vga=True, **kw)  # type: ignore[arg-type]
    tree.add_device(IGB_PF, vendor='8086', product='10c9',
                    class_code='020000', driver='igb', numa_node=0,
                    netdev='enp1s0', vfs=sysfs_tree.VfPlan(
                        '10ca', 'igbvf', IGB_VFS, netdev=True),
                    **kw)  # type: ignore[arg-type]
    tree.add_device(NVME_PF, vendor='1b36', product='0010',
                    class_code='010802', driver='nvme', numa_node=1,
                    vfs=sysfs_tree.VfPlan('0010', 'nvme', NVME_VFS),
                    **kw)  # type: ignore[arg-type]
    tree.add_disk(NVME_PF, 'nvme0n1')
    shared = tree.new_group() if iommu else None
    tree.add_device(PCI_BRIDGE, vendor='1b36', product='000e',
                    class_code='060400', driver='pcieport',
                    iommu_group=shared, **kw)  # type: ignore[arg-type]
    for n, address in enumerate(E1000):
        tree.add_device(address, vendor='8086', product='100e',
                        class_code='020000', driver='e1000',
                        iommu_group=shared, netdev='ens4f%d' % n,
                        **kw)  # type: ignore[arg-type]
    mf = tree.new_group() if iommu else None
    for address in E1000E:
        tree.add_device(address, vendor='8086', product='10d3',
                        class_code='020000', driver='e1000e',
                        iommu_group=mf, **kw)  # type: ignore[arg-type]


class OutsideFile(fixtures.Fixture):
    """A mode-600 file outside every fake tree: what an escape would hit."""

    CONTENT = 'secret: never written by the agent\n'

    def __init__(self, directory: str | None = None) -> None:
        super().__init__()
        self.directory = directory

    def _setUp(self) -> None:
        directory = self.directory or self.useFixture(
            fixtures.TempDir()).path
        self.path = os.path.join(directory, 'secret')
        with open(self.path, 'w') as out:
            out.write(self.CONTENT)
        os.chmod(self.path, 0o600)
