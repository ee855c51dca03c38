"""Scheduling on a pool-level store (Placement): candidates, refine, claim.

An allocation-candidates answer (kept by the store between claims, see
:mod:`passthrough_plugin.store.placement.view`) prefilters the hosts; the
core refines each candidate with :meth:`Summary.from_pools` (NUMA
policies, headroom, anti-affinity, PF/VF exclusion) and ranks them with
the weigher's figures; a claim writes exactly the pools
:meth:`Summary.choose` picked, and Placement arbitrates between
schedulers. When the store cannot be reached the engine fails closed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pool_counts as core_summary
from passthrough_plugin.scheduler import decision_memo as summary_mod
from passthrough_plugin.scheduler.answers import Answer
from passthrough_plugin.scheduler.answers import normalise
from passthrough_plugin.scheduler.answers import Request
from passthrough_plugin.store import base as store_base

LOG = logging.getLogger(__name__)
NO_CANDIDATE = 'no_candidate'


class PoolEngine:
    """select / explain / claim / release on a :class:`PoolLevelStore`."""

    def __init__(self, conf: cfg.ConfigOpts,
                 store: store_base.PoolLevelStore) -> None:
        self.conf = conf
        self.store = store
        self.known: list[str] = []
        # Host -> generation at the engine's last refresh.
        self.generations: dict[str, int] = {}
        self._random = random.Random()

    def _where(self) -> str:
        endpoint = getattr(self.store, 'endpoint', None)
        return 'Placement at %s' % endpoint if endpoint else 'the store'

    def refresh(self) -> None:
        """The host list (one call); kept as it was when the store is down.

        :raises: StoreUnavailable
        """
        self.known = sorted(self.store.generations())

    def load(self, host: str, generation: int, memo: summary_mod.Memo
             ) -> summary_mod.HostSummary:
        """A host's summary from its pool facts (the nova filter's path)."""
        try:
            facts = self.store.facts(host)
        except exception.HostReportNotFound as exc:
            return summary_mod.broken(host, generation, exc.message)
        summary = core_summary.Summary.from_pools(
            host, generation, facts.pools, facts.sockets)
        return summary_mod.HostSummary(host, generation, summary,
                                       memo.state_of(summary))

    # -- deciding ------------------------------------------------------------

    def _decide(self, request: Request, facts: store_base.HostFacts
                ) -> tuple[summary_mod.Decision, core_summary.Summary]:
        summary = core_summary.Summary.from_pools(
            facts.host, facts.generation, facts.pools, facts.sockets)
        return summary_mod.decide(
            facts.host, summary, request.requests, request.numa_cells,
            request.numa_cell_count), summary

    def _candidates(self, request: Request) -> list[store_base.HostFacts]:
        return self.store.candidates(request.requests)

    def _ranked(self, request: Request, found: list[store_base.HostFacts],
                hosts: Sequence[str] | None
                ) -> list[tuple[Answer, store_base.HostFacts,
                                core_summary.Summary]]:
        wanted = set(hosts) if hosts is not None else None
        fitting = []
        for facts in found:
            if wanted is not None and facts.host not in wanted:
                continue
            decision, summary = self._decide(request, facts)
            if decision.ok:
                fitting.append((facts, summary, decision))
        opts = self.conf.passthrough_scheduler
        raw = [d.spread if opts.weigh_strategy == 'spread' else d.pack
               for _f, _s, d in fitting]
        weights = normalise(raw, opts.weight_multiplier)
        ranked = [(Answer(f.host, True, None, '', w,
                          free_before=d.free_before,
                          free_after=d.free_after), f, s)
                  for (f, s, d), w in zip(fitting, weights, strict=True)]
        ranked.sort(key=lambda item: (-item[0].weight, item[0].host))
        return ranked

    def select(self, request: Request,
               hosts: Sequence[str] | None = None) -> list[Answer]:
        """The hosts that fit, best first; none when the store is down."""
        if not request.wants_devices:
            return [Answer(h, True) for h in (hosts or self.known)]
        try:
            found = self._candidates(request)
        except exception.StoreUnavailable as exc:
            LOG.error('no host can be chosen: %s', exc.message)
            return []
        return [answer for answer, _f, _s in
                self._ranked(request, found, hosts)]

    def explain(self, request: Request, hosts: Sequence[str] | None = None,
                exact: bool = False) -> list[Answer]:
        """Every host's answer; every host fails when the store is down."""
        names = list(hosts) if hosts is not None else list(self.known)
        if not request.wants_devices:
            return [Answer(h, True) for h in names]
        try:
            found = self._candidates(request)
        except exception.StoreUnavailable as exc:
            return [Answer(h, False, explain.STORE_DOWN, '%s: %s' % (
                h, exc.message)) for h in names]
        by_host = {f.host: f for f in found}
        ranked = {a.host: a for a, _f, _s in
                  self._ranked(request, found, names or None)}
        answers = []
        for host in names or sorted(by_host):
            if host in ranked:
                answers.append(ranked[host])
            elif host in by_host:
                decision, _s = self._decide(request, by_host[host])
                answers.append(Answer(host, False, decision.reason,
                                      decision.detail_for(host)))
            else:
                answers.append(Answer(
                    host, False, NO_CANDIDATE, '%s: %s offers no '
                    'allocation candidate for %s on this host' % (
                        host, self._where(), request.requests.describe())))
        return self._with_problems(answers) if exact else answers

    def _with_problems(self, answers: list[Answer]) -> list[Answer]:
        """Add what the store reports about each host (vanished devices
        still allocated) to the answers people read."""
        problems = getattr(self.store, 'problems', None)
        if problems is None:
            return answers
        try:
            found: dict[str, list[str]] = problems()
        except exception.StoreUnavailable:
            return answers
        for answer in answers:
            for line in found.get(answer.host, ()):
                answer.detail = '%s; %s' % (answer.detail, line) \
                    if answer.detail else line
        return answers

    # -- claims --------------------------------------------------------------

    @staticmethod
    def _choice(request: Request, summary: core_summary.Summary
                ) -> list[dict[tuple[str, str], int]] | None:
        if request.numa_cells is not None or not request.numa_cell_count:
            return summary.choose(request.requests, request.numa_cells)
        for cells in itertools.combinations(sorted(summary.sockets),
                                            request.numa_cell_count):
            choice = summary.choose(request.requests, list(cells))
            if choice is not None:
                return choice
        return None

    def select_and_claim(self, request: Request, consumer: str,
                         hosts: Sequence[str] | None = None
                         ) -> tuple[str, list[str]] | None:
        """Claim on the best host that still has room: (host, pools
        taken), or None when no host could.

        When the store keeps candidates (Placement), the claim is tried
        against them first: one call in the common case. A conflict (the
        kept answer was stale) or no fitting host there asks the store
        afresh; on a fresh answer a lost race moves on to the next host.

        :raises: StoreUnavailable (fail closed), Invalid
        """
        kept = getattr(self.store, 'kept_candidates', None)
        found = kept(request.requests) if kept is not None else None
        if found is not None:
            claimed = self._claim_first(request, consumer, found, hosts,
                                        stop_on_conflict=True)
            if claimed is not None:
                return claimed
        return self._claim_first(request, consumer,
                                 self._candidates(request), hosts,
                                 stop_on_conflict=False)

    def _claim_first(self, request: Request, consumer: str,
                     found: list[store_base.HostFacts],
                     hosts: Sequence[str] | None, *,
                     stop_on_conflict: bool
                     ) -> tuple[str, list[str]] | None:
        ranked = self._ranked(request, found, hosts)
        subset = getattr(getattr(self.conf, 'placement_store', None),
                         'host_subset_size', 1)
        if subset > 1 and len(ranked) > 1:
            # One of the best few first: schedulers that claim at once
            # from the answers they keep then rarely race for one provider.
            first = self._random.randrange(min(subset, len(ranked)))
            ranked.insert(0, ranked.pop(first))
        for answer, facts, summary in ranked:
            choice = self._choice(request, summary)
            if choice is None:
                continue
            try:
                return answer.host, self.store.claim_pools(facts, consumer,
                                                           choice)
            except (exception.ClaimFailed,
                    exception.PlacementConflict) as exc:
                # Another scheduler took the room first.
                LOG.debug('claim for %s on %s lost a race: %s', consumer,
                          answer.host, exc.message)
                if stop_on_conflict:
                    return None
        return None

    def claim(self, host: str, request: Request, consumer: str,
              attempts: int = 3) -> list[str]:
        """:raises: ClaimFailed, StoreUnavailable"""
        for _attempt in range(attempts):
            found = self.select_and_claim(request, consumer, [host])
            if found is not None:
                return found[1]
        raise exception.ClaimFailed(
            consumer=consumer, host=host, reason='%s has no room for %s '
            'there' % (self._where(), request.requests.describe()))

    def release(self, host: str, consumer: str) -> list[str]:
        """:raises: StoreUnavailable"""
        return self.store.release(host, consumer)


def for_store(conf: cfg.ConfigOpts, store: store_base.ReportStore
              ) -> PoolEngine | None:
    """The pool-level engine when ``store`` is pool-level, else None."""
    if isinstance(store, store_base.PoolLevelStore):
        return PoolEngine(conf, store)
    return None
