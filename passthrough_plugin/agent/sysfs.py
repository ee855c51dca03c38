"""Reading and writing the kernel's PCI view under an injectable sysfs root."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Protocol

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import privsep

LOG = logging.getLogger(__name__)
PCI_DEVICES = 'bus/pci/devices'


class KernelEmulator(Protocol):
    """What a test kernel (fakehost's FakeKernel) offers the writer."""

    def on_write(self, path: str, value: str,
                 commit: Callable[[], None]) -> None: ...


class Sysfs:
    """Reads (unprivileged) and writes (through privsep) a sysfs tree.

    ``root`` and ``proc_root`` default to the real ones; tests and the
    benchmark pass a fake tree, and a ``kernel`` emulator that reacts to the
    writes as the kernel would.
    """

    def __init__(self, root: str = '/sys', proc_root: str = '/proc',
                 kernel: KernelEmulator | None = None) -> None:
        self.root = os.path.abspath(root)
        self.proc_root = os.path.abspath(proc_root)
        self.kernel = kernel
        self._root_checked = False

    # -- reading -------------------------------------------------------------
    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def dev_rel(self, address: str, attr: str = '') -> str:
        rel = '%s/%s' % (PCI_DEVICES, address)
        return '%s/%s' % (rel, attr) if attr else rel

    def read_abs(self, path: str) -> str | None:
        """The stripped text of a file, or None if it cannot be read."""
        # os.open/os.read: a buffered open() costs three times as much and
        # discovery reads tens of thousands of these.
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return os.read(fd, 65536).decode(errors='replace').strip()
        except OSError:
            return None
        finally:
            os.close(fd)

    def read(self, rel: str) -> str | None:
        return self.read_abs(os.path.join(self.root, rel))

    def read_int(self, rel: str, base: int = 10) -> int | None:
        text = self.read(rel)
        if text is None:
            return None
        try:
            return int(text, base)
        except ValueError:
            return None

    def count_abs(self, path: str) -> int | None:
        """A kernel counter file (sriov_numvfs, ...), or None if absent.

        :raises: SysfsError when it holds anything but a number.
        """
        text = self.read_abs(path)
        if text is None:
            return None
        if not text.isdigit() or len(text) > 9:
            raise exception.SysfsError(
                path=path, reason='it holds %r, not a count' % text[:40])
        return int(text)

    def count(self, rel: str) -> int | None:
        """:raises: SysfsError (see :meth:`count_abs`)"""
        return self.count_abs(os.path.join(self.root, rel))

    def link_name(self, rel: str) -> str | None:
        """The last component of a symlink's target, or None."""
        try:
            return os.readlink(os.path.join(self.root, rel)).rsplit('/', 1)[-1]
        except OSError:
            return None

    def listdir(self, rel: str) -> list[str]:
        try:
            return os.listdir(os.path.join(self.root, rel))
        except OSError:
            return []

    def exists(self, rel: str) -> bool:
        return os.path.lexists(os.path.join(self.root, rel))

    def realpath(self, rel: str) -> str:
        return os.path.realpath(os.path.join(self.root, rel))

    def proc(self, rel: str) -> str | None:
        return self.read_abs(os.path.join(self.proc_root, rel))

    def pci_addresses(self) -> list[str]:
        return sorted(self.listdir(PCI_DEVICES))

    def has_device(self, address: str) -> bool:
        return os.path.isdir(self.path(self.dev_rel(address)))

    def require_device(self, address: str) -> None:
        """:raises: DeviceNotFound"""
        if not self.has_device(address):
            raise exception.DeviceNotFound(
                address=address, root=self.path(PCI_DEVICES))

    def driver(self, address: str) -> str | None:
        return self.link_name(self.dev_rel(address, 'driver'))

    def driver_override(self, address: str) -> str | None:
        text = self.read(self.dev_rel(address, 'driver_override'))
        return None if text in (None, '', '(null)') else text

    def iommu_group(self, address: str) -> int | None:
        name = self.link_name(self.dev_rel(address, 'iommu_group'))
        return int(name) if name is not None and name.isdigit() else None

    def group_members(self, group: int) -> list[str]:
        return sorted(self.listdir('kernel/iommu_groups/%d/devices' % group))

    def ids(self, address: str) -> tuple[str, str]:
        vendor = self.read(self.dev_rel(address, 'vendor')) or '0x0000'
        product = self.read(self.dev_rel(address, 'device')) or '0x0000'
        return vendor[2:].lower(), product[2:].lower()

    # -- writing -------------------------------------------------------------
    def _check_privileged_root(self) -> None:
        """The privileged side writes under its own root: it must be ours.

        :raises: SysfsError naming both roots.
        """
        if self._root_checked:
            return
        theirs = privsep.sysfs_root()
        if theirs != os.path.realpath(self.root):
            raise exception.SysfsError(
                path=self.root, reason='the privileged helper writes under '
                '%s ([agent] sysfs_root of its configuration), not under '
                'this tree; set the same root for both' % theirs)
        self._root_checked = True

    def write(self, rel: str, value: str) -> None:
        """Write one attribute through the privileged context.

        :raises: SysfsError naming the path and the kernel's error.
        """
        LOG.debug('sysfs write %s <- %r', rel, value)

        def commit() -> None:
            privsep.ensure_started()
            self._check_privileged_root()
            privsep.write_attr(rel, value)

        try:
            if self.kernel is None:
                commit()
            else:
                self.kernel.on_write(rel, value, commit)
        except OSError as exc:
            reason = '%s: %s' % (errno.errorcode.get(exc.errno or 0, 'E?'),
                                 exc.strerror or exc)
            raise exception.SysfsError(
                path=self.path(rel), reason='writing %r failed (%s)' % (
                    value, reason)) from None
