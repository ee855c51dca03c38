"""Refuse to take a device the host uses: addresses, mounts, the console."""

from __future__ import annotations

import os

from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import sysfs as sysfs_mod

# IPv6 routes every up interface has on its own: link-local and multicast.
_IGNORED_V6 = ('fe80', 'ff')


class HostUsage:
    """What the host uses, read once from an injectable /proc."""

    def __init__(self, fs: sysfs_mod.Sysfs) -> None:
        self.fs = fs
        self.v4_routes: set[str] = set()
        for line in (fs.proc('net/route') or '').splitlines()[1:]:
            fields = line.split()
            if fields:
                self.v4_routes.add(fields[0])
        self.v6_routes: set[str] = set()
        for line in (fs.proc('net/ipv6_route') or '').splitlines():
            fields = line.split()
            if len(fields) == 10 and not fields[0].startswith(_IGNORED_V6):
                self.v6_routes.add(fields[9])
        # /proc/net/if_inet6: address index prefix scope flags name; scope
        # 00 is global (20 is link, 10 host), link-local alone is harmless.
        self.v6_addresses: set[str] = set()
        for line in (fs.proc('net/if_inet6') or '').splitlines():
            fields = line.split()
            if len(fields) == 6 and fields[3] == '00':
                self.v6_addresses.add(fields[5])
        self.mounted: dict[str, str] = {}
        for line in (fs.proc('self/mountinfo') or '').splitlines():
            fields = line.split()
            if len(fields) > 4:
                self.mounted.setdefault(fields[2], fields[4])

    def netdev_in_use(self, name: str) -> str | None:
        if name in self.v6_addresses:
            return 'interface %s has a global IPv6 address' % name
        if name in self.v4_routes or name in self.v6_routes:
            return 'interface %s has addresses or routes' % name
        return None

    def block_devices_under(self, address: str) -> dict[str, str]:
        """``{name: major:minor}`` of disks and partitions of a device,
        with the devices stacked on them (dm, md) through ``holders``."""
        base = self.fs.realpath(self.fs.dev_rel(address)) + os.sep
        found: dict[str, str] = {}
        todo = [name for name in self.fs.listdir('class/block')
                if self.fs.realpath('class/block/' + name).startswith(base)]
        while todo:
            name = todo.pop()
            if name in found:
                continue
            found[name] = self.fs.read('class/block/%s/dev' % name) or ''
            todo.extend(self.fs.listdir('class/block/%s/holders' % name))
        return found

    def mounted_under(self, address: str) -> str | None:
        for name, majmin in sorted(self.block_devices_under(address).items()):
            if majmin in self.mounted:
                return '%s is mounted on %s' % (name, self.mounted[majmin])
        return None


def reasons(usage: HostUsage, info: discovery.PciInfo) -> list[str]:
    """Why taking ``info`` from the host would hurt it (empty: safe)."""
    out = []
    if info.boot_vga:
        out.append('it is the boot VGA device (the console)')
    for name in info.netdevs:
        why = usage.netdev_in_use(name)
        if why:
            out.append(why)
    mounted = usage.mounted_under(info.address)
    if mounted:
        out.append('it holds a mounted filesystem: %s' % mounted)
    if info.num_vfs:
        out.append('it is an SR-IOV PF with %d VFs enabled; set its VF '
                   'count to 0 first' % info.num_vfs)
    return out
