"""Refuse to take a device the host uses, naming the chain that uses it."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import Protocol

from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import netlink
from passthrough_plugin.agent import sysfs as sysfs_mod

# IPv6 routes every up interface has on its own: link-local and multicast.
_IGNORED_V6 = ('fe80', 'ff')
# Stacks deeper than this are cut (a loop in a hostile tree, never a host).
MAX_DEPTH = 8
REAL_PROC = '/proc'


def _v4_route(dest: str, mask: str) -> str:
    try:
        net = socket.inet_ntoa(struct.pack('<I', int(dest, 16)))
        bits = bin(int(mask, 16)).count('1')
    except (ValueError, struct.error, OverflowError):
        return 'a route'
    return 'default route' if bits == 0 else '%s/%d route' % (net, bits)


def _v6(hexaddr: str, plen: str | None = None) -> str:
    try:
        text = str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
        return text if plen is None else '%s/%d' % (text, int(plen, 16))
    except ValueError:
        return hexaddr[:40]


class TreeNet:
    """The network uses a fake tree shows: its /proc/net files and the
    ``upper_*``/``master`` links of its ``class/net``.

    A real host's come from rtnetlink (:func:`netlink.read_state`); a test
    or demo tree has no kernel behind its interfaces, so its files are all
    there is.
    """

    def __init__(self, fs: sysfs_mod.Sysfs) -> None:
        self.fs = fs
        # interface -> what makes it in use: routes and global addresses.
        self.uses: dict[str, list[str]] = {}
        for line in (fs.proc('net/route') or '').splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8:
                self._net(fields[0], _v4_route(fields[1], fields[7]))
        for line in (fs.proc('net/ipv6_route') or '').splitlines():
            fields = line.split()
            if len(fields) == 10 and not fields[0].startswith(_IGNORED_V6):
                self._net(fields[9], '%s route' % _v6(fields[0], fields[1]))
        # /proc/net/if_inet6: address index prefix scope flags name; scope
        # 00 is global (20 is link, 10 host), link-local alone is harmless.
        for line in (fs.proc('net/if_inet6') or '').splitlines():
            fields = line.split()
            if len(fields) == 6 and fields[3] == '00':
                self._net(fields[5], 'address %s' % _v6(fields[0]))

    def _net(self, name: str, use: str) -> None:
        uses = self.uses.setdefault(name, [])
        if use not in uses:
            uses.append(use)

    def uppers(self, name: str) -> list[str]:
        rel = 'class/net/%s' % name
        found = {entry[6:] for entry in self.fs.listdir(rel)
                 if entry.startswith('upper_')}
        master = self.fs.link_name(rel + '/master')
        if master:
            found.add(master)
        return sorted(found)


class NetView(Protocol):
    """Routes and global addresses per interface, and what is stacked on
    an interface (netlink.NetState on a host, TreeNet on a fake tree)."""

    uses: dict[str, list[str]]

    def uppers(self, name: str) -> list[str]: ...


def net_view(fs: sysfs_mod.Sysfs) -> NetView:
    """rtnetlink for the real /proc, the tree's files for a fake one.

    :raises: AgentError when rtnetlink cannot be read.
    """
    if fs.proc_root == REAL_PROC:
        return netlink.read_state()
    return TreeNet(fs)


class HostUsage:
    """What the host uses, read once: its network (:func:`net_view`, or
    ``net``) and its mounts and swap from the injectable /proc."""

    def __init__(self, fs: sysfs_mod.Sysfs, net: NetView | None = None
                 ) -> None:
        self.fs = fs
        self._net = net
        self.mounted: dict[str, str] = {}
        for line in (fs.proc('self/mountinfo') or '').splitlines():
            fields = line.split()
            if len(fields) > 4:
                self.mounted.setdefault(fields[2], fields[4])
                if ' - ' in line:
                    tail = line.split(' - ', 1)[1].split()
                    if len(tail) > 1 and tail[1].startswith('/dev/'):
                        self.mounted.setdefault(tail[1], fields[4])
        self.swaps: set[str] = set()
        for line in (fs.proc('swaps') or '').splitlines()[1:]:
            fields = line.split()
            if fields:
                self.swaps.add(fields[0])

    # -- network -------------------------------------------------------------
    @property
    def net(self) -> NetView:
        """Read on first use: a host with no network device to check
        never opens rtnetlink."""
        if self._net is None:
            self._net = net_view(self.fs)
        return self._net

    def uppers(self, name: str) -> list[str]:
        """Interfaces stacked on ``name``: its master (bond, team, bridge)
        and its VLANs, macvlans, ..."""
        return self.net.uppers(name)

    def netdev_chains(self, name: str) -> list[str]:
        """``enp3s0f0 -> bond0 -> 10.0.0.0/24 route`` for each use of the
        interface or of anything stacked on it."""
        chains: list[str] = []

        def walk(path: list[str]) -> None:
            here = path[-1]
            chains.extend(' -> '.join(path + [use])
                          for use in self.net.uses.get(here, ()))
            if len(path) < MAX_DEPTH:
                for upper in self.uppers(here):
                    if upper not in path:
                        walk(path + [upper])

        walk([name])
        return chains

    # -- block ---------------------------------------------------------------
    def _label(self, name: str) -> str:
        dm = self.fs.read('class/block/%s/dm/name' % name)
        return '%s (%s)' % (name, dm) if dm else name

    def _block_uses(self, name: str) -> list[str]:
        uses = []
        majmin = self.fs.read('class/block/%s/dev' % name) or ''
        names = {'/dev/' + name}
        dm = self.fs.read('class/block/%s/dm/name' % name)
        if dm:
            names.add('/dev/mapper/' + dm)
        for key in sorted({majmin} | names):
            if key and key in self.mounted:
                uses.append('mounted on %s' % self.mounted[key])
        if names & self.swaps:
            uses.append('active swap')
        return uses

    def block_devices_under(self, address: str) -> list[str]:
        """The disks and partitions of a PCI device, disks first."""
        base = self.fs.realpath(self.fs.dev_rel(address)) + os.sep
        return sorted(
            (name for name in self.fs.listdir('class/block')
             if self.fs.realpath('class/block/' + name).startswith(base)),
            key=lambda n: (self.fs.exists('class/block/%s/partition' % n),
                           n))

    def block_chains(self, address: str) -> list[str]:
        """``nvme0n1 -> nvme0n1p2 -> dm-0 (vg0-root) -> mounted on /``
        for each disk or partition in use (mounted, swap, or held by md,
        dm/LVM or multipath)."""
        chains: list[str] = []

        def walk(path: list[str], name: str, held: bool) -> None:
            label = path + [self._label(name)]
            uses = self._block_uses(name)
            chains.extend(' -> '.join(label + [use]) for use in uses)
            holders = self.fs.listdir('class/block/%s/holders' % name)
            if held and not holders and not uses:
                # md, dm/LVM, multipath: a holder keeps it open even when
                # nothing above it is mounted here.
                chains.append(' -> '.join(label) + ' (a holder)')
            if len(path) < MAX_DEPTH:
                for holder in sorted(holders):
                    walk(label, holder, True)

        for name in self.block_devices_under(address):
            prefix = []
            if self.fs.exists('class/block/%s/partition' % name):
                disk = os.path.basename(os.path.dirname(
                    self.fs.realpath('class/block/' + name)))
                prefix = [disk]
            walk(prefix, name, False)
        # A partition's chains also start at its disk: keep each once.
        return list(dict.fromkeys(chains))


def reasons(usage: HostUsage, info: discovery.PciInfo) -> list[str]:
    """Why taking ``info`` from the host would hurt it (empty: safe)."""
    out = []
    if info.boot_vga:
        out.append('it is the boot VGA device (the console)')
    for name in info.netdevs:
        out.extend(usage.netdev_chains(name))
    out.extend(usage.block_chains(info.address))
    if info.num_vfs:
        out.append('it is an SR-IOV PF with %d VFs enabled; set its VF '
                   'count to 0 first' % info.num_vfs)
    return out
