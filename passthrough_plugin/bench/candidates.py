"""Candidate benchmark: PCI in Placement through nova's own handlers.

Every host carries what nova-scheduler gives a filter with PCI in
Placement: a ``PciDeviceStats`` whose pools name their provider
(``rp_uuid``, ``address``) and the host's allocation candidates for the
request (2 VFs: one request group per VF, every pair of PF providers, as
Placement returns them with ``group_policy=none``). Side by side, on the
same host states, through nova's ``HostFilterHandler`` and
``HostWeightHandler``: the plugin's ``PciPoolFilter`` + ``PciPoolWeigher``,
nova's ``PciPassthroughFilter`` + ``PCIWeigher``, and a no-op filter and
weigher (the handlers' own share). Each round starts from fresh candidate
lists, as each nova request does.
"""

from __future__ import annotations

import itertools
import os
import tracemalloc
import types
from typing import Any

from oslo_config import cfg

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin.bench import scheduler as scheduler_bench
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.scheduler import candidates
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.scheduler import filter as filter_mod
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.scheduler import plugin
from passthrough_plugin.scheduler import weigher as weigher_mod

HOSTS = int(os.environ.get('BENCH_HOSTS', '10000'))
REQUEST_ID = '7b1d3c5e-0f2a-4e6b-9c8d-1a2b3c4d5e6f'
EXTRA_SPECS = {'pci_passthrough:alias': 'vf:2',
               'passthrough:vf_anti_affinity': 'true'}


def _states(store: scheduler_bench.MemoryStore) -> list[Any]:
    from passthrough_plugin.bench import nova_pools

    objects = nova_pools._objects()
    from nova.pci import stats as nova_stats
    from nova.pci import whitelist

    states = []
    groups = ['%s-%d' % (REQUEST_ID, i) for i in range(2)]
    for host in sorted(store.usage):
        pools = pools_mod.HostPools.from_report(store.get(host))
        # With PCI in Placement nova takes a PF or its VFs, not both:
        # the VFs here.
        dicts = [d for d in nova_pools.pool_dicts(pools)
                 if d['dev_type'] != pools_mod.TYPE_PF]
        for entry in dicts:
            entry['rp_uuid'] = '%s_%s' % (host, entry['address'])
        stats = nova_stats.PciDeviceStats(
            nova_pools.numa_topology(pools.report),
            stats=objects.PciDevicePoolList(objects=[
                objects.PciDevicePool.from_dict(d) for d in dicts]),
            dev_filter=whitelist.Whitelist([]))
        rps = sorted({d['rp_uuid'] for d in dicts})
        found = [{'allocations': {}, 'mappings': {
            g: [rp] for g, rp in zip(groups, pair, strict=True)}}
            for pair in itertools.product(rps, repeat=2)]
        states.append(types.SimpleNamespace(
            host=host, nodename=host, uuid=host, pci_stats=stats,
            aggregates=[], allocation_candidates=found, fresh=found))
    return states


def _spec(request_set: Any) -> Any:
    from passthrough_plugin.bench import nova_pools

    objects = nova_pools._objects()
    pci = nova_pools.requests(request_set)
    for request in pci:
        request.request_id = REQUEST_ID
    return objects.RequestSpec(
        flavor=objects.Flavor(extra_specs=dict(EXTRA_SPECS)),
        instance_uuid='3e1c9a57-2b4d-4f60-8a71-5c9d0e2f4b83',
        pci_requests=objects.InstancePCIRequests(requests=pci),
        scheduler_hints={}, numa_topology=None)


