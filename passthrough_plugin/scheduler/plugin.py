"""What the filter and the weigher share: config, engine, parsed requests."""

from __future__ import annotations

import time
import weakref
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.scheduler import candidates
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.scheduler import decision_memo as summary_mod

LOG = logging.getLogger(__name__)
# Hosts whose candidate facts are kept (a few hundred bytes each, or the
# device-level pools for hosts with shared IOMMU groups).
FACTS_CACHE_SIZE = 100000


class Shared:
    """What the filter and the weigher of one engine share: one decision
    per host per scheduling pass, and the hosts' candidate facts."""

    def __init__(self) -> None:
        self.key: object = None
        self.decisions: dict[str, summary_mod.Decision] = {}
        self.facts: dict[str, tuple[int, candidates.HostFacts]] = {}

    def put(self, key: object, host: str,
            decision: summary_mod.Decision) -> None:
        if key != self.key:
            self.key = key
            self.decisions = {}
        self.decisions[host] = decision

    def get(self, key: object, host: str) -> summary_mod.Decision | None:
        if key != self.key:
            return None
        return self.decisions.get(host)

    def host_facts(self, engine: engine_mod.Engine, host: str,
                   generation: int) -> candidates.HostFacts | None:
        """The host's facts at ``generation`` (its report is read once
        per generation). None when the report cannot be read (the
        engine's summary path says why)."""
        found = self.facts.get(host)
        if found is not None and found[0] == generation:
            return found[1]
        pools = host_pools(engine, host)
        if pools is None:
            return None
        return self.keep_facts(host, generation, pools)

    def keep_facts(self, host: str, generation: int,
                   pools: pools_mod.HostPools) -> candidates.HostFacts:
        """The host's facts from ``pools`` (its report at
        ``generation``), kept. The engine calls it for each report it
        reads when the filter chooses candidates: one parse of a changed
        report serves the summary and the facts."""
        if len(self.facts) >= FACTS_CACHE_SIZE:
            self.facts.clear()
        facts = candidates.HostFacts(pools)
        self.facts[host] = (generation, facts)
        return facts


def host_pools(engine: engine_mod.Engine, host: str
               ) -> pools_mod.HostPools | None:
    """The host's device-level pools, read from the store now."""
    try:
        return pools_mod.HostPools.from_report(engine.store.get(host))
    except exception.PassthroughException as exc:
        LOG.warning('Report of host %s is unusable: %s', host, exc.message)
        return None


_SHARED: weakref.WeakKeyDictionary[engine_mod.Engine, Shared] = \
    weakref.WeakKeyDictionary()


def shared(engine: engine_mod.Engine) -> Shared:
    """The engine's Shared. With PCI in Placement (nova's candidate
    filter) it takes each host's facts from the pools the engine parses
    for its summary, not from a second read of the report."""
    found = _SHARED.get(engine)
    if found is None:
        found = _SHARED[engine] = Shared()
        if nova_adapter.pci_in_placement(engine.conf):
            engine.on_load.append(found.keep_facts)
    return found


class PluginBase:
    """Finds its configuration: the given ConfigOpts, else nova's CONF."""

    def __init__(self, conf: cfg.ConfigOpts | None = None) -> None:
        self._conf = conf
        self._engine: engine_mod.Engine | None = None
        self._last_key: tuple[object, ...] | None = None
        self._last: (engine_mod.Request | exception.PassthroughException
                     | None) = None
        self._fresh_until = 0.0
        self._last_spec: Any = None
        self._shared_of: engine_mod.Engine | None = None
        self._shared = Shared()

    @property
    def engine(self) -> engine_mod.Engine:
        if self._engine is None:
            conf = self._conf if self._conf is not None else \
                nova_adapter.nova_conf()
            self._engine = engine_mod.for_conf(conf)
            # Before the first refresh: its summaries feed the facts.
            shared(self._engine)
        return self._engine

    @property
    def shared(self) -> Shared:
        engine = self.engine
        if self._shared_of is not engine:
            # Asked per host: the engine's Shared, looked up once.
            self._shared_of, self._shared = engine, shared(engine)
        return self._shared

    def request_for(self, spec: Any) -> engine_mod.Request:
        """Parse ``spec`` once per request (and refresh the summaries).

        ``spec`` is an engine Request or a nova RequestSpec.

        :raises: Invalid (bad extra spec or alias), StoreUnavailable
        """
        if isinstance(spec, engine_mod.Request):
            return spec
        # nova asks once per host with the same RequestSpec object; holding
        # on to it keeps its id from being reused by a later request.
        if spec is self._last_spec and self._last is not None and (
                time.monotonic() < self._fresh_until):
            if isinstance(self._last, exception.PassthroughException):
                raise self._last
            return self._last
        self._last_spec = spec
        key = nova_adapter.request_key(spec)
        if key == self._last_key and self._last is not None and (
                time.monotonic() < self._fresh_until):
            if isinstance(self._last, exception.PassthroughException):
                raise self._last
            return self._last
        engine = self.engine
        ttl = engine.conf.passthrough_scheduler.store_refresh_interval
        self._last_key = key
        self._last = None
        try:
            engine.refresh_for(key, ttl)
        except exception.StoreError as exc:
            # Fail closed, and say so once per request, not once per host.
            self._last = exc
            self._fresh_until = time.monotonic() + ttl
            LOG.error('Every host rejected: %s', exc.message)
            raise
        self._fresh_until = engine.refreshed_at + ttl
        try:
            self._last = engine.request(
                nova_adapter.extra_specs(spec),
                instance_uuid=nova_adapter.instance_uuid(spec),
                move=True, rebuild=nova_adapter.is_rebuild(spec),
                numa_cell_count=nova_adapter.numa_cell_count(spec))
        except exception.Invalid as exc:
            self._last = exc
            LOG.error('Every host rejected: %s', exc.message)
            raise
        return self._last
