#!/usr/bin/env python3
"""The fake sysfs of mc-compute, mirroring nova's fake PCI devices.

``build`` (run with the harness venv's python: it uses the plugin's
``FakeSysfs``) writes two trees under ``$BASE/data/hosts``: ``full``, the six
functions ``FakeDriverWithPciResources`` reports (PFs ``0000:0[123]:00.0``,
each with one VF ``0000:0[123]:00.1``, the given hex ids, NUMA node 0, one
IOMMU group per function), and ``less``, the same host after PF 03's VF went
away (``sriov_numvfs`` 0). ``current`` is a symlink to one of them; the
agent scans ``current`` every second.

``remove`` / ``restore`` switch ``current`` atomically (stdlib only): the
hook the plugin's tempest test runs (``[passthrough] device_change_command``)
to see the agent's providers follow the host's devices.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

BUSES = (1, 2, 3)
# PF 03 loses its VF in the 'less' tree.
CHANGING_PF = '0000:03:00.0'
TREES = {'remove': 'less', 'restore': 'full'}


def pf_address(bus: int) -> str:
    return '0000:%02x:00.0' % bus


def vf_address(bus: int) -> str:
    return '0000:%02x:00.1' % bus


def build_tree(root: Path, vendor: str, pf: str, vf: str,
               without_vf_of: str | None = None) -> None:
    """One host tree; ``without_vf_of``: that PF has no VF enabled."""
    from passthrough_plugin.fakehost import sysfs_tree

    if root.exists():
        shutil.rmtree(root)
    tree = sysfs_tree.FakeSysfs(root)
    tree.add_numa_node(0, cpus=(0, 1), socket=0)
    tree.enable_iommu()
    for module in ('vfio', 'vfio_pci'):
        tree.load_module(module)
    tree.add_driver('ixgbe', ((vendor, pf),))
    tree.add_driver('ixgbevf', ((vendor, vf),))
    for bus in BUSES:
        address = pf_address(bus)
        plan = sysfs_tree.VfPlan(product_id=vf, driver='ixgbevf',
                              addresses=[vf_address(bus)])
        # No netdev: a PF the host uses for its own traffic would be
        # reported unclaimable, and nova's fake PFs are free.
        tree.add_device(address, vendor=vendor, product=pf, driver='ixgbe',
                        numa_node=0, vfs=plan)
        if address != without_vf_of:
            tree.create_vfs(address, 1)


def switch(hosts: Path, tree: str) -> None:
    """Point ``current`` at ``tree`` in one rename: a scan sees either."""
    tmp = hosts / 'current.tmp'
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(tree, tmp)
    os.replace(tmp, hosts / 'current')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('command', choices=['build', 'remove', 'restore'])
    parser.add_argument('--base', required=True, help="the cloud's $BASE")
    parser.add_argument('--ids', default='8086:1528:1515',
                        help='VENDOR:PF_PRODUCT:VF_PRODUCT (build)')
    args = parser.parse_args(argv)
    hosts = Path(args.base) / 'data' / 'hosts'
    if args.command == 'build':
        vendor, pf, vf = args.ids.lower().split(':')
        hosts.mkdir(parents=True, exist_ok=True)
        build_tree(hosts / 'full', vendor, pf, vf)
        build_tree(hosts / 'less', vendor, pf, vf, without_vf_of=CHANGING_PF)
        switch(hosts, 'full')
        return 0
    if not (hosts / TREES[args.command]).is_dir():
        print(f'{hosts / TREES[args.command]} missing: is this a mini '
              'cloud started with the plugin?', file=sys.stderr)
        return 1
    switch(hosts, TREES[args.command])
    print(f'{hosts}/current -> {TREES[args.command]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