def run() -> None:
    try:
        from nova.scheduler import filters as nova_filters
        from nova.scheduler import weights as nova_weights
        from nova.scheduler.filters import pci_passthrough_filter
        from nova.scheduler.weights import pci as nova_pci
    except ImportError as exc:
        print('   nova: not available (%s); run under tox -e bench' % exc)
        return
    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    conf.register_opts([cfg.BoolOpt('pci_in_placement', default=True)],
                       group='filter_scheduler')
    conf([], project='passthrough-plugin')
    conf.set_override('alias', scheduler_bench.ALIASES, 'pci')
    store = scheduler_bench.MemoryStore(conf, HOSTS, seed=42)
    aliases = alias_mod.parse_aliases(scheduler_bench.ALIASES)
    engine = engine_mod.Engine(conf, store, aliases)
    engine.refresh()
    print('%d hosts x (%d PFs x %d VFs), random usage; request %s; '
          'load average %.1f (%d CPUs)' % (
              HOSTS, scheduler_bench.PFS, scheduler_bench.VFS, EXTRA_SPECS,
              os.getloadavg()[0], os.cpu_count() or 1))
    states = _states(store)
    print('   %d candidates per host' % len(states[0].fresh))

    ours_filter = nova_adapter.novaize(filter_mod.PciPoolFilter,
                                      'filter')(conf)
    ours_weigher = nova_adapter.novaize(weigher_mod.PciPoolWeigher,
                                        'weigher')(conf)
    ours_filter._engine = ours_weigher._engine = engine
    noop_filter = type('NoopFilter', (nova_filters.BaseHostFilter,), {
        'host_passes': lambda self, host_state, spec_obj: True})()
    noop_weigher = type('NoopWeigher', (nova_weights.BaseHostWeigher,), {
        '_weigh_object': lambda self, host_state, spec_obj: 0.0})()
    filter_handler = nova_filters.HostFilterHandler()
    weight_handler = nova_weights.HostWeightHandler()

    def schedule(filt: Any, weigher: Any) -> Any:
        def once() -> list[str]:
            for state in states:
                state.allocation_candidates = list(state.fresh)
            # A fresh RequestSpec per request, as nova brings one.
            asked = _spec(engine.request(EXTRA_SPECS).requests)
            passed = filter_handler.get_filtered_objects([filt], states,
                                                         asked)
            weighed = weight_handler.get_weighed_objects([weigher], passed,
                                                         asked)
            return [w.obj.host for w in weighed]
        return once

    ours = schedule(ours_filter, ours_weigher)
    first, first_cpu, _ = scheduler_bench._best(ours, 1)
    seconds, cpu, ranked = scheduler_bench._best(ours, 3)
    scheduler_bench._line('PciPoolFilter + Weigher, 1st (facts)', first,
                          HOSTS, first_cpu)
    scheduler_bench._line('PciPoolFilter + PciPoolWeigher', seconds, HOSTS,
                          cpu)
    kept = sum(len(s.allocation_candidates) for s in states)
    print('   %d hosts pass, %d candidates kept' % (len(ranked), kept))
    noop, noop_cpu, _ = scheduler_bench._best(
        schedule(noop_filter, noop_weigher), 3)
    scheduler_bench._line('no-op filter + weigher (handlers)', noop, HOSTS,
                          noop_cpu)
    nova, nova_cpu, theirs = scheduler_bench._best(
        schedule(pci_passthrough_filter.PciPassthroughFilter(),
                 nova_pci.PCIWeigher()), 2)
    scheduler_bench._line('nova PciPassthroughFilter + PCIWeigher', nova,
                          HOSTS, nova_cpu)
    print('   nova passes %d hosts' % len(theirs))
    print('   memory per host: plugin facts %.0f bytes, nova PciDeviceStats '
          '%.0f bytes (tracemalloc, %d hosts)' % (
              *_memory(engine, states[:500]), min(500, HOSTS)))
    ours_share = max(seconds - noop, 1e-9)
    print('   ratio nova / plugin: %.1fx wall, %.1fx CPU, %.1fx beyond the '
          'handlers\' own share' % (
              nova / seconds, nova_cpu / cpu,
              max(nova - noop, 0.0) / ours_share))


def _memory(engine: engine_mod.Engine, states: list[Any]
            ) -> tuple[float, float]:
    """Retained bytes per host: our candidate facts vs nova's stats."""
    from passthrough_plugin.bench import nova_pools

    objects = nova_pools._objects()
    from nova.pci import stats as nova_stats
    from nova.pci import whitelist

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    facts = []
    for state in states:
        pools = plugin.host_pools(engine, state.host)
        assert pools is not None
        facts.append(candidates.HostFacts(pools))
        del pools
    ours = tracemalloc.get_traced_memory()[0] - before
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for state in states:
        dicts = [dict(p) for p in state.pci_stats.pools]
        kept.append(nova_stats.PciDeviceStats(
            None, stats=objects.PciDevicePoolList(objects=[
                objects.PciDevicePool.from_dict(d) for d in dicts]),
            dev_filter=whitelist.Whitelist([])))
    theirs = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return ours / len(states), theirs / len(states)
