"""SR-IOV: set a PF's VF count through sriov_numvfs and wait for the VFs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import address as addr

LOG = logging.getLogger(__name__)
# Drivers a VF is on when it is given (or about to be given) to a guest.
PASSTHROUGH_DRIVERS = frozenset(('vfio-pci', 'pci-stub'))
# Told (done, total) as long work advances (cmd.common.Progress draws it).
Progress = Callable[[int, int], None]


def resolve_pf(fs: sysfs_mod.Sysfs, key: str, field: str = 'PF') -> str:
    """A PF's PCI address from an address or a network interface name.

    :raises: DeviceNotFound, InvalidPciAddress (looks like an address but
        is not one)
    """
    if ':' in key or '.' in key:
        address = addr.normalize(key, field)
        fs.require_device(address)
        return address
    target = fs.link_name('class/net/%s/device' % key)
    if target is None or not addr.PciAddress.is_valid(target):
        raise exception.DeviceNotFound(
            address='with interface name %r' % key,
            root=fs.path('class/net'))
    return addr.normalize(target)


def vf_addresses(fs: sysfs_mod.Sysfs, pf: str) -> list[str]:
    """The PF's VFs, in virtfn order."""
    links = [n for n in fs.listdir(fs.dev_rel(pf)) if n.startswith('virtfn')]
    links.sort(key=lambda n: int(n[6:]) if n[6:].isdigit() else 0)
    return [name for name in (fs.link_name(fs.dev_rel(pf, link))
                              for link in links) if name]


def vfs_in_use(fs: sysfs_mod.Sysfs, pf: str,
               held: Mapping[str, str]) -> list[str]:
    """The PF's VFs a guest has or may have: on a passthrough driver, or
    held by an instance according to ``held`` (address -> owner)."""
    out = []
    for vf in vf_addresses(fs, pf):
        driver = fs.driver(vf)
        if vf in held:
            out.append('%s (held by %s)' % (vf, held[vf]))
        elif driver in PASSTHROUGH_DRIVERS:
            out.append('%s (bound to %s)' % (vf, driver))
    return out


def configure_vfs(fs: sysfs_mod.Sysfs, pf: str, count: int,
                  timeout: float = 30.0, *,
                  force: bool = False, held: Mapping[str, str] | None = None,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic,
                  progress: Progress | None = None) -> list[str]:
    """Give ``pf`` exactly ``count`` VFs; return their addresses.

    ``progress(found, count)`` is called while the VFs appear.

    Changing the count removes every existing VF (the kernel goes through
    0), so unless ``force`` a PF whose VFs are bound to a passthrough
    driver or held by an instance is refused, naming them.

    :raises: DeviceNotFound, VfConfigError, SysfsError
    """
    fs.require_device(pf)
    total = fs.count(fs.dev_rel(pf, 'sriov_totalvfs'))
    if total is None:
        raise exception.VfConfigError(
            num_vfs=count, address=pf,
            reason='it is not SR-IOV capable (no sriov_totalvfs)')
    if not 0 <= count <= total:
        raise exception.InvalidVfCount(
            num_vfs=count, address=pf,
            reason='its sriov_totalvfs is %d; choose 0 to %d' % (
                total, total))
    current = fs.count(fs.dev_rel(pf, 'sriov_numvfs')) or 0
    if current != count and current and not force:
        busy = vfs_in_use(fs, pf, held or {})
        if busy:
            raise exception.VfConfigError(
                num_vfs=count, address=pf,
                reason='that removes its %d VFs and %s in use: %s; release '
                'them first (passthrough-agent unbind, or detach them from '
                'the instance) or use --force' % (
                    current, 'these are' if len(busy) > 1 else 'this is',
                    ', '.join(busy)))
    if current != count:
        if fs.driver(pf) is None:
            raise exception.VfConfigError(
                num_vfs=count, address=pf,
                reason='the PF has no driver; VFs are created by the PF '
                'driver, so bind it to its host driver first')
        if current and count:
            # The kernel refuses to change a non-zero count directly.
            LOG.info('%s: %d VFs -> 0 -> %d', pf, current, count)
            fs.write(fs.dev_rel(pf, 'sriov_numvfs'), '0')
        fs.write(fs.dev_rel(pf, 'sriov_numvfs'), str(count))
    deadline = clock() + timeout
    while True:
        vfs = vf_addresses(fs, pf)
        if progress is not None:
            progress(len(vfs), count)
        if len(vfs) == count and all(fs.has_device(v) for v in vfs):
            return vfs
        if clock() >= deadline:
            raise exception.VfConfigError(
                num_vfs=count, address=pf,
                reason='%d VFs appeared within %.0f s' % (len(vfs),
                                                         timeout))
        sleep(0.1)


def parse_desired(values: Sequence[str]) -> list[tuple[str, int]]:
    """``[sriov] vf_count`` values ``<PF address or interface>=<count>``.

    :raises: InvalidConfig naming the value.
    """
    out = []
    for value in values:
        key, sep, count = value.rpartition('=')
        if not sep or not key.strip() or not count.strip().isdigit():
            raise exception.InvalidConfig(
                group='sriov', option='vf_count', value=value,
                reason='expected <PF address or interface name>=<count>, '
                'e.g. 0000:3b:00.0=8 or enp59s0f0=8')
        out.append((key.strip(), int(count)))
    return out


def apply_desired(fs: sysfs_mod.Sysfs, desired: Sequence[tuple[str, int]],
                  timeout: float = 30.0, *, force: bool = False,
                  held: Mapping[str, str] | None = None,
                  progress: Progress | None = None
                  ) -> dict[str, list[str]]:
    """Set every configured VF count; return the VFs per PF.

    :raises: DeviceNotFound, VfConfigError, SysfsError, InvalidPciAddress
    """
    result = {}
    for key, count in desired:
        pf = resolve_pf(fs, key, field='[sriov] vf_count')
        result[pf] = configure_vfs(fs, pf, count, timeout, force=force,
                                   held=held, progress=progress)
    return result
