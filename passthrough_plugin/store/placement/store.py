"""The ``placement`` report store: host devices as nested resource providers.

Placement holds what it can hold: per host, one provider per type-PCI
device and per PF under the compute node provider, inventories and traits
(see :mod:`passthrough_plugin.store.placement.mapping`). Claims are
allocations written with consumer generations, so schedulers on many
machines never double-book.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import placement as placement_conf
from passthrough_plugin.conf import placement_store as store_conf
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.store import base
from passthrough_plugin.store.placement import claims
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement import query
from passthrough_plugin.store.placement import sync
from passthrough_plugin.store.placement import view as view_mod
from passthrough_plugin.store.placement.client import PlacementClient
from passthrough_plugin.store.placement.types import candidate_params

LOG = logging.getLogger(__name__)
MAX_BACKOFF = 30.0
# Consumers this store created and may release with one DELETE; the
# oldest are forgotten (then released the careful way) beyond this many.
MAX_OWN = 100000


class PlacementReportStore(base.PoolLevelStore):
    """Reports and claims in a real Placement service."""

    def __init__(self, conf: cfg.ConfigOpts,
                 client: PlacementClient | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(conf)
        placement_conf.register_opts(conf)
        store_conf.register_opts(conf)
        self._client = client
        self._sleep = sleep
        # provider uuid -> (host, address) of our providers.
        self._names: dict[str, tuple[str, str]] = {}
        self._view = view_mod.CandidatesView(
            conf.placement_store.candidates_max_age)
        # consumer -> its allocations, for consumers our claim created:
        # they hold nothing but ours.
        self._own: collections.OrderedDict[
            str, dict[str, dict[str, int]]] = collections.OrderedDict()

    @classmethod
    def for_conf(cls, conf: cfg.ConfigOpts) -> base.ReportStore:
        """This store, or with ``[placement_store] inventory = nova`` the
        host reports beside nova's PCI inventory (no provider of ours)."""
        from passthrough_plugin.store import nova_inventory

        return nova_inventory.select(conf, cls)

    @property
    def client(self) -> PlacementClient:
        if self._client is None:
            self._client = PlacementClient.from_conf(self.conf)
        return self._client

    @property
    def endpoint(self) -> str:
        return self.client.endpoint

    # -- the agent's side ----------------------------------------------------

    def publish(self, report: report_mod.HostReport) -> int:
        """Write the report's providers; retry with backoff while
        Placement cannot be reached (then raise: the agent's next scan
        tries again).

        :raises: PlacementUnavailable, NovaPciInPlacement, PlacementError
        """
        opts = self.conf.placement_store
        delay = opts.publish_backoff
        for attempt in range(1, opts.publish_attempts + 1):
            try:
                return sync.publish(self.client, report,
                                    opts.create_compute_node)
            except exception.PlacementUnavailable as exc:
                if attempt == opts.publish_attempts:
                    raise
                LOG.warning('publish of %s, attempt %d of %d: %s; again in '
                            '%.1f s', report.host, attempt,
                            opts.publish_attempts, exc.message, delay)
                self._sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        raise AssertionError('unreachable')  # pragma: no cover

    def remove(self, host: str) -> None:
        """Delete the host's providers (not the compute node).

        :raises: HostReportNotFound, ClaimFailed (devices still allocated),
            StoreUnavailable
        """
        sync.remove(self.client, host)

    # -- reading -------------------------------------------------------------

    def _ours(self) -> list[tuple[str, str, int, str]]:
        """(uuid, host, generation, address) of every provider of ours."""
        out = []
        for rp in sync.with_trait(self.client, mapping.DEVICE):
            parts = mapping.split_name(rp.name)
            if parts is None:
                continue
            self._names[rp.uuid] = parts
            out.append((rp.uuid, parts[0], rp.generation, parts[1]))
        if self._view.listed({u: g for u, _h, g, _a in out}):
            LOG.debug('provider generations moved: kept candidates dropped')
        return out

    def generations(self) -> dict[str, int]:
        """One call: every provider of ours, generations summed per host
        (a publish or an allocation bumps a provider's generation)."""
        out: dict[str, int] = {}
        for _uuid, host, generation, _address in self._ours():
            out[host] = out.get(host, 0) + generation
        return out

    def get(self, host: str) -> report_mod.HostReport:
        """The host as far as Placement knows it: PFs and type-PCI devices
        with their addresses; VFs only as counts (in ``status``)."""
        return sync.read_report(self.client, host)

    def status(self, host: str) -> list[str]:
        """Problems an operator should see: devices that vanished while
        allocated (kept, reserved)."""
        return sync.problems(self.client, host).get(host, [])

    def problems(self) -> dict[str, list[str]]:
        """:meth:`status` of every host, in one listing call."""
        return sync.problems(self.client)

    # -- the scheduler's side ------------------------------------------------

    def _query(self, requests: request_mod.RequestSet
               ) -> list[tuple[str, str]]:
        groups, policy = query.groups(requests)
        return candidate_params(
            groups, group_policy=policy,
            limit=self.conf.placement_store.candidate_limit)

    def _facts(self, summaries: dict[str, dict[str, object]]
               ) -> list[base.HostFacts]:
        if any(mapping.DEVICE in s.get('traits', ()) and  # type: ignore
               uuid not in self._names for uuid, s in summaries.items()):
            self._ours()  # providers we have not named yet
        return claims.host_facts(summaries, self._names)

    def candidates(self, requests: request_mod.RequestSet
                   ) -> list[base.HostFacts]:
        """A fresh answer of Placement (kept for :meth:`kept_candidates`).

        :raises: PlacementUnavailable, PlacementRequestNotExpressible
        """
        params = self._query(requests)
        body = self.client.get_candidates_body(params)
        summaries = body['provider_summaries']
        self._view.put(tuple(params), summaries)
        return self._facts(summaries)

    def kept_candidates(self, requests: request_mod.RequestSet
                        ) -> list[base.HostFacts] | None:
        """The kept answer for ``requests`` with our own writes applied,
        no call; None when there is none (or it was dropped).

        :raises: PlacementRequestNotExpressible
        """
        summaries = self._view.get(tuple(self._query(requests)))
        return None if summaries is None else self._facts(summaries)

    def facts(self, host: str) -> base.HostFacts:
        return sync.host_facts(self.client, host)

    def claim_pools(self, facts: base.HostFacts, consumer: str,
                    choice: Sequence[dict[tuple[str, str], int]]
                    ) -> list[str]:
        """One PUT when the consumer is new (the common case).

        :raises: ClaimFailed, PlacementUnavailable
        """
        opts = self.conf.placement_store
        try:
            done = claims.claim(self.client, facts, consumer, choice,
                                attempts=opts.claim_attempts,
                                project_id=opts.project_id,
                                user_id=opts.user_id)
        except (exception.ClaimFailed, exception.PlacementConflict):
            # Another writer took the room: ask afresh about these.
            self._view.refused(claims.allocations(facts, choice))
            raise
        self._view.wrote(done.allocations, 1)
        if done.new_consumer:
            self._own[consumer] = done.allocations
            if len(self._own) > MAX_OWN:
                self._own.popitem(last=False)
        else:
            self._own.pop(consumer, None)  # it holds more than this claim
        return done.lines

    def claim(self, host: str, consumer: str, devices: Sequence[str],
              expected_generation: int | None = None,
              source: str = 'flavor') -> int:
        """Claim whole PFs / type-PCI devices by address (Placement cannot
        name VFs: claim those through :meth:`claim_pools`).

        :raises: ClaimFailed, GenerationConflict, HostReportNotFound,
            StoreUnavailable
        """
        if expected_generation is not None:
            actual = self.generations().get(host)
            if actual is None:
                raise exception.HostReportNotFound(host=host,
                                                   store='placement')
            if actual != expected_generation:
                raise exception.GenerationConflict(
                    host=host, expected=expected_generation, actual=actual)
        facts = sync.host_facts(self.client, host)
        choice = claims.choice_for_addresses(facts, consumer, devices)
        self.claim_pools(facts, consumer, [choice])
        return self.generations().get(host, 0)

    def release(self, host: str, consumer: str) -> list[str]:
        """Remove ``consumer``'s allocations on ``host``'s providers: one
        DELETE when our claim created the consumer and all it holds is
        there; else read, and write back the rest (nova's), guarded by
        the consumer generation.

        :raises: StoreUnavailable
        """
        opts = self.conf.placement_store
        if not self._names or host not in {h for h, _ in
                                           self._names.values()}:
            self._ours()
        ours = {uuid for uuid, (h, _a) in self._names.items() if h == host}
        held = self._own.get(consumer)
        if held and set(held) <= ours:
            self.client.delete_allocations(consumer)
            del self._own[consumer]
            self._view.wrote(held, -1)
            return ['%s %s x%d' % (self._names.get(u, ('', u))[1], rc, n)
                    for u, res in sorted(held.items())
                    for rc, n in sorted(res.items())]
        lines, mine = claims.release(self.client, consumer, ours,
                                     self._names,
                                     attempts=opts.claim_attempts)
        self._view.wrote(mine, -1)
        self._own.pop(consumer, None)
        return lines
