"""Builders of devices, reports and requests for the pure core tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod

INTEL = '8086'
PF_PRODUCT = '1572'
VF_PRODUCT = '154c'
GPU_VENDOR = '10de'
GPU_PRODUCT = '1eb8'


@contextlib.contextmanager
def case(name: str) -> Iterator[None]:
    """Name the table row in the failure (testtools ignores subTest)."""
    try:
        yield
    except BaseException as exc:
        # add_note is Python 3.11+; on 3.10 the traceback lacks the name.
        if hasattr(exc, 'add_note'):
            exc.add_note(f'in table case: {name}')
        raise


def dev(address: str, *, vendor: str = GPU_VENDOR,
        product: str = GPU_PRODUCT, dev_type: str = 'type-PCI',
        parent: str | None = None, numa: int | None = 0,
        group: int | None = None, status: str = 'available',
        owner: str | None = None, source: str | None = None,
        tags: dict[str, str] | None = None, rc: str = '',
        traits: tuple[str, ...] = ()) -> report_mod.Device:
    if status in report_mod.IN_USE and owner is None:
        owner = 'other-instance'
        source = source or 'flavor'
    return report_mod.Device(
        address=address, vendor_id=vendor, product_id=product,
        dev_type=dev_type, parent_address=parent, numa_node=numa,
        iommu_group=group, status=status, owner=owner, source=source,
        tags=dict(tags or {}), resource_class=rc, traits=traits)


def pf(address: str, **kw: Any) -> report_mod.Device:
    kw.setdefault('vendor', INTEL)
    kw.setdefault('product', PF_PRODUCT)
    return dev(address, dev_type='type-PF', **kw)


def vf(address: str, parent: str, **kw: Any) -> report_mod.Device:
    kw.setdefault('vendor', INTEL)
    kw.setdefault('product', VF_PRODUCT)
    return dev(address, dev_type='type-VF', parent=parent, **kw)


def report(*devices: report_mod.Device, host: str = 'host1',
           cells: tuple[tuple[int, int | None], ...] = ((0, 0), (1, 1)),
           iommu: bool = True,
           foreign: dict[int, tuple[str, ...]] | None = None,
           generation: int = 1) -> report_mod.HostReport:
    return report_mod.HostReport(
        host=host, generation=generation, devices=list(devices),
        numa_cells=[report_mod.NumaCell(c, s) for c, s in cells],
        iommu=report_mod.IommuState(enabled=iommu,
                                    foreign_members=dict(foreign or {})),
        reported_at='2026-01-01T00:00:00+00:00')


def host(*devices: report_mod.Device, **kw: Any) -> pools_mod.HostPools:
    return pools_mod.HostPools.from_report(report(*devices, **kw))


def request(count: int = 1, *, name: str | None = None,
            vendor: str | None = None, product: str | None = None,
            dev_type: str | None = None, policy: str = 'legacy',
            anti: bool = False, rc: str | None = None,
            traits: frozenset[str] = frozenset(),
            live: str | None = None) -> request_mod.DeviceRequest:
    spec = alias_mod.AliasSpec(
        vendor_id=int(vendor, 16) if vendor else None,
        product_id=int(product, 16) if product else None,
        dev_type=dev_type, resource_class=rc, traits=traits,
        live_migratable=live)
    return request_mod.DeviceRequest(
        name or (dev_type or 'dev'), count, (spec,), policy,
        request_mod.SOURCE_FLAVOR, anti)


def vf_request(count: int = 1, **kw: Any) -> request_mod.DeviceRequest:
    kw.setdefault('vendor', INTEL)
    kw.setdefault('product', VF_PRODUCT)
    return request(count, name='vf', dev_type='type-VF', **kw)


def pf_request(count: int = 1, **kw: Any) -> request_mod.DeviceRequest:
    kw.setdefault('vendor', INTEL)
    kw.setdefault('product', PF_PRODUCT)
    return request(count, name='pf', dev_type='type-PF', **kw)


def gpu_request(count: int = 1, **kw: Any) -> request_mod.DeviceRequest:
    kw.setdefault('vendor', GPU_VENDOR)
    kw.setdefault('product', GPU_PRODUCT)
    return request(count, name='gpu', **kw)


def requests(*reqs: request_mod.DeviceRequest,
             headroom: tuple[request_mod.DeviceRequest, ...] = ()
             ) -> request_mod.RequestSet:
    return request_mod.RequestSet(tuple(reqs), tuple(headroom))


def statuses(hp: pools_mod.HostPools) -> dict[str, tuple[str, str | None]]:
    return {d.address: (d.status, d.owner) for d in hp.devices}


def free_lists(hp: pools_mod.HostPools) -> list[list[int]]:
    return [list(p.free) for p in hp.pools]
