"""Example hosts for the quick start: a few SR-IOV hosts and their aliases."""

from __future__ import annotations

import json

from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import synthetic

ALIASES = (
    {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
     'device_type': 'type-VF'},
    {'name': 'pf', 'vendor_id': '8086', 'product_id': '1572',
     'device_type': 'type-PF'},
)


def alias_values() -> list[str]:
    """The ``[pci] alias`` values that match the example hosts."""
    return [json.dumps(a, sort_keys=True) for a in ALIASES]


def hosts() -> list[report_mod.HostReport]:
    """Four hosts: idle, busy, nearly full, and one with a tainted group.

    ``compute-4`` has a device outside the report in the IOMMU group of
    every VF of its first PF, so those VFs are never handed out.
    """
    idle = synthetic.sriov_host('compute-1', pfs=2, vfs=8)
    busy = synthetic.sriov_host('compute-2', pfs=2, vfs=8, used_vfs=[3, 0])
    full = synthetic.sriov_host('compute-3', pfs=1, vfs=8, used_vfs=[7])
    tainted = synthetic.sriov_host('compute-4', pfs=1, vfs=8)
    tainted.iommu.foreign_members = {
        d.iommu_group: ('0000:00:1f.3',) for d in tainted.devices
        if d.iommu_group is not None}
    return [idle, busy, full, tainted]
