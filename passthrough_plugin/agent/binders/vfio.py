"""vfio-pci binder: driver_override, unbind, drivers_probe."""

from __future__ import annotations

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent.binders import base

LOG = logging.getLogger(__name__)


class VfioPciBinder(base.Binder):
    """Binds with ``driver_override``, so no other device is affected.

    Unlike ``new_id`` (which makes vfio-pci claim every unbound device with
    the same ids), ``driver_override`` names one device, and survives a
    re-probe of that device.
    """

    driver = 'vfio-pci'
    name = 'vfio-pci'

    def check_ready(self) -> None:
        self.require_driver_dir('vfio-pci')

    def bind(self, record: base.DeviceRecord, save: base.Save) -> None:
        address = record.address
        if self.fs.driver(address) == self.driver:
            return
        override = self.fs.driver_override(address)
        if override not in (None, self.driver):
            raise exception.BindError(
                address=address, driver=self.driver,
                reason='its driver_override is %r, set by someone else; '
                'clear it first' % override)
        if override is None:
            record.set_override = True
            save()
            self.fs.write(self.fs.dev_rel(address, 'driver_override'),
                          self.driver)
        self.unbind_current(address)
        self.fs.write('bus/pci/drivers_probe', address)
        bound = self.fs.driver(address)
        if bound != self.driver:
            raise exception.BindError(
                address=address, driver=self.driver,
                reason='the device is on %s after drivers_probe' % (bound,))
        LOG.info('%s bound to %s (was %s)', address, self.driver,
                 record.original_driver)

    def release(self, record: base.DeviceRecord, save: base.Save) -> None:
        address = record.address
        if self.fs.driver(address) == self.driver:
            self.unbind_current(address)
        if (record.set_override
                and self.fs.driver_override(address) == self.driver):
            # Only the override we wrote; an operator's stays.
            self.fs.write(self.fs.dev_rel(address, 'driver_override'), '\n')
        record.set_override = False
        save()
        self.rebind_original(record)
        LOG.info('%s back on %s', address, record.original_driver)
