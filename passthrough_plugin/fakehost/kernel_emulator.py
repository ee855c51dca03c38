"""A tiny PCI "kernel" that reacts to sysfs writes in a :mod:`sysfs_tree` tree.

:class:`passthrough_plugin.agent.sysfs.Sysfs` calls :meth:`FakeKernel.on_write`
after each (unprivileged, test-mode) write, the way the kernel's attribute
``store`` functions run on a write: drivers bind and unbind by moving
symlinks, ``sriov_numvfs`` creates and removes VFs, and failures come back as
``OSError`` with the kernel's errno. Faults can be injected at any write.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from passthrough_plugin.fakehost import sysfs_tree

WriteHook = Callable[[int, str, str], None]


class FakeKernel:
    """Emulates the PCI core's sysfs attribute handlers."""

    def __init__(self, tree: sysfs_tree.FakeSysfs) -> None:
        self.tree = tree
        self.writes: list[tuple[str, str]] = []
        self.dynids: dict[str, set[tuple[str, str]]] = {}
        # Called before each write takes effect with (index, path, value);
        # raise to make the write fail (or os._exit to "kill" the agent).
        self.hooks: list[WriteHook] = []

    def fail_at(self, index: int, err: int = errno.EIO) -> None:
        """Make write number ``index`` (0-based) fail with ``err``."""
        def hook(i: int, path: str, value: str) -> None:
            if i == index:
                raise OSError(err, '%s (injected)' % os.strerror(err), path)
        self.hooks.append(hook)

    # -- helpers -------------------------------------------------------------
    def _ids(self, address: str) -> tuple[str, str]:
        path = self.tree.dev(address)
        return ((path / 'vendor').read_text().strip()[2:],
                (path / 'device').read_text().strip()[2:])

    def _override(self, address: str) -> str | None:
        text = (self.tree.dev(address) / 'driver_override').read_text()
        text = text.strip()
        return None if text in ('', '(null)') else text

    def _matches(self, driver: str, address: str) -> bool:
        override = self._override(address)
        if override is not None:
            return override == driver
        ids = self._ids(address)
        return (ids in self.tree.driver_ids.get(driver, set())
                or ids in self.dynids.get(driver, set()))

    def _probe(self, address: str) -> None:
        if self.tree.driver_of(address) is not None:
            return
        override = self._override(address)
        if override is not None:
            if self.tree.drv(override).exists():
                self.tree.set_driver(address, override)
            return
        for driver in sorted(self.tree.driver_ids):
            if self._matches(driver, address):
                self.tree.set_driver(address, driver)
                return

    @staticmethod
    def _einval(path: str, why: str) -> OSError:
        return OSError(errno.EINVAL, why, path)

    # -- the write entry point -----------------------------------------------
    def on_write(self, path: str, value: str,
                 commit: Callable[[], None]) -> None:
        """React to ``value`` written at ``path`` (relative to the sys root).

        ``commit`` performs the real (privileged, here unprivileged) write
        into the fake file; when the emulated handler then fails, the file
        gets its old content back, as a failed write changes nothing.

        :raises: OSError as the kernel would return it to ``write(2)``.
        """
        index = len(self.writes)
        self.writes.append((path, value))
        for hook in self.hooks:
            hook(index, path, value)
        real = os.path.realpath(self.tree.sys / path)
        try:
            with open(real) as old:
                before: str | None = old.read()
        except OSError:
            before = None
        commit()
        try:
            self._apply(path, value)
        except OSError:
            if before is not None and os.path.exists(real):
                with open(real, 'w') as out:
                    out.write(before)
            raise

    def _apply(self, path: str, value: str) -> None:
        parts = path.split('/')
        text = value.strip()
        if parts[:2] != ['bus', 'pci']:
            raise self._einval(path, 'not a PCI attribute')
        if parts[2:] == ['drivers_probe']:
            self._require_device(path, text)
            self._probe(text)
        elif parts[2:] == ['rescan']:
            return
        elif len(parts) == 5 and parts[2] == 'drivers':
            self._driver_attr(path, parts[3], parts[4], text)
        elif len(parts) == 5 and parts[2] == 'devices':
            self._device_attr(path, parts[3], parts[4], text)
        elif (len(parts) == 6 and parts[2] == 'devices'
              and parts[4] == 'driver' and parts[5] == 'unbind'):
            driver = self.tree.driver_of(parts[3])
            if driver is None:
                raise OSError(errno.ENOENT, 'no driver', path)
            self._driver_attr(path, driver, 'unbind', text)
        else:
            raise self._einval(path, 'unknown attribute')

    def _require_device(self, path: str, address: str) -> None:
        if not self.tree.dev(address).is_dir():
            raise OSError(errno.ENODEV, 'no such device', path)

    def _driver_attr(self, path: str, driver: str, attr: str,
                     text: str) -> None:
        if attr in ('new_id', 'remove_id'):
            fields = text.split()
            if len(fields) < 2:
                raise self._einval(path, 'need "vendor product"')
            ids = (fields[0].lower().rjust(4, '0'),
                   fields[1].lower().rjust(4, '0'))
            dyn = self.dynids.setdefault(driver, set())
            if attr == 'remove_id':
                if ids not in dyn:
                    raise OSError(errno.ENODEV, 'no such id', path)
                dyn.discard(ids)
                return
            dyn.add(ids)
            for address in sorted(os.listdir(self.tree.sys / 'bus/pci/'
                                             'devices')):
                if (self.tree.driver_of(address) is None
                        and self._matches(driver, address)):
                    self.tree.set_driver(address, driver)
            return
        self._require_device(path, text)
        if attr == 'unbind':
            if self.tree.driver_of(text) != driver:
                raise OSError(errno.ENODEV, 'not bound to %s' % driver, path)
            self.tree.set_driver(text, None)
        elif attr == 'bind':
            if self.tree.driver_of(text) is not None:
                raise OSError(errno.EBUSY, 'device has a driver', path)
            if not self._matches(driver, text):
                raise OSError(errno.ENODEV, 'driver does not match', path)
            self.tree.set_driver(text, driver)
        else:
            raise self._einval(path, 'unknown driver attribute')

    def _device_attr(self, path: str, address: str, attr: str,
                     text: str) -> None:
        self._require_device(path, address)
        dev = self.tree.dev(address)
        if attr == 'driver_override':
            (dev / 'driver_override').write_text((text or '(null)') + '\n')
        elif attr == 'sriov_numvfs':
            self._set_numvfs(path, address, text)
        elif attr == 'sriov_drivers_autoprobe':
            (dev / attr).write_text(text + '\n')
        elif attr == 'remove':
            self.tree.remove_device(address)
        else:
            raise self._einval(path, 'unknown device attribute')

    def _set_numvfs(self, path: str, address: str, text: str) -> None:
        dev = self.tree.dev(address)
        plan = self.tree.plans.get(address)
        if plan is None or not (dev / 'sriov_totalvfs').exists():
            raise OSError(errno.ENOENT, 'not SR-IOV capable', path)
        try:
            wanted = int(text)
        except ValueError:
            raise self._einval(path, 'not a number') from None
        total = int((dev / 'sriov_totalvfs').read_text())
        current = len([n for n in os.listdir(dev)
                       if n.startswith('virtfn')])
        if not 0 <= wanted <= total:
            raise OSError(errno.ERANGE, 'more than sriov_totalvfs', path)
        if wanted == current:
            return
        if self.tree.driver_of(address) is None:
            raise OSError(errno.ENOENT, 'PF has no driver', path)
        if current and wanted:
            # The kernel refuses to change a non-zero VF count directly.
            raise OSError(errno.EBUSY, 'VFs already enabled', path)
        if wanted:
            self.tree.create_vfs(address, wanted)
        else:
            self.tree.remove_vfs(address)
