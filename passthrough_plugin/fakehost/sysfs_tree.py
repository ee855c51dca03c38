"""A fake ``/sys`` + ``/proc`` tree builder for tests, benchmarks and demos.

The layout copies the kernel's: device directories under
``devices/pci0000:00/``, symlinks from ``bus/pci/devices``, driver
directories with ``bind``/``unbind``/``new_id`` files, ``kernel/iommu_groups``
and NUMA nodes. :class:`passthrough_plugin.fakehost.kernel_emulator.FakeKernel`
reacts to writes into the tree as the kernel would. It lives in the package
(not under ``tests/``) because the benchmark and the demo build trees too.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil

DEVICES = 'devices/pci0000:00'


@dataclasses.dataclass
class VfPlan:
    """How a PF's VFs look when the emulated kernel creates them."""

    product_id: str
    driver: str | None
    addresses: list[str]
    # 'split': each VF gets its own IOMMU group; 'shared': the PF's group.
    groups: str = 'split'
    netdev: bool = False


def _write(path: pathlib.Path, text: str) -> None:
    path.write_text(text)


def _link(path: pathlib.Path, target: str) -> None:
    if path.is_symlink():
        path.unlink()
    os.symlink(target, path)


class FakeSysfs:
    """Builds a fake tree under ``root`` (``root/sys`` and ``root/proc``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.base = pathlib.Path(root)
        self.sys = self.base / 'sys'
        self.proc = self.base / 'proc'
        for sub in (DEVICES, 'bus/pci/devices', 'bus/pci/drivers',
                    'kernel/iommu_groups', 'devices/system/node',
                    'devices/system/cpu', 'class/net', 'class/block',
                    'module', 'firmware/acpi/tables', 'class/iommu'):
            (self.sys / sub).mkdir(parents=True, exist_ok=True)
        for name in ('drivers_probe', 'rescan'):
            (self.sys / 'bus/pci' / name).touch()
        (self.proc / 'self').mkdir(parents=True, exist_ok=True)
        (self.proc / 'net').mkdir(exist_ok=True)
        _write(self.proc / 'cmdline', 'BOOT_IMAGE=/vmlinuz root=/dev/vda1\n')
        _write(self.proc / 'interrupts', '           CPU0\n')
        _write(self.proc / 'self/mountinfo',
               '22 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw\n')
        _write(self.proc / 'net/route',
               'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\t'
               'Mask\tMTU\tWindow\tIRTT\n')
        _write(self.proc / 'net/ipv6_route', '')
        _write(self.proc / 'net/if_inet6', '')
        self.plans: dict[str, VfPlan] = {}
        self.driver_ids: dict[str, set[tuple[str, str]]] = {}
        self._next_group = 0
        self._next_block = 0

    # -- paths ---------------------------------------------------------------
    def dev(self, address: str) -> pathlib.Path:
        return self.sys / DEVICES / address

    def drv(self, name: str) -> pathlib.Path:
        return self.sys / 'bus/pci/drivers' / name

    # -- drivers, groups, NUMA -----------------------------------------------
    def add_driver(self, name: str,
                   ids: tuple[tuple[str, str], ...] = ()) -> None:
        """A loaded PCI driver that claims ``ids`` (vendor, product) pairs."""
        path = self.drv(name)
        path.mkdir(parents=True, exist_ok=True)
        for attr in ('bind', 'unbind', 'new_id', 'remove_id'):
            (path / attr).touch()
        self.driver_ids.setdefault(name, set()).update(ids)
        module = self.sys / 'module' / name.replace('-', '_')
        module.mkdir(exist_ok=True)

    def new_group(self) -> int:
        while (self.sys / 'kernel/iommu_groups' / str(
                self._next_group)).exists():
            self._next_group += 1
        return self._next_group

    def add_numa_node(self, node: int, cpus: tuple[int, ...] = (),
                      socket: int | None = None) -> None:
        path = self.sys / 'devices/system/node' / ('node%d' % node)
        path.mkdir(parents=True, exist_ok=True)
        for cpu in cpus:
            cpath = self.sys / 'devices/system/cpu' / ('cpu%d' % cpu)
            (cpath / 'topology').mkdir(parents=True, exist_ok=True)
            _write(cpath / 'topology/physical_package_id',
                   '%d\n' % (node if socket is None else socket))
            _link(path / ('cpu%d' % cpu), '../../cpu/cpu%d' % cpu)

    def enable_iommu(self, vendor: str = 'intel',
                     interrupt_remapping: bool = True) -> None:
        """ACPI table, kernel command line, ecap and /proc/interrupts."""
        table = 'DMAR' if vendor == 'intel' else 'IVRS'
        _write(self.sys / 'firmware/acpi/tables' / table, 'table')
        opt = 'intel_iommu=on' if vendor == 'intel' else 'amd_iommu=on'
        _write(self.proc / 'cmdline',
               'BOOT_IMAGE=/vmlinuz root=/dev/vda1 %s iommu=pt\n' % opt)
        ecap = self.sys / 'class/iommu/dmar0/intel-iommu'
        ecap.mkdir(parents=True, exist_ok=True)
        _write(ecap / 'ecap', '%x\n' % (0xf0205e if interrupt_remapping
                                        else 0xf02056))
        if interrupt_remapping:
            _write(self.proc / 'interrupts',
                   '           CPU0\n 24:          1  IR-PCI-MSI 512000-edge'
                   '      nvme0q0\n')

    def load_module(self, name: str) -> None:
        (self.sys / 'module' / name).mkdir(parents=True, exist_ok=True)

    # -- devices -------------------------------------------------------------
    def add_device(self, address: str, *, vendor: str = '8086',
                   product: str = '1234', class_code: str = '020000',
                   driver: str | None = None, numa_node: int = -1,
                   iommu_group: int | None = None,
                   netdev: str | None = None, boot_vga: bool = False,
                   physfn: str | None = None, vfs: VfPlan | None = None,
                   total_vfs: int | None = None,
                   with_group: bool = True) -> pathlib.Path:
        """One PCI function; ``vfs`` makes it an SR-IOV PF with 0 VFs."""
        path = self.dev(address)
        path.mkdir(parents=True)
        _write(path / 'vendor', '0x%s\n' % vendor)
        _write(path / 'device', '0x%s\n' % product)
        _write(path / 'class', '0x%s\n' % class_code)
        _write(path / 'numa_node', '%d\n' % numa_node)
        _write(path / 'driver_override', '(null)\n')
        (path / 'remove').touch()
        if boot_vga:
            _write(path / 'boot_vga', '1\n')
        _link(self.sys / 'bus/pci/devices' / address,
              '../../../%s/%s' % (DEVICES, address))
        if with_group:
            group = self.new_group() if iommu_group is None else iommu_group
            self.join_group(address, group)
        if netdev:
            self.add_netdev(address, netdev)
        if physfn:
            _link(path / 'physfn', '../%s' % physfn)
        if vfs is not None:
            total = len(vfs.addresses) if total_vfs is None else total_vfs
            _write(path / 'sriov_totalvfs', '%d\n' % total)
            _write(path / 'sriov_numvfs', '0\n')
            _write(path / 'sriov_drivers_autoprobe', '1\n')
            self.plans[address] = vfs
        self.set_driver(address, driver)
        return path

    def create_vfs(self, address: str, count: int) -> list[str]:
        """Enable ``count`` VFs on a PF as its driver would; return them."""
        dev = self.dev(address)
        plan = self.plans[address]
        vendor = (dev / 'vendor').read_text().strip()[2:]
        numa = int((dev / 'numa_node').read_text())
        klass = (dev / 'class').read_text().strip()[2:]
        pf_group = int(os.readlink(dev / 'iommu_group').rsplit('/', 1)[1])
        autoprobe = (dev / 'sriov_drivers_autoprobe').read_text().strip()
        pf_net = sorted(os.listdir(dev / 'net')) if (
            dev / 'net').is_dir() else []
        vfs = plan.addresses[:count]
        for n, vf in enumerate(vfs):
            netdev = None
            if plan.netdev and plan.driver and autoprobe == '1':
                netdev = '%sv%d' % (pf_net[0] if pf_net else 'vf', n)
            self.add_device(
                vf, vendor=vendor, product=plan.product_id,
                class_code=klass, numa_node=numa, physfn=address,
                iommu_group=pf_group if plan.groups == 'shared' else None,
                driver=plan.driver if autoprobe == '1' else None,
                netdev=netdev)
            os.symlink('../%s' % vf, dev / ('virtfn%d' % n))
        _write(dev / 'sriov_numvfs', '%d\n' % count)
        return vfs

    def remove_vfs(self, address: str) -> None:
        dev = self.dev(address)
        for name in sorted(os.listdir(dev)):
            if name.startswith('virtfn'):
                vf = os.path.basename(os.readlink(dev / name))
                (dev / name).unlink()
                self.remove_device(vf)
        _write(dev / 'sriov_numvfs', '0\n')

    def join_group(self, address: str, group: int) -> None:
        gpath = self.sys / 'kernel/iommu_groups' / str(group) / 'devices'
        gpath.mkdir(parents=True, exist_ok=True)
        _link(gpath / address, '../../../../%s/%s' % (DEVICES, address))
        _link(self.dev(address) / 'iommu_group',
              '../../../kernel/iommu_groups/%d' % group)

    def add_netdev(self, address: str, name: str) -> None:
        npath = self.dev(address) / 'net' / name
        npath.mkdir(parents=True, exist_ok=True)
        _write(npath / 'operstate', 'down\n')
        _link(npath / 'device', '../../../%s' % address)
        _link(self.sys / 'class/net' / name,
              '../../%s/%s/net/%s' % (DEVICES, address, name))

    def add_disk(self, address: str, name: str) -> str:
        """An NVMe namespace block device; returns its ``major:minor``."""
        self._next_block += 1
        bpath = self.dev(address) / 'nvme/nvme0' / name
        bpath.mkdir(parents=True, exist_ok=True)
        (bpath / 'holders').mkdir(exist_ok=True)
        majmin = '259:%d' % self._next_block
        _write(bpath / 'dev', majmin + '\n')
        _link(self.sys / 'class/block' / name,
              '../../%s/%s/nvme/nvme0/%s' % (DEVICES, address, name))
        return majmin

    def add_partition(self, disk: str, name: str) -> str:
        """A partition of a disk :meth:`add_disk` made; its ``major:minor``.
        """
        disk_dir = pathlib.Path(os.path.realpath(
            self.sys / 'class/block' / disk))
        self._next_block += 1
        ppath = disk_dir / name
        (ppath / 'holders').mkdir(parents=True, exist_ok=True)
        _write(ppath / 'partition', '1\n')
        majmin = '259:%d' % self._next_block
        _write(ppath / 'dev', majmin + '\n')
        _link(self.sys / 'class/block' / name,
              os.path.relpath(ppath, self.sys / 'class/block'))
        return majmin

    def add_holder(self, lower: str, name: str,
                   dm_name: str | None = None) -> str:
        """A virtual block device (md, dm/LVM, multipath) stacked on
        ``lower``; its ``major:minor``."""
        vpath = self.sys / 'devices/virtual/block' / name
        if not vpath.is_dir():
            (vpath / 'holders').mkdir(parents=True)
            (vpath / 'slaves').mkdir()
            self._next_block += 1
            _write(vpath / 'dev', '253:%d\n' % self._next_block)
            if dm_name:
                (vpath / 'dm').mkdir()
                _write(vpath / 'dm/name', dm_name + '\n')
            _link(self.sys / 'class/block' / name,
                  '../../devices/virtual/block/%s' % name)
        lower_dir = pathlib.Path(os.path.realpath(
            self.sys / 'class/block' / lower))
        _link(lower_dir / 'holders' / name, os.path.relpath(
            vpath, lower_dir / 'holders'))
        _link(vpath / 'slaves' / lower, os.path.relpath(
            lower_dir, vpath / 'slaves'))
        return (vpath / 'dev').read_text().strip()

    def swapon(self, device: str) -> None:
        """``/proc/swaps`` lists ``/dev/<device>`` (or a /dev/mapper name)."""
        path = self.proc / 'swaps'
        if not path.exists():
            _write(path, 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\t'
                   'Priority\n')
        with open(path, 'a') as out:
            out.write('%s\tpartition\t8388604\t0\t-2\n' % device)

    def add_virtual_netdev(self, name: str, kind: str | None = None) -> None:
        """A software interface (bond, team, bridge, vlan) in
        ``devices/virtual/net``; ``kind`` 'bond' or 'bridge' adds the
        directory the kernel shows for them."""
        npath = self.sys / 'devices/virtual/net' / name
        npath.mkdir(parents=True)
        _write(npath / 'operstate', 'up\n')
        if kind in ('bond', 'bridge'):
            (npath / ('bonding' if kind == 'bond' else 'bridge')).mkdir()
        _link(self.sys / 'class/net' / name,
              '../../devices/virtual/net/%s' % name)

    def enslave(self, lower: str, upper: str) -> None:
        """``lower`` becomes a port of ``upper`` (bond/team slave, bridge
        port, or the lower device of a VLAN when ``master`` is False)."""
        self.stack(lower, upper, master=True)

    def stack(self, lower: str, upper: str, master: bool = False) -> None:
        low = pathlib.Path(os.path.realpath(self.sys / 'class/net' / lower))
        up = pathlib.Path(os.path.realpath(self.sys / 'class/net' / upper))
        _link(low / ('upper_' + upper), os.path.relpath(up, low))
        _link(up / ('lower_' + lower), os.path.relpath(low, up))
        if master:
            _link(low / 'master', os.path.relpath(up, low))

    def mount(self, majmin: str, target: str) -> None:
        with open(self.proc / 'self/mountinfo', 'a') as out:
            out.write('40 22 %s / %s rw,relatime - ext4 /dev/x rw\n'
                      % (majmin, target))

    def add_route(self, ifname: str, dest: str = '0000000A') -> None:
        with open(self.proc / 'net/route', 'a') as out:
            out.write('%s\t%s\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n'
                      % (ifname, dest))

    def add_inet6(self, ifname: str, scope: str = '00') -> None:
        with open(self.proc / 'net/if_inet6', 'a') as out:
            out.write('20010db8000000000000000000000001 02 40 %s 80 %8s\n'
                      % (scope, ifname))

    # -- driver state (also used by the kernel emulator) ---------------------
    def driver_of(self, address: str) -> str | None:
        link = self.dev(address) / 'driver'
        if not link.is_symlink():
            return None
        return os.path.basename(os.readlink(link))

    def set_driver(self, address: str, driver: str | None) -> None:
        path = self.dev(address)
        old = self.driver_of(address)
        if old is not None:
            (path / 'driver').unlink()
            stale = self.drv(old) / address
            if stale.is_symlink():
                stale.unlink()
        if driver is not None:
            if not self.drv(driver).exists():
                self.add_driver(driver)
            _link(path / 'driver', '../../../bus/pci/drivers/%s' % driver)
            _link(self.drv(driver) / address,
                  '../../../../%s/%s' % (DEVICES, address))
        vendor = (path / 'vendor').read_text().strip()[2:]
        product = (path / 'device').read_text().strip()[2:]
        klass = (path / 'class').read_text().strip()[2:]
        lines = []
        if driver:
            lines.append('DRIVER=%s' % driver)
        lines += ['PCI_CLASS=%X' % int(klass, 16),
                  'PCI_ID=%s:%s' % (vendor.upper(), product.upper()),
                  'PCI_SLOT_NAME=%s' % address]
        _write(path / 'uevent', '\n'.join(lines) + '\n')

    def remove_device(self, address: str) -> None:
        """Hot-remove: the device, its links and its group membership."""
        self.set_driver(address, None)
        path = self.dev(address)
        if (path / 'iommu_group').is_symlink():
            group = os.readlink(path / 'iommu_group').rsplit('/', 1)[1]
            gdir = self.sys / 'kernel/iommu_groups' / group
            (gdir / 'devices' / address).unlink()
            if not any((gdir / 'devices').iterdir()):
                shutil.rmtree(gdir)
        (self.sys / 'bus/pci/devices' / address).unlink()
        shutil.rmtree(path)
