"""Example compute hosts, built as sysfs trees the agent discovers."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

from passthrough_plugin.fakehost import sysfs_tree

X710_PF, X710_VF = '1572', '154c'
T4_GPU, T4_AUDIO = '1eb8', '10fa'


@dataclasses.dataclass
class ExampleHost:
    name: str
    story: str
    build: Callable[[sysfs_tree.FakeSysfs], None]


def _cpus(tree: sysfs_tree.FakeSysfs, nodes: int) -> None:
    for node in range(nodes):
        tree.add_numa_node(node, cpus=(2 * node, 2 * node + 1), socket=node)


def _x710(tree: sysfs_tree.FakeSysfs, bus: int, node: int, vfs: int,
          shared_group: bool = False) -> None:
    pf = '0000:%02x:00.0' % bus
    plan = sysfs_tree.VfPlan(
        product_id=X710_VF, driver='iavf',
        addresses=['0000:%02x:%02x.%x' % (bus, 2 + n // 8, n % 8)
                   for n in range(vfs)],
        groups='shared' if shared_group else 'split')
    tree.add_device(pf, vendor='8086', product=X710_PF, driver='i40e',
                    numa_node=node, netdev='ens%df0' % bus, vfs=plan)
    tree.create_vfs(pf, vfs)


def _gpu(tree: sysfs_tree.FakeSysfs, bus: int, node: int,
         with_audio: bool = False) -> None:
    group = tree.new_group()
    tree.add_device('0000:%02x:00.0' % bus, vendor='10de', product=T4_GPU,
                    class_code='030200', driver='nouveau', numa_node=node,
                    iommu_group=group)
    if with_audio:
        # The GPU's HDMI audio function sits in the same IOMMU group.
        tree.add_device('0000:%02x:00.1' % bus, vendor='10de',
                        product=T4_AUDIO, class_code='040300',
                        driver='snd_hda_intel', numa_node=node,
                        iommu_group=group)


def _common(tree: sysfs_tree.FakeSysfs, nodes: int,
            iommu: bool = True) -> None:
    _cpus(tree, nodes)
    if iommu:
        tree.enable_iommu()
    for name in ('vfio', 'vfio_pci'):
        tree.load_module(name)
    tree.add_driver('i40e', (('8086', X710_PF),))
    tree.add_driver('iavf', (('8086', X710_VF),))


def compute_1(tree: sysfs_tree.FakeSysfs) -> None:
    _common(tree, 2)
    _x710(tree, 0x3b, 0, 8)
    _x710(tree, 0x86, 1, 8)
    _gpu(tree, 0xaf, 0)


def compute_2(tree: sysfs_tree.FakeSysfs) -> None:
    _common(tree, 2)
    _x710(tree, 0x3b, 0, 8)
    _gpu(tree, 0xaf, 1)


def compute_3(tree: sysfs_tree.FakeSysfs) -> None:
    _common(tree, 1)
    _x710(tree, 0x3b, 0, 4)
    _x710(tree, 0x5e, 0, 4)
    _gpu(tree, 0xaf, 0, with_audio=True)


def compute_4(tree: sysfs_tree.FakeSysfs) -> None:
    _common(tree, 1, iommu=False)
    _x710(tree, 0x3b, 0, 8)
    _x710(tree, 0x5e, 0, 8)
    _gpu(tree, 0xaf, 0)
    # Without intel_iommu=on the kernel makes no IOMMU groups at all.
    groups = tree.sys / 'kernel/iommu_groups'
    for link in tree.sys.glob('devices/pci0000:00/*/iommu_group'):
        link.unlink()
    shutil.rmtree(groups)
    groups.mkdir()


EXAMPLES = (
    ExampleHost('compute-1', '2 X710 PFs with 8 VFs each, a T4 GPU',
                compute_1),
    ExampleHost('compute-2', '1 X710 PF with 8 VFs (6 already in use), '
                'a T4 GPU on the other NUMA node', compute_2),
    ExampleHost('compute-3', '2 X710 PFs with 4 VFs each, a T4 GPU whose '
                'HDMI audio function shares its IOMMU group', compute_3),
    ExampleHost('compute-4', '2 X710 PFs with 8 VFs each, a T4 GPU, but '
                'booted without intel_iommu=on', compute_4),
)


def build(root: str, example: ExampleHost) -> sysfs_tree.FakeSysfs:
    """Build ``example``'s sysfs tree under ``root``."""
    tree = sysfs_tree.FakeSysfs(root)
    example.build(tree)
    return tree
