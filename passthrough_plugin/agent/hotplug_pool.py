"""The hotplug pool: ``[hotplug] device_spec`` devices in the host report."""

from __future__ import annotations

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import doctor
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import report as report_mod

LOG = logging.getLogger(__name__)


def specs(conf: cfg.ConfigOpts) -> device_spec.DeviceSpecList:
    """``[hotplug] device_spec`` parsed; empty when the group is absent.

    :raises: InvalidDeviceSpec naming the bad entry.
    """
    if 'hotplug' not in conf:
        return device_spec.DeviceSpecList([])
    return device_spec.DeviceSpecList.from_config(
        conf.hotplug.device_spec, '[hotplug] device_spec')


def build_report(fs: sysfs_mod.Sysfs, pci_specs: device_spec.DeviceSpecList,
                 pool_specs: device_spec.DeviceSpecList, host: str,
                 scan: discovery.Scan | None = None
                 ) -> report_mod.HostReport:
    """nova's whitelisted devices plus the hotplug pool, marked as such.

    A device in both specs stays nova's: nova already tracks it, so the
    plugin must not hand it out (``doctor`` warns).
    """
    scan = scan if scan is not None else discovery.scan(fs)
    report = discovery.build_report(fs, pci_specs, host, scan)
    if not pool_specs.specs:
        return report
    listed = {d.address for d in report.devices}
    for info in scan.devices.values():
        if info.address in listed:
            continue
        spec = discovery.spec_for(pool_specs, info, scan)
        if spec is None:
            continue
        dev = discovery.to_device(info, spec)
        dev.hotplug_pool = True
        report.devices.append(dev)
    report.iommu.foreign_members = discovery.foreign_members(
        scan, (d.address for d in report.devices))
    return report


def overlap(fs: sysfs_mod.Sysfs, pci_specs: device_spec.DeviceSpecList,
            pool_specs: device_spec.DeviceSpecList) -> list[str]:
    """Addresses that both ``[pci]`` and ``[hotplug] device_spec`` match."""
    if not pool_specs.specs or not pci_specs.specs:
        return []
    scan = discovery.scan(fs)
    return sorted(
        info.address for info in scan.devices.values()
        if discovery.spec_for(pci_specs, info, scan) is not None
        and discovery.spec_for(pool_specs, info, scan) is not None)


def check_overlap(fs: sysfs_mod.Sysfs,
                  pci_specs: device_spec.DeviceSpecList,
                  pool_specs: device_spec.DeviceSpecList) -> doctor.Check:
    """doctor's check: no device may be in nova's and the hotplug pool."""
    both = overlap(fs, pci_specs, pool_specs)
    if not pool_specs.specs:
        return doctor.Check('hotplug-pool', doctor.PASS,
                            'no [hotplug] device_spec: no hotplug pool')
    if both:
        return doctor.Check(
            'hotplug-pool', doctor.WARN,
            'in both [pci] device_spec and [hotplug] device_spec: %s '
            '(reported as nova\'s, never hot-plugged)' % ', '.join(both),
            'remove them from one of the two options: nova must not see '
            'a device the plugin hot-plugs')
    return doctor.Check('hotplug-pool', doctor.PASS,
                        '[hotplug] device_spec and [pci] device_spec '
                        'share no device')
