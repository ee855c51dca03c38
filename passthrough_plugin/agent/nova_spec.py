"""nova's ``[pci] device_spec`` lines for exactly the assignable devices."""

from __future__ import annotations

import json
from typing import Any

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import names
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod

# Why a device can never be assigned (not: busy for now). A device in use
# stays listed: nova tracks what its guests hold.
NEVER = {
    explain.UNAVAILABLE: 'reported unavailable',
    explain.IOMMU_DISABLED: 'the host IOMMU is off',
    explain.IOMMU_GROUP: 'its IOMMU group holds a device that cannot be '
                         'assigned',
}
TYPE_PF = pools_mod.TYPE_PF


def not_assignable(report: report_mod.HostReport) -> dict[str, str]:
    """The reported devices nova must never hand out, each with why."""
    host_pools = pools_mod.HostPools.from_report(report)
    found: dict[str, str] = {}
    for i, dev in enumerate(report.devices):
        why = NEVER.get(host_pools.state[i] or '')
        if why is None and dev.hotplug_pool:
            why = 'kept for hot-plugging by the agent'
        if why is not None:
            found[dev.address] = why
    return found


def entries(report: report_mod.HostReport
            ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The device_spec entries (nova's JSON form, explicit addresses) and
    the devices left out, each with why.

    Devices the agent keeps for hot-plugging are left out (nova would hand
    them to guests). With PCI in Placement nova refuses a PF listed with
    its own VFs: the VFs are listed then, not the PF.
    """
    never = not_assignable(report)
    left_out: list[tuple[str, str]] = []
    keep: list[report_mod.Device] = []
    for dev in report.devices:
        why = never.get(dev.address)
        if why is not None:
            left_out.append((dev.address, why))
        else:
            keep.append(dev)
    parents = {d.parent_address for d in keep if d.parent_address}
    found = []
    for dev in keep:
        if dev.dev_type == TYPE_PF and dev.address in parents:
            left_out.append((dev.address, 'its VFs are listed (nova takes '
                             'a PF or its VFs, not both)'))
            continue
        found.append(_entry(dev))
    return found, left_out


def _entry(dev: report_mod.Device) -> dict[str, Any]:
    entry: dict[str, Any] = {'address': dev.address,
                             'vendor_id': dev.vendor_id,
                             'product_id': dev.product_id}
    entry.update(sorted(dev.tags.items()))
    if dev.resource_class and dev.resource_class != names.resource_class(
            None, dev.vendor_id, dev.product_id):
        entry['resource_class'] = dev.resource_class
    if dev.traits:
        entry['traits'] = ','.join(dev.traits)
    return entry


def render(report: report_mod.HostReport) -> str:
    """The ``[pci]`` section to paste into the compute's nova.conf."""
    found, left_out = entries(report)
    lines = ['# [pci] device_spec for %s: the %d device(s) the agent can '
             'assign' % (report.host, len(found))]
    lines.extend('# not listed: %s (%s)' % item for item in left_out)
    lines.append('[pci]')
    lines.extend('device_spec = %s' % json.dumps(e) for e in found)
    return '\n'.join(lines)
