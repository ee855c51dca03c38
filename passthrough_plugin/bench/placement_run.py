"""Scheduler processes that claim on one Placement, watched line by line.

Each worker process is one scheduler (its own engine and Placement
client). It talks to its parent over its standard streams: it prints one
line per event (``ready``, ``intent <consumer> <shape>`` before each
claim, ``granted``/``refused``/``error``, ``released``, ``paused``,
``stalled``, and ``result <json>`` at the end) and waits on a line of its
standard input at each gate (start, ``pause_after``, and with
``stall_on_error`` after its first error). The parent (:class:`Run`)
reads the lines as they come, so a test waits on events (a count of
claims seen, every worker paused) with a bounded timeout, never on a
fixed sleep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import IO, Any

from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.bench.placement_oracle import Want
from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import alias as alias_mod

ALIASES = [
    '{"name": "vf", "vendor_id": "8086", "product_id": "154c", '
    '"device_type": "type-VF"}',
    '{"name": "pf", "vendor_id": "8086", "product_id": "1572", '
    '"device_type": "type-PF"}',
]
# (extra specs, share of the requests, what the oracle expects held)
SHAPES: list[tuple[dict[str, str], float, Want]] = [
    ({'pci_passthrough:alias': 'vf:1'}, 0.5, Want('type-VF', 1)),
    ({'pci_passthrough:alias': 'vf:2'}, 0.25, Want('type-VF', 2)),
    ({'pci_passthrough:alias': 'vf:2',
      'passthrough:vf_anti_affinity': 'true'}, 0.15,
     Want('type-VF', 2, anti_affinity=True)),
    ({'pci_passthrough:alias': 'pf:1'}, 0.10, Want('type-PF', 1)),
]


class RunTimeout(Exception):
    """An awaited event of the run did not come in time."""


def _engine(url: str, subset: int = 1) -> Any:
    from passthrough_plugin.scheduler import engine as engine_mod
    from passthrough_plugin.store.placement import store as placement_store
    from passthrough_plugin.store.placement.client import PlacementClient

    conf = cfg.ConfigOpts()
    scheduler_conf.register_opts(conf)
    store_conf.register_opts(conf)
    store = placement_store.PlacementReportStore(
        conf, client=PlacementClient.from_endpoint(url, timeout=120))
    conf.set_override('host_subset_size', subset, group='placement_store')
    return engine_mod.Engine(conf, store=store,
                             aliases=alias_mod.parse_aliases(ALIASES))


def worker(url: str, requests: int, seed: int, hold: int, *,
           pause_after: int | None = None, stall_on_error: bool = False,
           subset: int = 1, out: IO[str] = sys.stdout,
           gate: IO[str] = sys.stdin
           ) -> dict[str, Any]:
    """One scheduler process: ``requests`` select-and-claims; it holds
    at most ``hold`` claims and releases one at random beyond that."""
    def say(line: str) -> None:
        out.write(line + '\n')
        out.flush()

    def wait_gate(what: str) -> None:
        if not gate.readline():
            raise SystemExit('worker %d: the parent closed the gate (%s)'
                             % (seed, what))

    engine = _engine(url, subset)
    client = engine.store.client
    calls = {'claim': 0, 'refuse': 0, 'release': 0}

    def spent(since: int) -> int:
        return int(sum(client.calls.values())) - since

    rng = random.Random(seed)
    shapes = [engine.request(specs) for specs, _share, _want in SHAPES]
    weights = [share for _specs, share, _want in SHAPES]
    held: list[tuple[str, str, list[str]]] = []
    granted = refused = errors = released = 0
    problems: list[str] = []
    say('ready')
    wait_gate('start')
    began = time.monotonic()
    for n in range(requests):
        if n == pause_after:
            say('paused')
            wait_gate('pause')
        shape = rng.choices(range(len(shapes)), weights)[0]
        consumer = str(uuid.uuid4())
        say('intent %s %d' % (consumer, shape))
        since = sum(client.calls.values())
        try:
            found = engine.pools.select_and_claim(shapes[shape], consumer)
        except exception.PassthroughException as exc:
            errors += 1
            problems.append(exc.message)
            say('error %s' % consumer)
            if stall_on_error and errors == 1:
                say('stalled')
                wait_gate('stall')
            continue
        if found is None:
            calls['refuse'] += spent(since)
            refused += 1
            say('refused %s' % consumer)
            continue
        calls['claim'] += spent(since)
        granted += 1
        say('granted %s %s' % (consumer, found[0]))
        held.append((consumer, found[0], found[1]))
        if len(held) > hold:
            item = held.pop(rng.randrange(len(held)))
            since = sum(client.calls.values())
            try:
                engine.release(item[1], item[0])
            except exception.PassthroughException as exc:
                # Kept: released again later, or reported as held.
                held.append(item)
                problems.append(exc.message)
                continue
            calls['release'] += spent(since)
            released += 1
            say('released %s' % item[0])
    return {'granted': granted, 'refused': refused, 'errors': errors,
            'released': released, 'seconds': time.monotonic() - began,
            'held': held, 'problems': problems[:20], 'calls': calls,
            'methods': dict(client.calls)}


def raw_worker(url: str, requests: int, seed: int, resource_class: str, *,
               out: IO[str] = sys.stdout, gate: IO[str] = sys.stdin
               ) -> dict[str, Any]:
    """Placement alone, no plugin: per consumer one PUT of one
    ``resource_class`` unit (providers taken in turn) and one DELETE."""
    from passthrough_plugin.store.placement import mapping
    from passthrough_plugin.store.placement.client import PlacementClient

    client = PlacementClient.from_endpoint(url, timeout=120)
    providers = [rp.uuid for rp in client.list_providers(
        required=[mapping.DEVICE])
        if resource_class in client.get_inventories(rp.uuid)[1]]
    out.write('ready\n')
    out.flush()
    if not gate.readline():
        raise SystemExit('raw worker %d: the parent closed the gate' % seed)
    granted = refused = 0
    problems: list[str] = []
    began = time.monotonic()
    for n in range(requests):
        consumer = str(uuid.uuid4())
        try:
            client.put_allocations(
                consumer, {providers[(seed + n * 7) % len(providers)]: {
                    resource_class: 1}}, consumer_generation=None,
                project_id='bench', user_id='bench')
        except exception.PlacementCapacityExceeded as exc:
            refused += 1
            problems.append(exc.message)
            continue
        client.delete_allocations(consumer)
        granted += 1
        out.write('granted %s raw\n' % consumer)
        out.flush()
    return {'granted': granted, 'refused': refused, 'errors': 0,
            'released': granted, 'seconds': time.monotonic() - began,
            'held': [], 'problems': problems[:20],
            'calls': {'claim': granted + refused, 'refuse': 0,
                      'release': granted}, 'methods': dict(client.calls)}


class Progress:
    """What the parent has read of its workers' lines so far."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.intents: dict[str, int] = {}  # consumer -> shape index
        self.granted: set[str] = set()
        self.results: dict[int, dict[str, Any]] = {}
        self.exited: dict[int, int] = {}  # worker -> exit code

    def count(self, event: str) -> int:
        return self.counts.get(event, 0)

    @property
    def outcomes(self) -> int:
        return sum(self.count(e) for e in ('granted', 'refused', 'error'))

    def wants(self) -> dict[str, Want]:
        return {c: SHAPES[s][2] for c, s in self.intents.items()}

    def __str__(self) -> str:
        return ', '.join('%s %d' % kv for kv in sorted(self.counts.items())
                         ) + '; exited: %s' % (self.exited or 'none')


