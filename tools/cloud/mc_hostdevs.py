#!/usr/bin/env python3
"""The fake sysfs of each mini cloud compute host, and the agent's answers.

``build`` (run with the harness venv's python: it uses the plugin's
``FakeSysfs``) writes two trees per compute host under
``$BASE/data/hosts/<host>``: ``full``, the functions ``mc_fakevirt``
reports (PFs ``0000:0[123]:00.0``, each with two VFs ``0000:0N:00.[12]``,
the given hex ids, NUMA node 0, one IOMMU group per function), and
``less``, the same host after PF 03's VFs went away (``sriov_numvfs`` 0).
``current`` is a symlink to one of them; the host's agent scans
``current`` every second.

``remove`` / ``restore`` switch ``current`` of one host (``--host``, by
default the first) atomically (stdlib only): the hook the plugin's tempest
test runs (``[passthrough] device_change_command``).

``map HOST UUID`` prints ``passthrough-agent map --format json`` for the
server's domain XML as mc_fakevirt wrote it (where a libvirt host would
answer ``map --instance UUID`` from the live domain); ``report HOST``
prints the host's report as the report store holds it (JSON): the tempest
tests' ``map_command`` and ``report_command``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mc_settings import COMPUTE_HOSTS as HOSTS

BUSES = (1, 2, 3)
VF_FUNCTIONS = (1, 2)
# PF 03 loses its VFs in the 'less' tree.
CHANGING_PF = '0000:03:00.0'
TREES = {'remove': 'less', 'restore': 'full'}


def pf_address(bus: int) -> str:
    return '0000:%02x:00.0' % bus


def vf_addresses(bus: int) -> list[str]:
    return ['0000:%02x:00.%d' % (bus, f) for f in VF_FUNCTIONS]


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
                                 addresses=vf_addresses(bus))
        # No netdev: a PF the host uses for its own traffic would be
        # reported unclaimable, and nova's fake PFs are free.
        tree.add_device(address, vendor=vendor, product=pf, driver='ixgbe',
                        numa_node=0, vfs=plan)
        if address != without_vf_of:
            tree.create_vfs(address, len(VF_FUNCTIONS))


def switch(hosts: Path, tree: str) -> None:
    """Point ``current`` at ``tree`` in one rename: a scan sees either."""
    tmp = hosts / 'current.tmp'
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(tree, tmp)
    os.replace(tmp, hosts / 'current')


def agent(base: Path, host: str, args: list[str]) -> int:
    """passthrough-agent of ``host`` (next to this python), its output
    passed through."""
    conf = base / 'etc' / 'passthrough' / f'agent-{host}.conf'
    if not conf.exists():
        print(f'{conf} missing: is {host} a compute host of a mini cloud '
              'started with the plugin?', file=sys.stderr)
        return 1
    exe = Path(sys.executable).parent / 'passthrough-agent'
    return subprocess.run([str(exe), *args, '--config-file', str(conf)],
                          check=False).returncode


def report(base: Path, host: str) -> int:
    """The host's report as the report store holds it (what PciPoolFilter
    reads), as JSON."""
    import json

    from oslo_config import cfg

    from passthrough_plugin import exception
    from passthrough_plugin.store import loader

    conf_file = base / 'etc' / 'passthrough' / f'agent-{host}.conf'
    if not conf_file.exists():
        print(f'{conf_file} missing: is {host} a compute host of a mini '
              'cloud started with the plugin?', file=sys.stderr)
        return 1
    conf = cfg.ConfigOpts()
    conf(['--config-file', str(conf_file)], project='passthrough',
         default_config_files=[])
    try:
        found = loader.load_store(conf).get(host)
    except exception.PassthroughException as exc:
        print(f'report of {host}: {exc}', file=sys.stderr)
        return 1
    print(json.dumps(found.to_dict(), indent=1, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('command', choices=['build', 'remove', 'restore',
                                            'map', 'report'])
    parser.add_argument('args', nargs='*',
                        help='map: HOST UUID; report: HOST')
    parser.add_argument('--base', required=True, help="the cloud's $BASE")
    parser.add_argument('--host', default=HOSTS[0], choices=HOSTS,
                        help='remove/restore: whose devices')
    parser.add_argument('--ids', default='8086:1528:1515',
                        help='VENDOR:PF_PRODUCT:VF_PRODUCT (build)')
    args = parser.parse_args(argv)
    base = Path(args.base)
    want = {'map': 2, 'report': 1}.get(args.command, 0)
    if len(args.args) != want:
        parser.error(f'{args.command} takes {want} argument(s), got '
                     f'{len(args.args)}')
    if args.command == 'map':
        host, uuid = args.args
        xml = base / 'data' / 'domains' / host / f'{uuid}.xml'
        return agent(base, host, ['map', '--domain-xml', str(xml),
                                  '--format', 'json'])
    if args.command == 'report':
        return report(base, args.args[0])
    hosts = base / 'data' / 'hosts'
    if args.command == 'build':
        vendor, pf, vf = args.ids.lower().split(':')
        for host in HOSTS:
            tree = hosts / host
            tree.mkdir(parents=True, exist_ok=True)
            build_tree(tree / 'full', vendor, pf, vf)
            build_tree(tree / 'less', vendor, pf, vf,
                       without_vf_of=CHANGING_PF)
            switch(tree, 'full')
        return 0
    tree = hosts / args.host
    if not (tree / TREES[args.command]).is_dir():
        print(f'{tree / TREES[args.command]} missing: is this a mini '
              'cloud started with the plugin?', file=sys.stderr)
        return 1
    switch(tree, TREES[args.command])
    print(f'{tree}/current -> {TREES[args.command]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
