"""Core fit benchmark: 10,000 hosts of 4 PFs x 64 VFs, side by side with nova.

Both sides get identical pools: ours are built from synthetic HostReports,
nova's PciDeviceStats from the same pools (as the compute node would report
them). The request is 2 VFs, without and with guest NUMA cells.
"""

from __future__ import annotations

import functools
import gc
import os
import random
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import pool_counts as summary_mod
from passthrough_plugin.pci import synthetic

# BENCH_HOSTS shrinks the run for a quick look; the target is for 10,000.
HOSTS = int(os.environ.get('BENCH_HOSTS', '10000'))
PFS = 4
VFS = 64
ALIASES = ['{"name": "vf", "vendor_id": "8086", "product_id": "154c", '
           '"device_type": "type-VF"}']


def _time(func: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (seconds) and the last result."""
    best = float('inf')
    result = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def _fits(deciders: Sequence[pools_mod.HostPools | summary_mod.Summary],
          requests: request_mod.RequestSet,
          cells: list[int] | None) -> list[bool]:
    return [d.fits(requests, cells) for d in deciders]


def _nova_fits(stats: list[Any], requests: list[Any],
               cells: Any) -> list[bool]:
    return [bool(s.support_requests(requests, None, cells)) for s in stats]


def build(hosts: int = HOSTS, seed: int = 42) -> list[pools_mod.HostPools]:
    rng = random.Random(seed)
    return [pools_mod.HostPools(synthetic.sriov_host(
        'compute-%05d' % n, PFS, VFS, 2,
        used_vfs=synthetic.random_usage(rng, PFS, VFS)))
        for n in range(hosts)]


def run() -> None:
    try:
        from passthrough_plugin.bench import nova_pools
        nova_pools.numa_topology  # noqa: B018
        import nova  # noqa: F401
        have_nova = True
    except ImportError:
        have_nova = False

    start = time.perf_counter()
    hosts = build()
    print('built %d hosts (%d PFs x %d VFs, 2 NUMA nodes, random usage) '
          'in %.1f s' % (len(hosts), PFS, VFS, time.perf_counter() - start))
    aliases = alias_mod.parse_aliases(ALIASES)

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    summaries = [summary_mod.Summary(h) for h in hosts]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print('summary memory: %.0f bytes per host' % (
        (after - before) / len(summaries)))

    cases = [
        ('2 VFs', {'pci_passthrough:alias': 'vf:2'}, None),
        ('2 VFs, guest on NUMA node 0, legacy', {
            'pci_passthrough:alias': 'vf:2'}, [0]),
        ('2 VFs, guest on NUMA node 0, required', {
            'pci_passthrough:alias': 'vf:2',
            'hw:pci_numa_affinity_policy': 'required'}, [0]),
    ]
    for label, extra_specs, cells in cases:
        requests = request_mod.RequestSet.from_extra_specs(extra_specs,
                                                           aliases)
        t_sum, ours = _time(functools.partial(_fits, summaries, requests,
                                              cells))
        t_dev, ours_dev = _time(functools.partial(_fits, hosts, requests,
                                                  cells), repeat=1)
        print('-- %s: %d of %d hosts fit' % (label, sum(ours), len(ours)))
        print('   passthrough summaries: %8.1f ms  %6.2f us/host' % (
            t_sum * 1e3, t_sum * 1e6 / len(hosts)))
        print('   passthrough HostPools: %8.1f ms  %6.2f us/host' % (
            t_dev * 1e3, t_dev * 1e6 / len(hosts)))
        assert ours == ours_dev, 'summary and device-level decisions differ'
        if not have_nova:
            print('   nova: not installed (run under tox -e bench)')
            continue
        from passthrough_plugin.bench import nova_pools
        stats = [nova_pools.stats(h) for h in hosts]
        nova_requests = nova_pools.requests(requests)
        nova_cells = nova_pools.cells(cells)
        t_nova, theirs = _time(functools.partial(
            _nova_fits, stats, nova_requests, nova_cells), repeat=1)
        same = sum(1 for a, b in zip(ours, theirs, strict=True) if a == b)
        print('   nova support_requests: %8.1f ms  %6.2f us/host' % (
            t_nova * 1e3, t_nova * 1e6 / len(hosts)))
        print('   ratio nova/passthrough: %.0fx; same decision on %d of %d '
              'hosts' % (t_nova / t_sum, same, len(hosts)))
