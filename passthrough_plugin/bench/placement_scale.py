"""Placement at cloud size: publish time per host, candidates latency.

``scale()`` publishes ``hosts`` synthetic hosts of 4 PFs x 64 VFs from 8
threads (one store and client each) and times each publish, then times
``GET /allocation_candidates`` with the plugin's own query (its request
groups, group policy and ``[placement_store] candidate_limit``) for each
request shape of the bench.
"""

from __future__ import annotations

import statistics
import time
from concurrent import futures
from typing import Any

from oslo_config import cfg

from passthrough_plugin.bench.placement_run import ALIASES
from passthrough_plugin.bench.placement_run import SHAPES
from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import synthetic

PFS = 4
VFS = 64
THREADS = 8


def _store(url: str) -> Any:
    from passthrough_plugin.store.placement import store as placement_store
    from passthrough_plugin.store.placement.client import PlacementClient

    conf = cfg.ConfigOpts()
    scheduler_conf.register_opts(conf)
    store_conf.register_opts(conf)
    return placement_store.PlacementReportStore(
        conf, client=PlacementClient.from_endpoint(url, timeout=300))


def publish_many(url: str, hosts: int, prefix: str = 'scale'
                 ) -> list[float]:
    """Seconds of each host's publish, ``THREADS`` at a time."""
    stores = [_store(url) for _n in range(THREADS)]

    def one(n: int) -> float:
        report = synthetic.sriov_host('%s%04d' % (prefix, n), pfs=PFS,
                                      vfs=VFS, numa_nodes=2)
        began = time.monotonic()
        stores[n % THREADS].publish(report)
        return time.monotonic() - began

    with futures.ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(hosts)))


def candidates_latency(url: str, repeats: int = 3
                       ) -> list[tuple[str, float, int]]:
    """(extra specs, median seconds, candidates) per request shape."""
    store = _store(url)
    aliases = alias_mod.parse_aliases(ALIASES)
    out = []
    for specs, _share, _want in SHAPES:
        requests = request_mod.RequestSet.from_extra_specs(specs, aliases)
        params = store._query(requests)  # noqa: SLF001 - the plugin's query
        times = []
        found = 0
        for _n in range(repeats):
            began = time.monotonic()
            body = store.client.get_candidates_body(params)
            times.append(time.monotonic() - began)
            found = len(body['allocation_requests'])
        out.append((', '.join('%s=%s' % kv for kv in sorted(specs.items())),
                    statistics.median(times), found))
    return out


def scale(url: str, hosts: int) -> None:
    """Publish ``hosts`` hosts and print the figures."""
    began = time.monotonic()
    seconds = publish_many(url, hosts)
    wall = time.monotonic() - began
    print('  scale: %d hosts x (%d PF x %d VF) published in %.0f s from %d '
          'threads; one host\'s publish: median %.2f s, max %.2f s' % (
              hosts, PFS, VFS, wall, THREADS, statistics.median(seconds),
              max(seconds)))
    for specs, median, found in candidates_latency(url):
        print('  GET /allocation_candidates (%s; limit 1000): %.2f s, '
              '%d candidates' % (specs, median, found))
