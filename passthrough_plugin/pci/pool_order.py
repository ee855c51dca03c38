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

from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import report as report_mod


def nova_free(host: pool_layout.PoolLayout, i: int) -> bool:
    """Whether nova keeps device ``i`` in its pools (status available)."""
    devices = host.devices
    if devices[i].status != 'available':
        return False
    parent = host.parent[i]
    if parent >= 0 and devices[parent].status in report_mod.IN_USE:
        return False
    return not any(devices[c].status in report_mod.IN_USE
                   for c in host.children.get(i, ()))


def _nova_free_all(host: pool_layout.PoolLayout) -> list[bool]:
    """:func:`nova_free` of every device, in one pass."""
    devices = host.devices
    in_use = report_mod.IN_USE
    busy = [dev.status in in_use for dev in devices]
    free = [dev.status == 'available' for dev in devices]
    parent = host.parent
    for i in host.skeleton.linked:
        up = parent[i]
        if busy[up]:
            free[i] = False
        elif busy[i]:
            free[up] = False
    return free


def restore(host: pool_layout.PoolLayout) -> None:
    """Set each pool's stamp and each device's join from the report.

    A report without stamps is a compute start: nova pools the free
    devices in address order. Free devices without a join stamp in a
    stamped report are new to nova, which adds them after the others.
    """
    devices = host.devices
    host.clock = 0
    host.join = [None] * len(devices)
    free = _nova_free_all(host)
    stamps = [s for d in devices for s in (d.pool_stamp, d.join_stamp)
              if s is not None]
    if stamps:
        late = []
        host.clock = max(stamps) + 1
        for i, dev in enumerate(devices):
            pool = host.pool_of[i]
            if dev.pool_stamp is not None and (
                    pool.stamp is None or dev.pool_stamp < pool.stamp):
                pool.stamp = dev.pool_stamp
        for i, dev in enumerate(devices):
            if not free[i]:
                continue
            if dev.join_stamp is None or host.pool_of[i].stamp is None:
                late.append(i)
            else:
                host.join[i] = dev.join_stamp
        for pool in host.pools:
            pool.queue = sorted(
                (i for i in pool.members if host.join[i] is not None),
                key=lambda i: host.join[i] or 0)
        late.sort(key=lambda i: devices[i].address)
    else:
        late = [i for i in host.skeleton.by_address_order if free[i]]
    # nova's add_device for each, inline (a host can have thousands).
    join, pool_of, clock = host.join, host.pool_of, host.clock
    for i in late:
        pool = pool_of[i]
        if pool.stamp is None:
            pool.stamp = clock
            clock += 1
        join[i] = clock
        clock += 1
        pool.queue.append(i)
    host.clock = clock


def add(host: pool_layout.PoolLayout, i: int) -> None:
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


def _remove(host: pool_layout.PoolLayout, i: int, unlist: bool) -> None:
    if host.join[i] is None:
        return
    pool = host.pool_of[i]
    pool.queue.remove(i)
    host.join[i] = None
    if unlist and not pool.queue:
        pool.stamp = None


def take(host: pool_layout.PoolLayout, i: int) -> None:
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


def release_order(host: pool_layout.PoolLayout, held: list[int]) -> list[int]:
    """nova frees an instance's allocated devices, then its claimed ones,
    each in address order."""
    return sorted(held, key=lambda i: (
        host.devices[i].status != 'allocated', host.devices[i].address))


def freed(host: pool_layout.PoolLayout, i: int) -> list[int]:
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


def persist(host: pool_layout.PoolLayout) -> None:
    """Write the stamps into the report's devices."""
    for i, dev in enumerate(host.devices):
        dev.pool_stamp = host.pool_of[i].stamp
        dev.join_stamp = host.join[i]


Use = tuple[str, str | None, str | None]


def replay(host: pool_layout.PoolLayout, now: dict[str, Use]) -> None:
    """Bring nova's view from the report's statuses to ``now``.

    ``now``: ``{address: (status, owner, source)}`` of the devices in use
    now. What changed in between is applied as nova-compute applies it:
    first the devices freed (per instance, in nova's release order), then
    the ones claimed (per instance, in address order). Several changes
    between two looks are thus applied releases first; nova's order is
    followed exactly when each look sees at most one change.
    """
    devices = host.devices
    freed_by: dict[str, list[int]] = {}
    taken_by: dict[str, list[int]] = {}
    for i, dev in enumerate(devices):
        use = now.get(dev.address)
        held = dev.status in report_mod.IN_USE
        if held and (use is None or use[1] != dev.owner):
            freed_by.setdefault(dev.owner or '', []).append(i)
        if use is not None and (not held or use[1] != dev.owner):
            taken_by.setdefault(use[1] or '', []).append(i)
        elif use is not None:
            dev.status, dev.source = use[0], use[2]
    for owner in sorted(freed_by):
        for i in release_order(host, freed_by[owner]):
            back = freed(host, i)
            dev = devices[i]
            dev.status, dev.owner, dev.source = 'available', None, None
            for j in back:
                add(host, j)
    for owner in sorted(taken_by):
        for i in sorted(taken_by[owner], key=lambda i: devices[i].address):
            dev = devices[i]
            dev.status, dev.owner, dev.source = now[dev.address]
            take(host, i)