class Run:
    """``processes`` worker processes against ``url``, started together."""

    def __init__(self, url: str, processes: int, requests: int, *,
                 hold: int = 2, pause_after: int | None = None,
                 stall_on_error: bool = False, raw: str | None = None,
                 subset: int = 1) -> None:
        """``raw`` (a resource class) runs :func:`raw_worker` instead;
        ``subset`` is the workers' ``[placement_store] host_subset_size``.
        """
        self.url = url
        self.processes = processes
        self.requests = requests
        self.hold = hold
        self.pause_after = pause_after
        self.stall_on_error = stall_on_error
        self.raw = raw
        self.subset = subset
        self.progress = Progress()
        self.wall = 0.0
        self._cond = threading.Condition()
        self._procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        self._began = 0.0

    def start(self, timeout: float = 120.0) -> None:
        """Spawn the workers; once every one is ready, let them go."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (root, os.environ.get('PYTHONPATH')) if p))
        for n in range(self.processes):
            argv = [sys.executable, '-m', __name__, '--url', self.url,
                    '--requests', str(self.requests), '--seed', str(n),
                    '--hold', str(self.hold)]
            if self.pause_after is not None:
                argv += ['--pause-after', str(self.pause_after)]
            if self.stall_on_error:
                argv.append('--stall-on-error')
            if self.raw:
                argv += ['--raw', self.raw]
            argv += ['--host-subset-size', str(self.subset)]
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True,
                                    bufsize=1)
            self._procs.append(proc)
            reader = threading.Thread(target=self._read, args=(n, proc),
                                      daemon=True)
            reader.start()
            self._readers.append(reader)
        self.wait(lambda p: p.count('ready') == self.processes, timeout,
                  'all %d scheduler processes ready' % self.processes)
        self._began = time.monotonic()
        self.resume()

    def _read(self, n: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event, _sep, rest = line.rstrip('\n').partition(' ')
            with self._cond:
                if event == 'result':
                    self.progress.results[n] = json.loads(rest)
                elif event in ('ready', 'intent', 'granted', 'refused',
                               'error', 'released', 'paused', 'stalled'):
                    self.progress.counts[event] = \
                        self.progress.count(event) + 1
                    if event == 'intent':
                        consumer, shape = rest.split()
                        self.progress.intents[consumer] = int(shape)
                    elif event == 'granted':
                        self.progress.granted.add(rest.split()[0])
                self._cond.notify_all()
        code = proc.wait()
        with self._cond:
            self.progress.exited[n] = code
            self._cond.notify_all()

    def wait(self, predicate: Callable[[Progress], bool], timeout: float,
             what: str) -> None:
        """Until ``predicate(progress)``; :raises RunTimeout: naming
        ``what`` after ``timeout`` seconds, or when every worker exited
        first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.progress):
                if len(self.progress.exited) == self.processes:
                    raise RunTimeout('every worker exited before %s (%s)' %
                                     (what, self.progress))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RunTimeout('no %s within %.0f s (%s)' % (
                        what, timeout, self.progress))
                self._cond.wait(left)

    def poke(self) -> None:
        """Wake every :meth:`wait` to test its predicate again."""
        with self._cond:
            self._cond.notify_all()

    def snapshot_progress(self) -> tuple[int, dict[str, int], bool]:
        """(outcomes, intents copy, finished) under the lock."""
        with self._cond:
            return (self.progress.outcomes, dict(self.progress.intents),
                    len(self.progress.exited) == self.processes)

    def wants(self) -> dict[str, Want]:
        with self._cond:
            return self.progress.wants()

    def resume(self) -> None:
        """Open the gate every worker waits at (start, pause or stall)."""
        for proc in self._procs:
            assert proc.stdin is not None
            if proc.poll() is None:
                proc.stdin.write('go\n')
                proc.stdin.flush()

    def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for every worker's exit; their summed results."""
        self.wait(lambda p: len(p.exited) == self.processes, timeout,
                  'end of all %d workers' % self.processes)
        self.wall = time.monotonic() - self._began
        for reader in self._readers:
            reader.join(10)
        self.close()
        results = [self.progress.results[n]
                   for n in sorted(self.progress.results)]
        total: dict[str, Any] = {k: sum(r[k] for r in results) for k in (
            'granted', 'refused', 'errors', 'released')}
        total.update(
            codes=[self.progress.exited[n] for n in range(self.processes)],
            processes=self.processes, requests=self.requests,
            wall=max((r['seconds'] for r in results), default=self.wall),
            held=[tuple(h) for r in results for h in r['held']],
            problems=[p for r in results for p in r['problems']],
            results=len(results),
            calls={k: sum(r['calls'][k] for r in results)
                   for k in ('claim', 'refuse', 'release')},
            methods={m: sum(r['methods'].get(m, 0) for r in results)
                     for m in sorted({m for r in results
                                      for m in r['methods']})})
        return total

    def close(self) -> None:
        """Kill what still runs (a failed test); idempotent."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass


def contend(url: str, processes: int, requests: int, hold: int = 2,
            timeout: float = 1800.0) -> dict[str, Any]:
    """Run the scheduler processes against ``url``; their summed results."""
    run = Run(url, processes, requests, hold=hold)
    try:
        run.start()
        return run.finish(timeout)
    finally:
        run.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=__name__)
    parser.add_argument('--url', required=True)
    parser.add_argument('--requests', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--hold', type=int, default=2)
    parser.add_argument('--pause-after', type=int, default=None)
    parser.add_argument('--stall-on-error', action='store_true')
    parser.add_argument('--raw', metavar='RESOURCE_CLASS')
    parser.add_argument('--host-subset-size', type=int, default=1)
    args = parser.parse_args(argv)
    if args.raw:
        result = raw_worker(args.url, args.requests, args.seed, args.raw)
        print('result ' + json.dumps(result), flush=True)
        return 0
    result = worker(args.url, args.requests, args.seed, args.hold,
                    pause_after=args.pause_after,
                    stall_on_error=args.stall_on_error,
                    subset=args.host_subset_size)
    print('result ' + json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
