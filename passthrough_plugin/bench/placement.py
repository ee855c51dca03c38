"""Claims per second with 8 concurrent scheduler processes on Placement.

``run()`` starts a real Placement (the functional tests' fixture),
publishes hosts with scarce VFs, starts 8 scheduler processes
(:mod:`placement_run`) that each send
``PASSTHROUGH_BENCH_PLACEMENT_REQUESTS`` (500) requests (each process
holds at most 2 claims and releases one at random beyond that, so the
hosts stay near full and contended), samples Placement's allocations
while they run and checks them, and at the end, with
:mod:`placement_oracle`, then prints the figures.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from passthrough_plugin.bench import placement_oracle as oracle
from passthrough_plugin.bench import placement_run
from passthrough_plugin.bench import placement_scale
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import synthetic

PROCESSES = 8
REQUESTS = 500
ALIASES = placement_run.ALIASES
SHAPES = placement_run.SHAPES
Run = placement_run.Run
contend = placement_run.contend


def hosts(count: int = 4, pfs: int = 2, vfs: int = 4
          ) -> list[report_mod.HostReport]:
    """Hosts with scarce VFs: every claim competes for a few devices."""
    return [synthetic.sriov_host('host%d' % n, pfs=pfs, vfs=vfs,
                                 numa_nodes=2) for n in range(count)]


def held_mismatches(result: dict[str, Any], snap: oracle.Snapshot
                    ) -> list[str]:
    """What the schedulers think they hold, against what Placement holds
    (a stable snapshot after the run)."""
    found = []
    held = {consumer: (host, lines)
            for consumer, host, lines in result['held']}
    for consumer in sorted(set(held) ^ snap.consumers()):
        found.append('%s: %s' % (consumer, (
            'the scheduler holds it, Placement has no allocations'
            if consumer in held else
            'Placement holds allocations no scheduler knows of')))
    for consumer, (host, lines) in sorted(held.items()):
        got = sorted('%s %s x%d' % (snap.names[uuid][1], rc, n)
                     for uuid, res in snap.holdings.get(consumer, {}).items()
                     for rc, n in res.items())
        if consumer in snap.holdings and sorted(lines) != got:
            found.append('%s: the scheduler holds %s, Placement %s' % (
                consumer, sorted(lines), got))
        hosts_held = {snap.names[u][0]
                      for u in snap.holdings.get(consumer, {})}
        if hosts_held - {host}:
            found.append('%s: granted on %s, held on %s' % (
                consumer, host, ', '.join(sorted(hosts_held))))
    return found


def contend_checked(client: Any, url: str, reports: Sequence[
        report_mod.HostReport], processes: int, requests: int,
        timeout: float = 1800.0, every: int = 40, subset: int = 1
        ) -> dict[str, Any]:
    """A run sampled while it writes (every ``every`` outcomes) and checked
    after it: the result with ``violations`` (sampled and final),
    ``samples`` and ``final``."""
    names = oracle.providers(client)
    run = Run(url, processes, requests, subset=subset)
    sampler = oracle.Sampler(client, names, reports, run, every=every)
    try:
        run.start()
        sampler.start()
        result = run.finish(timeout)
    finally:
        run.close()
        sampler.stop()
    final = oracle.snapshot(client, names, usages=True)
    result.update(
        samples=sampler.samples, peak=sampler.peak, final=final,
        violations=sampler.violations + sampler.check(final, stable=True)
        + held_mismatches(result, final))
    return result


def raw_capacity(url: str, resource_class: str, processes: int,
                 requests: int, timeout: float = 1800.0) -> dict[str, Any]:
    """Placement alone with the plugin's call mix: per consumer one PUT
    and one DELETE, from ``processes`` processes."""
    run = Run(url, processes, requests, raw=resource_class)
    try:
        run.start()
        return run.finish(timeout)
    finally:
        run.close()


def _per_s(result: dict[str, Any], key: str = 'granted') -> float:
    return float(result[key]) / result['wall'] if result['wall'] else 0.0


def run() -> None:
    """Raw capacity, the plugin's claims/s on the same server, the ratio."""
    fixture_mod = importlib.import_module('tests.functional.fixtures.'
                                          'placement')
    from passthrough_plugin.store.placement import store as placement_store
    from passthrough_plugin.store.placement.client import PlacementClient

    requests = int(os.environ.get('PASSTHROUGH_BENCH_PLACEMENT_REQUESTS',
                                  REQUESTS))
    workers = int(os.environ.get('PASSTHROUGH_BENCH_PLACEMENT_WORKERS', '3'))
    subset = int(os.environ.get('PASSTHROUGH_BENCH_PLACEMENT_SUBSET', '4'))
    server = fixture_mod.PlacementFixture(database='postgresql',
                                          workers=workers)
    server.setUp()
    try:
        client = PlacementClient.from_endpoint(server.url, timeout=120)
        store = placement_store.PlacementReportStore(cfg.ConfigOpts(),
                                                     client=client)
        reports = hosts(count=16, pfs=2, vfs=16)
        for report in reports:
            store.publish(report)
        vf_rc = next(d.resource_class for d in reports[0].devices
                     if d.dev_type == 'type-VF')
        raw = raw_capacity(server.url, vf_rc, PROCESSES, requests)
        result = contend_checked(client, server.url, reports, PROCESSES,
                                 requests, every=200, subset=subset)
        _print_ratio(workers, reports, requests, subset, raw, result)
        scale_hosts = int(os.environ.get(
            'PASSTHROUGH_BENCH_PLACEMENT_SCALE_HOSTS', '1000'))
        if scale_hosts:
            placement_scale.scale(server.url, scale_hosts)
    finally:
        server.cleanUp()


def _print_ratio(workers: int, reports: Sequence[report_mod.HostReport],
                 requests: int, subset: int, raw: dict[str, Any],
                 result: dict[str, Any]) -> None:
    print('placement: Placement 16 on PostgreSQL (psycopg2), %d gunicorn '
          'workers; %d hosts, %d VFs, %d PFs' % (
              workers, len(reports),
              sum(1 for r in reports for d in r.devices
                  if d.dev_type == 'type-VF'),
              sum(1 for r in reports for d in r.devices
                  if d.dev_type == 'type-PF')))
    print('  raw Placement, %d processes x %d consumers (PUT + DELETE '
          'each, no plugin): %.1f consumers/s' % (
              PROCESSES, requests, _per_s(raw)))
    print('  plugin, %d schedulers x %d requests ([placement_store] '
          'host_subset_size = %d): %d granted, %d refused, %d errors, %d '
          'released in %.1f s: %.1f claims/s' % (
              PROCESSES, requests, subset, result['granted'],
              result['refused'],
              result['errors'], result['released'], result['wall'],
              _per_s(result)))
    calls = result['calls']
    print('  Placement calls per granted claim %.2f, per release %.2f, '
          'per refusal %.2f' % (
              calls['claim'] / max(1, result['granted']),
              calls['release'] / max(1, result['released']),
              calls['refuse'] / max(1, result['refused'])))
    print('  calls by method: plugin %s; raw %s' % (
        result['methods'], raw['methods']))
    for line in result['problems'][:3]:
        print('  error: ' + line)
    print('  ratio plugin / raw: %.2f (goal >= 0.8)' % (
        _per_s(result) / _per_s(raw) if _per_s(raw) else 0.0))
    print('  overcommit / anti-affinity / holder violations in %d samples '
          'of Placement during the run and one after: %d' % (
              result['samples'], len(result['violations'])))
    for line in result['violations'][:10]:
        print('    ' + line)


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # no options: the size comes from the environment
    run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
