"""The standalone engine: summaries, filter, weigh, claim and release."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import pci as pci_conf
from passthrough_plugin.conf import scheduler as scheduler_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import placement_engine
from passthrough_plugin.scheduler import decision_memo as summary_mod
from passthrough_plugin.scheduler.answers import Answer
from passthrough_plugin.scheduler.answers import hotplug_requests
from passthrough_plugin.scheduler.answers import normalise
from passthrough_plugin.scheduler.answers import Request
from passthrough_plugin.store import base as store_base
from passthrough_plugin.store import loader

LOG = logging.getLogger(__name__)
REBUILD = 'rebuild'
# explain(exact=True) re-reads at most this many rejected hosts' reports.
EXACT_LIMIT = 200
_TOKENS = itertools.count(1)
__all__ = ['Answer', 'Engine', 'Request', 'for_conf', 'hotplug_requests',
           'normalise']


class Engine:
    """Filters and weighs hosts against the reports in a store."""

    def __init__(self, conf: cfg.ConfigOpts,
                 store: store_base.ReportStore | None = None,
                 aliases: Mapping[str, alias_mod.Alias] | None = None
                 ) -> None:
        scheduler_conf.register_opts(conf)
        store_conf.register_opts(conf)
        self.conf = conf
        self.store = store if store is not None else loader.load_store(conf)
        self.store_settings = _store_settings(conf)
        # A pool-level store (Placement) decides from its own candidates.
        self.pools = placement_engine.for_store(conf, self.store)
        self._aliases = aliases
        self._fixed_aliases = aliases is not None
        if not self._fixed_aliases:
            # nova's CONF has [pci] alias already: it is left as nova has it.
            pci_conf.register_opts(conf)
        self._alias_source: tuple[str, ...] | None = None
        self.summaries: dict[str, summary_mod.HostSummary] = {}
        self.memo = summary_mod.Memo()
        # Called with (host, generation, pools) for every report _load has
        # just parsed: what else needs the pools (the candidate filter's
        # facts) is built from the same parse. A pool-level store parses
        # no report (its summaries come from its pool facts).
        self.on_load: list[Callable[[str, int, pools_mod.HostPools],
                                    object]] = []
        # instance uuid -> the host holding its devices (for rebuilds).
        self.owners: dict[str, str] = {}
        self._tokens: dict[tuple[object, ...], int] = {}
        self.refreshed_at = 0.0
        self._refresh_key: object = None
        self._known: list[str] = []
        # Hosts passed without a report since the last refresh (logged).
        self._passed_unreported: set[str] = set()

    # -- configuration -------------------------------------------------------

    @property
    def aliases(self) -> Mapping[str, alias_mod.Alias]:
        """``[pci] alias``, parsed again only when its values change.

        :raises: InvalidAlias
        """
        if self._fixed_aliases:
            assert self._aliases is not None
            return self._aliases
        values = tuple(self.conf.pci.alias)
        if values != self._alias_source or self._aliases is None:
            self._aliases = alias_mod.parse_aliases(list(values))
            self._alias_source = values
        return self._aliases

    # -- summaries -----------------------------------------------------------

    def refresh(self) -> None:
        """Bring the summaries up to the store's generations.

        One ``generations()`` call; a report is read only for the hosts
        whose generation changed.

        :raises: StoreUnavailable
        """
        generations = self.store.generations()
        self._known = sorted(generations)
        self._passed_unreported.clear()
        if self.pools is not None:
            # select/explain/claim ask the store's candidates; a host's
            # facts are read only when decide() asks about it.
            self.pools.known = self._known
            self.pools.generations = generations
            self.summaries = {h: s for h, s in self.summaries.items()
                              if generations.get(h) == s.generation}
            self.refreshed_at = time.monotonic()
            return
        summaries = self.summaries
        gone = [h for h in summaries if h not in generations]
        for host in gone:
            del summaries[host]
        if gone:
            self.owners = {o: h for o, h in self.owners.items()
                           if h in summaries}
        limit = self.conf.passthrough_scheduler.summary_cache_size
        for host, generation in generations.items():
            known = summaries.get(host)
            if known is not None and known.generation == generation:
                continue
            if known is None and len(summaries) >= limit:
                continue  # read on demand, see summary()
            summaries[host] = self._load(host, generation)
        self.refreshed_at = time.monotonic()

    def refresh_for(self, key: object, ttl: float) -> None:
        """Refresh once per request (``key``), or when ``ttl`` has passed;
        the filter and the weigher of one request share the refresh."""
        if key != self._refresh_key or (
                time.monotonic() - self.refreshed_at >= ttl):
            self.refresh()
            self._refresh_key = key

    def _load(self, host: str, generation: int) -> summary_mod.HostSummary:
        if self.pools is not None:
            return self.pools.load(host, generation, self.memo)
        try:
            report = self.store.get(host)
        except exception.InvalidHostReport as exc:
            LOG.warning('Report of host %s is unusable: %s', host,
                        exc.message)
            return summary_mod.broken(host, generation, exc.message)
        except exception.HostReportNotFound as exc:
            return summary_mod.broken(host, generation, exc.message)
        try:
            pools = pools_mod.HostPools.from_report(report)
            found, owners = summary_mod.summarise(report, self.memo, pools)
        except exception.InvalidHostReport as exc:
            LOG.warning('Report of host %s is unusable: %s', host,
                        exc.message)
            return summary_mod.broken(host, generation, exc.message)
        # Keep the generation we were told, so the cache check matches.
        found.generation = generation
        for owner in owners:
            self.owners[owner] = host
        for listener in self.on_load:
            listener(host, generation, pools)
        return found

    def summary(self, host: str) -> summary_mod.HostSummary | None:
        found = self.summaries.get(host)
        if found is None and self.pools is not None:
            generation = self.pools.generations.get(host)
            if generation is not None:
                found = self.summaries[host] = self._load(host, generation)
            return found
        if found is None and len(
                self.summaries) >= \
                self.conf.passthrough_scheduler.summary_cache_size:
            # Over the cache size: read the host on demand, uncached.
            try:
                return self._load(host, self.store.get(host).generation)
            except exception.PassthroughException:
                return None
        return found

    def hosts(self) -> list[str]:
        """Every host of the store at the last refresh, cached or not."""
        return self._known

    # -- requests ------------------------------------------------------------

    def request(self, extra_specs: Mapping[str, str], *,
                numa_cells: Sequence[int] | None = None,
                instance_uuid: str | None = None, move: bool = False,
                rebuild: bool = False,
                numa_cell_count: int | None = None) -> Request:
        """Parse a request once; on a move, add the instance's hot-plugged
        devices remembered by the store.

        :raises: InvalidExtraSpec, UnknownAlias, InvalidAlias
        """
        requests = request_mod.RequestSet.from_extra_specs(
            dict(extra_specs), self.aliases)
        if move and instance_uuid:
            keys: list[summary_mod.HotplugKey] = []
            for summary in self.summaries.values():
                if summary.hotplug and instance_uuid in summary.hotplug:
                    keys.extend(summary.hotplug[instance_uuid])
            requests = requests.with_extra(hotplug_requests(keys))
        cells = tuple(numa_cells) if numa_cells is not None else None
        key = (requests, cells, numa_cell_count)
        token = self._tokens.get(key)
        if token is None:
            if len(self._tokens) > 4096:
                self._tokens.clear()
            token = self._tokens[key] = next(_TOKENS)
        return Request(requests, cells, numa_cell_count, instance_uuid,
                       rebuild, token)

    # -- deciding ------------------------------------------------------------

    def decide(self, host: str, request: Request
               ) -> summary_mod.Decision:
        """Does ``request`` fit ``host``? Memoised per shape."""
        found = self.summary(host)
        if request.rebuild:
            holder = self.owners.get(request.instance_uuid or '')
            if holder == host:
                return summary_mod.Decision(True, host=host)
            if holder is None:
                # No devices held anywhere: nothing to keep, decide freely.
                request = dataclasses.replace(request, rebuild=False)
                return self.decide(host, request)
            return summary_mod.Decision(
                False, REBUILD, '%s: a rebuild keeps the instance and its '
                'devices on the host that holds them' % host, host)
        if found is None:
            return self._no_report(host, request)
        if found.summary is None:
            return summary_mod.Decision(False, explain.BAD_REPORT,
                                        found.error or '', host)
        return self.memo.decide(found, request.token, request.requests,
                                request.numa_cells, request.numa_cell_count)

    def _no_report(self, host: str, request: Request
                   ) -> summary_mod.Decision:
        """``[passthrough_scheduler] missing_report`` for ``host``."""
        detail = '%s has no PCI report in the %s report store' % (
            host, self.conf.report_store.driver)
        if self.conf.passthrough_scheduler.missing_report != 'pass':
            return summary_mod.Decision(False, explain.NO_REPORT, detail,
                                        host)
        # Nothing of ours to judge: the host passes and nova's own data
        # (PciPassthroughFilter, Placement) decide it. Said once per host
        # per refresh (per request), not once per check.
        if host not in self._passed_unreported:
            self._passed_unreported.add(host)
            LOG.debug('%s: decided on nova\'s data alone '
                      '([passthrough_scheduler] missing_report = pass)',
                      detail)
        return summary_mod.Decision(True, explain.NO_REPORT, detail, host)

    def raw_weight(self, host: str, request: Request,
                   decision: summary_mod.Decision | None = None,
                   strategy: str | None = None) -> float:
        """The weigher's figure before normalisation (higher wins)."""
        if decision is None:
            decision = self.decide(host, request)
        if not request.wants_devices:
            # Steer requests without devices away from PCI hosts.
            found = self.summaries.get(host)
            summary = found.summary if found is not None else None
            return -float(summary.total_free if summary is not None else 0)
        if not decision.ok or decision.reason == explain.NO_REPORT:
            # Below every host the plugin knows (a host without a report
            # passes only under missing_report = pass).
            return float('-inf')
        if strategy is None:
            strategy = self.conf.passthrough_scheduler.weigh_strategy
        if strategy == 'spread':
            return decision.spread
        return decision.pack

    def weigh(self, hosts: Sequence[str], request: Request,
              decisions: Sequence[summary_mod.Decision] | None = None
              ) -> list[float]:
        """Normalised (0..1) weights times ``weight_multiplier``."""
        if decisions is None:
            decisions = [self.decide(h, request) for h in hosts]
        # Options are read once per call: oslo.config lookups are slow.
        strategy = self.conf.passthrough_scheduler.weigh_strategy
        if request.wants_devices and all(
                d.ok and d.reason is None for d in decisions):
            # The usual case after filtering: straight from the decisions.
            raw = [d.spread for d in decisions] if strategy == 'spread' \
                else [d.pack for d in decisions]
        else:
            raw = [self.raw_weight(h, request, d, strategy)
                   for h, d in zip(hosts, decisions, strict=True)]
        return normalise(raw, self.conf.passthrough_scheduler.
                         weight_multiplier)

    def explain(self, request: Request,
                hosts: Sequence[str] | None = None,
                exact: bool = False) -> list[Answer]:
        """Every host's answer, in host order.

        :param exact: re-read the report of each rejected host for the
            core's device-level reason (slower; for people, not nova).
        """
        if self.pools is not None:
            return self.pools.explain(request, hosts, exact)
        hosts = list(hosts) if hosts is not None else self.hosts()
        decisions = [self.decide(h, request) for h in hosts]
        if exact:
            # Reading reports is slow (~20 ms each): the first rejected
            # hosts get the device-level reason, the rest the summary's.
            budget = [EXACT_LIMIT]
            decisions = [d if d.ok else self._exact(h, request, d, budget)
                         for h, d in zip(hosts, decisions, strict=True)]
        weights = iter(self.weigh(
            [h for h, d in zip(hosts, decisions, strict=True) if d.ok],
            request, [d for d in decisions if d.ok]))
        return [Answer(h, True, weight=next(weights),
                       free_before=d.free_before, free_after=d.free_after)
                if d.ok else Answer(h, False, d.reason, d.detail_for(h))
                for h, d in zip(hosts, decisions, strict=True)]

    def select(self, request: Request,
               hosts: Sequence[str] | None = None) -> list[Answer]:
        """The hosts that fit, best first (ties by host name)."""
        if self.pools is not None:
            return self.pools.select(request, hosts)
        hosts = list(hosts) if hosts is not None else self.hosts()
        fitting = []
        decisions = []
        # The hot loop: a memo hit costs two dict lookups; anything else
        # (a miss, no report, a rebuild) takes the general path.
        summaries = self.summaries
        memo = self.memo
        decided = memo.decisions
        token = request.token
        plain = not request.rebuild
        for host in hosts:
            found = summaries.get(host) if plain else None
            if found is not None and found.summary is not None:
                decision = decided.get((found.state, token))
                if decision is None:
                    decision = memo.decide(found, token, request.requests,
                                           request.numa_cells,
                                           request.numa_cell_count)
            else:
                decision = self.decide(host, request)
            if decision.ok:
                fitting.append(host)
                decisions.append(decision)
        weights = self.weigh(fitting, request, decisions)
        answers = [Answer(h, True, None, '', w, free_before=d.free_before,
                          free_after=d.free_after)
                   for h, w, d in zip(fitting, weights, decisions,
                                      strict=True)]
        answers.sort(key=lambda a: (-a.weight, a.host))
        return answers

    def _exact(self, host: str, request: Request,
               decision: summary_mod.Decision,
               budget: list[int]) -> summary_mod.Decision:
        found = self.summaries.get(host)
        if found is None or found.summary is None or request.rebuild or \
                budget[0] <= 0:
            return decision
        budget[0] -= 1
        try:
            pools = pools_mod.HostPools.from_report(self.store.get(host))
        except exception.PassthroughException:
            return decision
        fit = self._fit_for_claim(pools, request)
        if fit.ok:  # the report moved on since the summary: say so
            return decision
        return summary_mod.Decision(False, fit.reason, fit.detail, host)

    # -- claims --------------------------------------------------------------

    def claim(self, host: str, request: Request, consumer: str,
              attempts: int = 3) -> list[str]:
        """Pick devices on ``host`` from its current report and claim them.

        :raises: ClaimFailed (does not fit), GenerationConflict after
            ``attempts`` races, HostReportNotFound, StoreUnavailable
        """
        if self.pools is not None:
            return self.pools.claim(host, request, consumer, attempts)
        for attempt in range(1, attempts + 1):
            report = self.store.get(host)
            pools = pools_mod.HostPools.from_report(report)
            fit = self._fit_for_claim(pools, request)
            if not fit.ok:
                raise exception.ClaimFailed(consumer=consumer, host=host,
                                            reason=fit.detail)
            source = request_mod.SOURCE_FLAVOR
            try:
                self.store.claim(host, consumer,
                                 list(fit.addresses + fit.companions),
                                 expected_generation=report.generation,
                                 source=source)
            except exception.GenerationConflict:
                if attempt == attempts:
                    raise
                LOG.debug('Host %s changed while claiming for %s; retrying',
                          host, consumer)
                continue
            return list(fit.addresses + fit.companions)
        raise AssertionError('unreachable')  # pragma: no cover

    @staticmethod
    def _fit_for_claim(pools: pools_mod.HostPools,
                       request: Request) -> pools_mod.Fit:
        if request.numa_cells is not None or not request.numa_cell_count:
            return pools.fit(request.requests, request.numa_cells)
        fit = pools.fit(request.requests, None)
        for cells in itertools.combinations(sorted(pools.sockets),
                                            request.numa_cell_count):
            fit = pools.fit(request.requests, list(cells))
            if fit.ok:
                break
        return fit

    def release(self, host: str, consumer: str) -> list[str]:
        """:raises: HostReportNotFound, StoreUnavailable"""
        return self.store.release(host, consumer)


# ConfigOpts is an unhashable Mapping: key by identity, keep it referenced.
_ENGINES: dict[int, tuple[cfg.ConfigOpts, Engine]] = {}


def for_conf(conf: cfg.ConfigOpts) -> Engine:
    """The one engine of ``conf``, shared by the filter and the weigher.

    A new one when the store settings changed (nova's CONF lives on while
    a service reloads its config, and across nova's tests).
    """
    found = _ENGINES.get(id(conf))
    if found is None or found[0] is not conf or \
            found[1].store_settings != _store_settings(conf):
        if len(_ENGINES) > 64:
            _ENGINES.clear()
        found = _ENGINES[id(conf)] = (conf, Engine(conf))
    return found[1]


def _store_settings(conf: cfg.ConfigOpts) -> tuple[str, str]:
    return conf.report_store.driver, conf.file_store.path
