"""Claims per second with 8 concurrent scheduler processes on Placement.

``run()`` starts a real Placement (the functional tests' fixture, SQLite,
one gunicorn thread), publishes hosts with scarce VFs, starts 8 scheduler
processes that each send ``PASSTHROUGH_BENCH_PLACEMENT_REQUESTS`` (500)
requests (one allocation-candidates query and one claim each; each
process holds at most 2 claims and releases one at random beyond that, so
the hosts stay near full and contended), then checks that
nothing was overcommitted and prints the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import synthetic
from passthrough_plugin.store import placement_mapping as mapping

PROCESSES = 8
REQUESTS = 500
ALIASES = [
    '{"name": "vf", "vendor_id": "8086", "product_id": "154c", '
    '"device_type": "type-VF"}',
    '{"name": "pf", "vendor_id": "8086", "product_id": "1572", '
    '"device_type": "type-PF"}',
]
# (extra specs, share of the requests)
SHAPES: list[tuple[dict[str, str], float]] = [
    ({'pci_passthrough:alias': 'vf:1'}, 0.5),
    ({'pci_passthrough:alias': 'vf:2'}, 0.25),
    ({'pci_passthrough:alias': 'vf:2',
      'passthrough:vf_anti_affinity': 'true'}, 0.15),
    ({'pci_passthrough:alias': 'pf:1'}, 0.10),
]


def hosts(count: int = 4, pfs: int = 2, vfs: int = 4
          ) -> list[report_mod.HostReport]:
    """Hosts with scarce VFs: every claim competes for a few devices."""
    return [synthetic.sriov_host('host%d' % n, pfs=pfs, vfs=vfs,
                                 numa_nodes=2) for n in range(count)]


def _engine(url: str) -> Any:
    from passthrough_plugin.scheduler import engine as engine_mod
    from passthrough_plugin.store import placement as placement_store
    from passthrough_plugin.store.placement_client import PlacementClient

    conf = cfg.ConfigOpts()
    scheduler_conf.register_opts(conf)
    store_conf.register_opts(conf)
    store = placement_store.PlacementReportStore(
        conf, client=PlacementClient.from_endpoint(url, timeout=120))
    return engine_mod.Engine(conf, store=store,
                             aliases=alias_mod.parse_aliases(ALIASES))


def worker(url: str, requests: int, seed: int, start_at: float,
           hold: int) -> dict[str, Any]:
    """One scheduler process: ``requests`` select-and-claims."""
    engine = _engine(url)
    rng = random.Random(seed)
    shapes = [engine.request(specs) for specs, _share in SHAPES]
    weights = [share for _specs, share in SHAPES]
    held: list[tuple[str, str, list[str]]] = []
    granted = refused = errors = released = 0
    problems: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    began = time.monotonic()
    for _n in range(requests):
        request = rng.choices(shapes, weights)[0]
        consumer = str(uuid.uuid4())
        try:
            found = engine.pools.select_and_claim(request, consumer)
        except exception.PassthroughException as exc:
            errors += 1
            problems.append(exc.message)
            continue
        if found is None:
            refused += 1
            continue
        granted += 1
        held.append((consumer, found[0], found[1]))
        if len(held) > hold:
            item = held.pop(rng.randrange(len(held)))
            try:
                engine.release(item[1], item[0])
            except exception.PassthroughException as exc:
                # Kept: released again later, or reported as held.
                held.append(item)
                problems.append(exc.message)
                continue
            released += 1
    return {'granted': granted, 'refused': refused, 'errors': errors,
            'released': released, 'seconds': time.monotonic() - began,
            'held': held, 'problems': problems[:20]}


def check(client: Any, reports: Sequence[report_mod.HostReport]
          ) -> dict[str, Any]:
    """Overcommit and mapping violations of every provider of ours, and
    who holds what (consumer -> provider -> class -> amount)."""
    by_host = {r.host: r for r in reports}
    violations: list[str] = []
    holders: dict[str, dict[str, dict[str, int]]] = {}
    for rp in client.list_providers(required=[mapping.DEVICE]):
        parts = mapping.split_name(rp.name)
        if parts is None or parts[0] not in by_host:
            violations.append('%s: not a host of the run' % rp.name)
            continue
        report = by_host[parts[0]]
        pf = [d for d in report.devices if d.address == parts[1]]
        vfs = [d for d in report.devices if d.parent_address == parts[1]]
        _gen, inventories = client.get_inventories(rp.uuid)
        usages = client.get_provider_usages(rp.uuid)
        body = client._call(  # noqa: SLF001 - a read the client lacks
            'GET', '/resource_providers/%s/allocations' % rp.uuid)
        sums: dict[str, int] = {}
        for consumer, alloc in body['allocations'].items():
            for rc, n in alloc['resources'].items():
                sums[rc] = sums.get(rc, 0) + n
                holders.setdefault(consumer, {}).setdefault(
                    rp.uuid, {})[rc] = n
        for rc, used in usages.items():
            inv = inventories.get(rc)
            capacity = inv['total'] - inv['reserved'] if inv else 0
            if used > capacity:
                violations.append('%s: %s used %d > capacity %d' % (
                    rp.name, rc, used, capacity))
            if sums.get(rc, 0) != used:
                violations.append('%s: %s allocations sum %d != usage %d'
                                  % (rp.name, rc, sums.get(rc, 0), used))
            devices = pf if pf and rc == pf[0].resource_class else vfs
            if used > len(devices):
                violations.append('%s: %s used %d, the report has %d such '
                                  'devices' % (rp.name, rc, used,
                                               len(devices)))
        pf_rc = pf[0].resource_class if pf else None
        if pf_rc and usages.get(pf_rc) and vfs and usages.get(
                vfs[0].resource_class, 0) != len(vfs):
            violations.append('%s: PF given whole while VFs are free' %
                              rp.name)
    return {'violations': violations, 'holders': holders}


def _spawn(url: str, requests: int, seed: int, start_at: float,
           out: str, hold: int) -> subprocess.Popen[bytes]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get('PYTHONPATH')) if p))
    return subprocess.Popen(
        [sys.executable, '-m', 'passthrough_plugin.bench.placement',
         'worker', '--url', url, '--requests', str(requests), '--seed',
         str(seed), '--start-at', repr(start_at), '--out', out,
         '--hold', str(hold)], env=env)


def contend(url: str, processes: int, requests: int,
            hold: int = 2) -> dict[str, Any]:
    """Run the scheduler processes against ``url``; their summed results."""
    with tempfile.TemporaryDirectory() as tmp:
        start_at = time.time() + 3.0  # every process imported by then
        outs = [os.path.join(tmp, 'w%d.json' % n) for n in range(processes)]
        began = time.monotonic()
        procs = [_spawn(url, requests, n, start_at, out, hold)
                 for n, out in enumerate(outs)]
        codes = [p.wait() for p in procs]
        wall = time.monotonic() - began - max(0.0, start_at - time.time())
        results = []
        for out in outs:
            with open(out, encoding='utf-8') as f:
                results.append(json.load(f))
    total: dict[str, Any] = {k: sum(r[k] for r in results) for k in (
        'granted', 'refused', 'errors', 'released')}
    total.update(codes=codes, processes=processes, requests=requests,
                 wall=max(r['seconds'] for r in results) if results
                 else wall,
                 held=[tuple(h) for r in results for h in r['held']],
                 problems=[p for r in results for p in r['problems']])
    return total


def run() -> None:
    fixture_mod = importlib.import_module('tests.functional.fixtures.'
                                          'placement')
    from passthrough_plugin.store import placement as placement_store
    from passthrough_plugin.store.placement_client import PlacementClient

    requests = int(os.environ.get('PASSTHROUGH_BENCH_PLACEMENT_REQUESTS',
                                  REQUESTS))
    server = fixture_mod.PlacementFixture()
    server.setUp()
    try:
        client = PlacementClient.from_endpoint(server.url, timeout=120)
        conf = cfg.ConfigOpts()
        store = placement_store.PlacementReportStore(conf, client=client)
        reports = hosts()
        for report in reports:
            store.publish(report)
        result = contend(server.url, PROCESSES, requests)
        checked = check(client, reports)
    finally:
        server.cleanUp()
    done = result['granted'] + result['refused']
    print('placement: %d scheduler processes x %d requests on %d hosts '
          '(%d VFs, %d PFs; Placement 16, SQLite, 1 gunicorn thread)' % (
              PROCESSES, requests, len(reports),
              sum(1 for r in reports for d in r.devices
                  if d.dev_type == 'type-VF'),
              sum(1 for r in reports for d in r.devices
                  if d.dev_type == 'type-PF')))
    print('  %d granted, %d refused, %d errors, %d released in %.1f s' % (
        result['granted'], result['refused'], result['errors'],
        result['released'], result['wall']))
    print('  %.1f claims/s (granted or refused; one candidates query and '
          'one allocation write each), %.1f granted/s' % (
              done / result['wall'], result['granted'] / result['wall']))
    print('  overcommit / mapping violations: %d' % len(
        checked['violations']))
    for line in checked['violations'][:10]:
        print('    ' + line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='passthrough_plugin.bench.'
                                          'placement')
    sub = parser.add_subparsers(dest='command')
    w = sub.add_parser('worker')
    w.add_argument('--url', required=True)
    w.add_argument('--requests', type=int, default=REQUESTS)
    w.add_argument('--seed', type=int, default=0)
    w.add_argument('--start-at', type=float, default=0.0)
    w.add_argument('--hold', type=int, default=2)
    w.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    if args.command != 'worker':
        run()
        return 0
    result = worker(args.url, args.requests, args.seed, args.start_at,
                    args.hold)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
