"""The binder contract: move one device to a passthrough driver and back."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.agent import sysfs as sysfs_mod

NAMESPACE = 'passthrough_plugin.binders'
Save = Callable[[], None]


@dataclasses.dataclass
class DeviceRecord:
    """What the agent changed on one device, kept in the state file.

    ``set_override`` and ``added_id`` are recorded *before* the write they
    describe, so after a crash the release step knows what may be ours to
    clear; the release then checks the live value before clearing it.
    """

    address: str
    binder: str
    original_driver: str | None
    original_override: str | None = None
    set_override: bool = False
    added_id: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceRecord:
        return cls(
            address=str(data['address']), binder=str(data['binder']),
            original_driver=data.get('original_driver'),
            original_override=data.get('original_override'),
            set_override=bool(data.get('set_override')),
            added_id=bool(data.get('added_id')))


class Binder(abc.ABC):
    """Moves PCI functions between their host driver and ``driver``."""

    #: The kernel driver devices are bound to, e.g. ``vfio-pci``.
    driver: str = ''
    #: The entry-point name.
    name: str = ''

    def __init__(self, fs: sysfs_mod.Sysfs) -> None:
        self.fs = fs

    @abc.abstractmethod
    def check_ready(self) -> None:
        """Check that the driver is loaded before touching any device.

        :raises: BindError with the command that would fix it.
        """

    @abc.abstractmethod
    def bind(self, record: DeviceRecord, save: Save) -> None:
        """Move one device from its current driver to :attr:`driver`.

        Calls ``save()`` after updating ``record`` and before each write
        the record describes. A device already on :attr:`driver` is left
        alone.

        :raises: SysfsError (a write failed), BindError (the kernel did not
            bind it).
        """

    @abc.abstractmethod
    def release(self, record: DeviceRecord, save: Save) -> None:
        """Return one device to ``record.original_driver``.

        Works from any partial state a failed or interrupted :meth:`bind`
        may have left, and clears only what ``record`` says this binder set.

        :raises: SysfsError, BindError (the device did not go back).
        """

    # -- shared steps --------------------------------------------------------
    def unbind_current(self, address: str) -> None:
        if self.fs.driver(address) is not None:
            self.fs.write(self.fs.dev_rel(address, 'driver/unbind'), address)

    def rebind_original(self, record: DeviceRecord) -> None:
        """Bind to the original driver (or let the kernel probe one)."""
        address = record.address
        if self.fs.driver(address) is not None:
            return
        override = self.fs.driver_override(address)
        if record.original_driver is None or override not in (
                None, record.original_driver):
            # Not bound by us, or pinned by someone else's driver_override:
            # the kernel's own choice is the right one.
            self.fs.write('bus/pci/drivers_probe', address)
            return
        self.fs.write('bus/pci/drivers/%s/bind' % record.original_driver,
                      address)
        if self.fs.driver(address) != record.original_driver:
            raise exception.BindError(
                address=address, driver=record.original_driver,
                reason='the device is on %s after the bind' % (
                    self.fs.driver(address),))

    def require_driver_dir(self, module: str) -> None:
        if not self.fs.exists('bus/pci/drivers/%s' % self.driver):
            raise exception.BindError(
                address='-', driver=self.driver,
                reason='the %s driver is not loaded; run "modprobe %s" (or '
                'add it to /etc/modules-load.d)' % (self.driver, module))
