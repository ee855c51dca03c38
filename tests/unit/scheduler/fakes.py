"""Host reports and configs for the scheduler and store tests."""

from __future__ import annotations

import json

from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin.pci import report as report_mod

VF_ALIAS = {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
            'device_type': 'type-VF'}
PF_ALIAS = {'name': 'pf', 'vendor_id': '8086', 'product_id': '1572',
            'device_type': 'type-PF'}
GPU_ALIAS = {'name': 'gpu', 'vendor_id': '10de', 'product_id': '1eb8'}
ALIASES = [json.dumps(a) for a in (VF_ALIAS, PF_ALIAS, GPU_ALIAS)]


def sriov_host(host: str, pfs: int = 2, vfs: int = 4, *,
               used_vfs: int = 0, pf_numa: tuple[int, ...] | None = None,
               shared_group: bool = False, foreign_group: bool = False,
               gpus: int = 0) -> report_mod.HostReport:
    """``pfs`` Intel X710 PFs with ``vfs`` VFs each, one IOMMU group each.

    ``used_vfs`` VFs of the first PF are allocated; ``shared_group`` puts
    the first PF's VFs into one IOMMU group; ``foreign_group`` puts a
    device that is not in the report into every group.
    """
    devices = []
    group = 10
    foreign: dict[int, tuple[str, ...]] = {}
    for p in range(pfs):
        numa = pf_numa[p] if pf_numa else p % 2
        pf = '0000:%02x:00.0' % (0x81 + p)
        devices.append(report_mod.Device(
            address=pf, vendor_id='8086', product_id='1572',
            dev_type='type-PF', numa_node=numa, iommu_group=group,
            tags={'physical_network': 'physnet%d' % (p % 2)}))
        if foreign_group:
            foreign[group] = ('0000:00:1f.3',)
        group += 1
        shared = group
        for v in range(vfs):
            vf = '0000:%02x:%02x.%d' % (0x81 + p, 2 + v // 8, v % 8)
            used = p == 0 and v < used_vfs
            devices.append(report_mod.Device(
                address=vf, vendor_id='8086', product_id='154c',
                dev_type='type-VF', parent_address=pf, numa_node=numa,
                iommu_group=shared if shared_group and p == 0 else group,
                tags={'physical_network': 'physnet%d' % (p % 2)},
                status='allocated' if used else 'available',
                owner='inst-%d' % v if used else None,
                source='flavor' if used else None))
            if foreign_group:
                foreign[group] = ('0000:00:1f.3',)
            if not (shared_group and p == 0):
                group += 1
        group += 1
    for g in range(gpus):
        devices.append(report_mod.Device(
            address='0000:%02x:00.0' % (0x3b + g), vendor_id='10de',
            product_id='1eb8', dev_type='type-PCI', numa_node=0,
            iommu_group=group))
        group += 1
    return report_mod.HostReport(
        host=host, devices=devices,
        numa_cells=[report_mod.NumaCell(0, 0), report_mod.NumaCell(1, 1)],
        iommu=report_mod.IommuState(enabled=True, foreign_members=foreign))


def config(test, path: str, **scheduler: object) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every group, the file store at ``path``."""
    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    fixture = test.useFixture(config_fixture.Config(conf))
    fixture.config(path=path, group='file_store')
    fixture.config(alias=ALIASES, group='pci')
    for key, value in scheduler.items():
        fixture.config(**{key: value, 'group': 'passthrough_scheduler'})
    conf([], project='passthrough-plugin')
    return conf
