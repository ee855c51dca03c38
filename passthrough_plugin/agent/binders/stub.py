"""pci-stub binder: the seed notes' legacy new_id/unbind/bind path."""

from __future__ import annotations

import errno
import warnings

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.agent.binders import base

LOG = logging.getLogger(__name__)
DEPRECATION = ('the pci-stub binder (legacy KVM device assignment) is '
               'deprecated: use vfio-pci; pci-stub offers no DMA isolation '
               'and modern QEMU cannot assign its devices')


class PciStubBinder(base.Binder):
    """Deprecated: ``new_id`` makes pci-stub claim *every* unbound device
    with the same vendor and product ids, not just the one named."""

    driver = 'pci-stub'
    name = 'pci-stub'

    def __init__(self, fs: sysfs_mod.Sysfs) -> None:
        super().__init__(fs)
        warnings.warn(DEPRECATION, DeprecationWarning, stacklevel=2)
        LOG.warning('%s', DEPRECATION)

    def check_ready(self) -> None:
        self.require_driver_dir('pci_stub')

    def _id_rel(self, attr: str) -> str:
        return 'bus/pci/drivers/%s/%s' % (self.driver, attr)

    def bind(self, record: base.DeviceRecord, save: base.Save) -> None:
        address = record.address
        if self.fs.driver(address) == self.driver:
            return
        vendor, product = self.fs.ids(address)
        if not record.added_id:
            record.added_id = True
            save()
            try:
                self.fs.write(self._id_rel('new_id'),
                              '%s %s' % (vendor, product))
            except exception.SysfsError as exc:
                if 'EEXIST' not in exc.message:
                    raise
                # Someone else's id: not ours to remove later.
                record.added_id = False
                save()
        if self.fs.driver(address) != self.driver:
            self.unbind_current(address)
            self.fs.write(self._id_rel('bind'), address)
        if self.fs.driver(address) != self.driver:
            raise exception.BindError(
                address=address, driver=self.driver,
                reason='the device is on %s after the bind' % (
                    self.fs.driver(address),))

    def release(self, record: base.DeviceRecord, save: base.Save) -> None:
        address = record.address
        if self.fs.driver(address) == self.driver:
            self.unbind_current(address)
        if record.added_id:
            vendor, product = self.fs.ids(address)
            try:
                self.fs.write(self._id_rel('remove_id'),
                              '%s %s' % (vendor, product))
            except exception.SysfsError as exc:
                if errno.errorcode[errno.ENODEV] not in exc.message:
                    raise
            record.added_id = False
            save()
        self.rebind_original(record)
