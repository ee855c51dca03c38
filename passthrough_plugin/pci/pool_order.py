"""nova's history-dependent pool order, kept in the HostReport.

nova lists its pools in the order they were created (stable-sorted by the
number of pool keys) and hands out the device that joined a pool last.
Which pools exist depends on history: devices in use when nova-compute
starts are not pooled; a pool emptied because its devices became
dependants (the PF of a claimed VF, the VFs of a claimed PF) leaves nova's
list and comes back at the end when a device rejoins it; a pool emptied by
a claim of its own devices stays listed. Each device carries two stamps of
one clock: ``pool_stamp`` (when its pool was listed, null: not listed) and
``join_stamp`` (when it joined its pool, null: not pooled by nova).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passthrough_plugin.pci import report as report_mod

if TYPE_CHECKING:  # pragma: no cover - typing only
    from passthrough_plugin.pci import pools as pools_mod


def nova_free(host: pools_mod.HostPools, i: int) -> bool:
    """Whether nova keeps device ``i`` in its pools (status available)."""
    devices = host.devices
    if devices[i].status != 'available':
        return False
    parent = host.parent[i]
    if parent >= 0 and devices[parent].status in report_mod.IN_USE:
        return False
    return not any(devices[c].status in report_mod.IN_USE
                   for c in host.children.get(i, ()))


def restore(host: pools_mod.HostPools) -> None:
    """Set each pool's stamp and each device's join from the report.

    A report without stamps is a compute start: nova pools the free
    devices in address order. Free devices without a join stamp in a
    stamped report are new to nova, which adds them after the others.
    """
    devices = host.devices
    stamped = any(d.pool_stamp is not None or d.join_stamp is not None
                  for d in devices)
    host.clock = 0
    host.join = [None] * len(devices)
    late = []
    if stamped:
        stamps = [s for d in devices for s in (d.pool_stamp, d.join_stamp)
                  if s is not None]
        host.clock = max(stamps) + 1
        for i, dev in enumerate(devices):
            pool = host.pool_of[i]
            if dev.pool_stamp is not None and (
                    pool.stamp is None or dev.pool_stamp < pool.stamp):
                pool.stamp = dev.pool_stamp
        for i, dev in enumerate(devices):
            if not nova_free(host, i):
                continue
            if dev.join_stamp is None or host.pool_of[i].stamp is None:
                late.append(i)
            else:
                host.join[i] = dev.join_stamp
        for pool in host.pools:
            pool.queue = sorted(
                (i for i in pool.members if host.join[i] is not None),
                key=lambda i: host.join[i] or 0)
    else:
        late = [i for i in range(len(devices)) if nova_free(host, i)]
    for i in sorted(late, key=lambda i: devices[i].address):
        add(host, i)


def add(host: pools_mod.HostPools, i: int) -> None:
    """nova's add_device: join the pool, listing it at the end if needed."""
    if host.join[i] is not None:
        return
    pool = host.pool_of[i]
    if pool.stamp is None:
        pool.stamp = host.clock
        host.clock += 1
    host.join[i] = host.clock
    host.clock += 1
    pool.queue.append(i)


def _remove(host: pools_mod.HostPools, i: int, unlist: bool) -> None:
    if host.join[i] is None:
        return
    pool = host.pool_of[i]
    pool.queue.remove(i)
    host.join[i] = None
    if unlist and not pool.queue:
        pool.stamp = None


def take(host: pools_mod.HostPools, i: int) -> None:
    """nova's claim of ``i``: its pool stays listed, dependants leave.

    A dependant's pool that this empties leaves nova's list.
    """
    _remove(host, i, unlist=False)
    parent = host.parent[i]
    if parent >= 0:
        _remove(host, parent, unlist=True)
    for child in sorted(host.children.get(i, ()),
                        key=lambda c: host.devices[c].address):
        _remove(host, child, unlist=True)


def release_order(host: pools_mod.HostPools, held: list[int]) -> list[int]:
    """nova frees an instance's allocated devices, then its claimed ones,
    each in address order."""
    return sorted(held, key=lambda i: (
        host.devices[i].status != 'allocated', host.devices[i].address))


def freed(host: pools_mod.HostPools, i: int) -> list[int]:
    """What nova adds back to its pools when ``i`` (still in use) is freed:
    a PF's VFs then the PF; a VF's PF (when no other VF of it is busy)
    then the VF."""
    devices = host.devices
    out = []
    children = host.children.get(i, ())
    if children:
        out.extend(sorted((c for c in children
                           if devices[c].status == 'available'),
                          key=lambda c: devices[c].address))
    parent = host.parent[i]
    if parent >= 0 and devices[parent].status == 'available' and all(
            devices[c].status == 'available'
            for c in host.children.get(parent, ()) if c != i):
        out.append(parent)
    out.append(i)
    return out


def persist(host: pools_mod.HostPools) -> None:
    """Write the stamps into the report's devices."""
    for i, dev in enumerate(host.devices):
        dev.pool_stamp = host.pool_of[i].stamp
        dev.join_stamp = host.join[i]
