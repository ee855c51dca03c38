"""Synthetic host reports: SR-IOV hosts for benchmarks, tests and demos."""

from __future__ import annotations

import random

from passthrough_plugin.pci import report as report_mod


def sriov_host(host: str, pfs: int = 4, vfs: int = 64, numa_nodes: int = 2,
               vendor_id: str = '8086', pf_product: str = '1572',
               vf_product: str = '154c', used_vfs: list[int] | None = None,
               include_pfs: bool = True, generation: int = 1,
               tags: dict[str, str] | None = None,
               owner: str = 'existing-instance') -> report_mod.HostReport:
    """A host with ``pfs`` PFs of ``vfs`` VFs each, spread over NUMA nodes.

    ``used_vfs[p]`` VFs of PF ``p`` are allocated already. Every device has
    its own IOMMU group (ACS-capable root ports), as on most servers.
    """
    devices: list[report_mod.Device] = []
    group = 10
    for p in range(pfs):
        # 15 PFs per PCI domain (buses 0x10-0xf1), then the next domain.
        domain, bus = divmod(p, 15)
        bus = 0x10 + bus * 0x10
        pf = '%04x:%02x:00.0' % (domain, bus)
        node = p * numa_nodes // pfs if numa_nodes else None
        in_use = used_vfs[p] if used_vfs else 0
        if include_pfs:
            devices.append(report_mod.Device(
                pf, vendor_id, pf_product, 'type-PF', class_code='020000',
                numa_node=node, iommu_group=group, driver='i40e',
                devname='ens%df0' % p, tags=dict(tags or {}),
                status='unavailable' if in_use else 'available'))
            group += 1
        for v in range(vfs):
            # VF n sits at bus+1 (slot n // 8, function n % 8).
            address = '%04x:%02x:%02x.%x' % (domain, bus + 1, v // 8,
                                              v % 8)
            dev = report_mod.Device(
                address, vendor_id, vf_product, 'type-VF',
                class_code='020000', parent_address=pf, numa_node=node,
                iommu_group=group, driver='iavf', tags=dict(tags or {}))
            if v < in_use:
                dev.status, dev.owner, dev.source = (
                    'allocated', owner, 'flavor')
            devices.append(dev)
            group += 1
    return report_mod.HostReport(
        host, generation, devices,
        [report_mod.NumaCell(n, n) for n in range(numa_nodes)],
        report_mod.IommuState(True, True, {}))


def random_usage(rng: random.Random, pfs: int, vfs: int) -> list[int]:
    """How many VFs of each PF are in use: many idle, some busy or full."""
    out = []
    for _ in range(pfs):
        roll = rng.random()
        if roll < 0.4:
            out.append(0)
        elif roll < 0.9:
            out.append(rng.randint(1, vfs - 1))
        else:
            out.append(vfs)
    return out
