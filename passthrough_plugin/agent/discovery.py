"""Discovery: every PCI device in sysfs, filtered by ``[pci] device_spec``."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import names
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import vpd

LOG = logging.getLogger(__name__)
# PCI-to-PCI and semi-transparent PCI-to-PCI bridges: they never do DMA of
# their own, so they may stay with the host when their group is assigned.
BRIDGE_CLASSES = frozenset(('0604', '0609'))
# Classes whose devices may have network interfaces: network controllers
# and InfiniBand (IPoIB).
NET_CLASSES = ('02', '0c06')
_NODE = re.compile(r'^node(\d+)$')
_CPU = re.compile(r'^cpu\d+$')


@dataclasses.dataclass(slots=True)
class PciInfo:
    """What sysfs says about one PCI function."""

    address: str
    vendor_id: str
    product_id: str
    class_code: str
    driver: str | None = None
    numa_node: int | None = None
    iommu_group: int | None = None
    physfn: str | None = None
    total_vfs: int = 0
    num_vfs: int = 0
    # A PF's VF device id (sysfs sriov_vf_device), as nova reads it.
    vf_product: str | None = None
    netdevs: tuple[str, ...] = ()
    boot_vga: bool = False
    # The sysfs VPD file, read only when a remote_managed spec needs the
    # card serial number (a VPD read can take milliseconds of hardware).
    vpd_path: str | None = None

    def card_serial(self) -> str | None:
        """The VPD card serial number (nova's remote_managed rule)."""
        try:
            fd = os.open(self.vpd_path or '', os.O_RDONLY)
        except OSError:
            return None
        try:
            return vpd.card_serial(os.read(fd, 32768))
        except OSError:
            return None
        finally:
            os.close(fd)

    @property
    def is_bridge(self) -> bool:
        return self.class_code[:4] in BRIDGE_CLASSES

    @property
    def dev_type(self) -> str:
        if self.physfn is not None:
            return 'type-VF'
        if self.total_vfs > 0:
            return 'type-PF'
        return 'type-PCI'

    @property
    def devname(self) -> str | None:
        return self.netdevs[0] if self.netdevs else None

    def to_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data['dev_type'] = self.dev_type
        data['is_bridge'] = self.is_bridge
        data['netdevs'] = list(self.netdevs)
        return data


@dataclasses.dataclass(slots=True)
class Scan:
    """Every PCI function of the host, and the IOMMU groups they form."""

    devices: dict[str, PciInfo]
    groups: dict[int, list[str]]

    def members(self, group: int | None) -> list[str]:
        return [] if group is None else self.groups.get(group, [])


def _parse_uevent(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _sep, value = line.partition('=')
        out[key] = value
    return out


def _link_tail(path: str) -> str | None:
    try:
        return os.readlink(path).rsplit('/', 1)[-1]
    except OSError:
        return None


def read_device(fs: sysfs_mod.Sysfs, address: str) -> PciInfo | None:
    """One device; None if it vanished while we looked."""
    base = fs.path(fs.dev_rel(address))
    # uevent carries the ids, class and driver in one read (udev reads the
    # same file); the separate attributes are the fallback. No listdir of
    # the device: at 4,096 devices each syscall per device counts.
    text = fs.read_abs(base + '/uevent')
    if text is None and not os.path.isdir(base):
        return None
    uevent = _parse_uevent(text or '')
    pci_id = uevent.get('PCI_ID', '')
    klass = uevent.get('PCI_CLASS', '')
    if len(pci_id) == 9 and klass:
        vendor, product = pci_id.lower().split(':')
        class_code = klass.lower().rjust(6, '0')
        driver = uevent.get('DRIVER') or None
    else:
        vendor, product = fs.ids(address)
        class_code = (fs.read_abs(base + '/class') or '0x000000')[2:]
        driver = fs.driver(address)
    numa_text = fs.read_abs(base + '/numa_node')
    numa = int(numa_text) if numa_text and numa_text.isdigit() else None
    info = PciInfo(address, vendor, product, class_code, driver, numa)
    group = _link_tail(base + '/iommu_group')
    info.iommu_group = int(group) if group and group.isdigit() else None
    info.physfn = _link_tail(base + '/physfn')
    if info.physfn is None:
        # Only a PF (never a VF) has the SR-IOV capability.
        total = fs.count_abs(base + '/sriov_totalvfs')
        if total is not None:
            info.total_vfs = total
            info.num_vfs = fs.count_abs(base + '/sriov_numvfs') or 0
            vf_product = (fs.read_abs(base + '/sriov_vf_device') or '')
            info.vf_product = vf_product.strip().lower() or None
    if class_code.startswith(NET_CLASSES):
        info.netdevs = tuple(sorted(fs.listdir(fs.dev_rel(address, 'net'))))
        info.vpd_path = base + '/vpd'
    elif class_code.startswith('03'):  # display controllers
        info.boot_vga = fs.read_abs(base + '/boot_vga') == '1'
    return info


def scan(fs: sysfs_mod.Sysfs) -> Scan:
    """Read every PCI function under ``<root>/bus/pci/devices``."""
    devices: dict[str, PciInfo] = {}
    groups: dict[int, list[str]] = {}
    for address in fs.pci_addresses():
        info = read_device(fs, address)
        if info is None:
            continue
        devices[address] = info
        if info.iommu_group is not None:
            groups.setdefault(info.iommu_group, []).append(address)
    return Scan(devices, groups)


def numa_cells(fs: sysfs_mod.Sysfs) -> list[report_mod.NumaCell]:
    """NUMA nodes, each with the socket of its first CPU."""
    cells = []
    for name in fs.listdir('devices/system/node'):
        match = _NODE.match(name)
        if not match:
            continue
        socket = None
        for cpu in sorted(c for c in fs.listdir('devices/system/node/' + name)
                          if _CPU.match(c)):
            socket = fs.read_int('devices/system/node/%s/%s/topology/'
                                 'physical_package_id' % (name, cpu))
            if socket is not None:
                break
        cells.append(report_mod.NumaCell(int(match.group(1)), socket))
    return sorted(cells, key=lambda c: c.id)


def iommu_enabled(fs: sysfs_mod.Sysfs) -> bool:
    return bool(fs.listdir('kernel/iommu_groups'))


def interrupt_remapping(fs: sysfs_mod.Sysfs) -> bool | None:
    """Whether interrupts are remapped: True, False, or None (unknown).

    ``/proc/interrupts`` names remapped MSI domains ``IR-PCI-MSI``; with no
    such line, an IOMMU that lists its capabilities means it is off.
    """
    interrupts = fs.proc('interrupts')
    if interrupts and 'IR-' in interrupts:
        return True
    if fs.listdir('class/iommu'):
        return False
    return None


def spec_for(specs: device_spec.DeviceSpecList, info: PciInfo,
             scan_: Scan) -> device_spec.DeviceSpec | None:
    parent = scan_.devices.get(info.physfn) if info.physfn else None
    return specs.match(
        addr.PciAddress.parse(info.address), int(info.vendor_id, 16),
        int(info.product_id, 16),
        addr.PciAddress.parse(info.physfn) if info.physfn else None,
        info.devname, parent.devname if parent else None,
        info.card_serial() if specs.needs_serial
        else device_spec.SERIAL_UNKNOWN)


def to_device(info: PciInfo,
              spec: device_spec.DeviceSpec) -> report_mod.Device:
    return report_mod.Device(
        address=info.address, vendor_id=info.vendor_id,
        product_id=info.product_id, dev_type=info.dev_type,
        class_code=info.class_code,
        parent_address=info.physfn, numa_node=info.numa_node,
        iommu_group=info.iommu_group, driver=info.driver,
        devname=info.devname, tags=dict(spec.pool_tags),
        null_tags=spec.null_tags,
        resource_class=names.resource_class(
            spec.resource_class, info.vendor_id, info.product_id),
        traits=tuple(sorted(spec.traits)))


def foreign_members(scan_: Scan, whitelisted: Iterable[str]
                    ) -> dict[int, tuple[str, ...]]:
    """Per group of a whitelisted device: members neither listed nor bridges.

    Such a member stays with the host, so the scheduler must treat the
    whole group as not assignable.
    """
    listed = set(whitelisted)
    out: dict[int, tuple[str, ...]] = {}
    for address in listed:
        group = scan_.devices[address].iommu_group
        if group is None or group in out:
            continue
        out[group] = tuple(
            m for m in scan_.members(group)
            if m not in listed and not scan_.devices[m].is_bridge)
    return {g: m for g, m in out.items() if m}


def check_remote_managed(specs: device_spec.DeviceSpecList,
                         scan_: Scan) -> None:
    """nova's checks of a ``remote_managed`` spec that names one device.

    nova-compute refuses to start when such a spec names an interface that
    is not there, or a PF unless its ids are the PF's VFs' ids (only VFs
    can be remote managed).

    :raises: InvalidDeviceSpec with nova's reason.
    """
    netdevs = {n: info for info in scan_.devices.values()
               for n in info.netdevs}
    for spec in specs.specs:
        if not spec.remote_managed:
            continue
        if spec.devname is not None:
            info = netdevs.get(spec.devname)
            if info is None:
                raise exception.InvalidDeviceSpec(
                    item=spec.item, reason='remote_managed names interface '
                    '%r, which is not on this host (nova refuses it too: '
                    'PciDeviceRemoteManagedNotPresent)' % spec.devname)
        elif spec.exact is not None:
            info = scan_.devices.get(str(spec.exact))
        else:
            continue
        if info is None or info.dev_type != 'type-PF':
            continue
        vendor_ok = spec.vendor_id in (None, int(info.vendor_id, 16))
        vf_products = {int(v.product_id, 16) for v in scan_.devices.values()
                       if v.physfn == info.address}
        if info.vf_product and all(c in '0123456789abcdef'
                                   for c in info.vf_product):
            vf_products.add(int(info.vf_product, 16))
        if vendor_ok and spec.product_id is not None and (
                spec.product_id in vf_products or not vf_products):
            continue  # the VFs of this PF (or no way to tell)
        shown = '/'.join('%04x' % p for p in sorted(vf_products))
        if vendor_ok and spec.product_id in (None,
                                             int(info.product_id, 16)):
            reason = ('remote_managed names PF %s, and only VFs can be '
                      'remote managed; give the VFs\' product_id %s to '
                      'select its VFs (nova refuses it too: '
                      'PciDeviceInvalidPFRemoteManaged)' % (
                          info.address, shown))
        else:
            reason = ('remote_managed names PF %s, but vendor_id/product_id '
                      'are not the ids %s:%s of its VFs (nova refuses it '
                      'too)' % (info.address, info.vendor_id, shown))
        raise exception.InvalidDeviceSpec(item=spec.item, reason=reason)


def build_report(fs: sysfs_mod.Sysfs, specs: device_spec.DeviceSpecList,
                 host: str, scan_: Scan | None = None
                 ) -> report_mod.HostReport:
    """The HostReport of the whitelisted devices (generation 0).

    :raises: InvalidDeviceSpec for a remote_managed spec nova refuses.
    """
    scan_ = scan_ if scan_ is not None else scan(fs)
    if specs.needs_serial:
        check_remote_managed(specs, scan_)
    devices = []
    for info in scan_.devices.values():
        spec = spec_for(specs, info, scan_)
        if spec is not None:
            device = to_device(info, spec)
            # nova's libvirt driver keys a VF's pool by its PF's netdev.
            parent = scan_.devices.get(info.physfn) if info.physfn else None
            device.parent_ifname = parent.devname if parent else None
            devices.append(device)
    LOG.debug('discovered %d PCI devices, %d whitelisted',
              len(scan_.devices), len(devices))
    return report_mod.HostReport(
        host=host, devices=devices, numa_cells=numa_cells(fs),
        iommu=report_mod.IommuState(
            enabled=iommu_enabled(fs),
            interrupt_remapping=interrupt_remapping(fs),
            foreign_members=foreign_members(
                scan_, (d.address for d in devices))))
