"""PciPoolFilter: does a host's PCI report fit the request?"""

from __future__ import annotations

import logging as std_logging
from collections.abc import Iterable, Iterator
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import candidates
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.scheduler import plugin
from passthrough_plugin.scheduler import decision_memo as summary_mod

LOG = logging.getLogger(__name__)
PLACEMENT = 'placement'
# Rejected hosts per request whose log line gets the device-level reason.
EXACT_PER_REQUEST = 10
_SUMMARY_REASONS = frozenset((explain.NO_MATCH, explain.INSUFFICIENT,
                              explain.NUMA, explain.ANTI_AFFINITY))
CLASSIC = 'classic'
# Reason code: a rule only a candidate filter can keep, in classic mode.
NEEDS_PLACEMENT = 'needs_pci_in_placement'
ANTI_AFFINITY_NEEDS = (
    '%s: passthrough:vf_anti_affinity needs [filter_scheduler] '
    'pci_in_placement = True (and [pci] report_in_placement = True on the '
    'computes): without it nova-compute picks the VFs on its own and the '
    'plugin cannot keep them on distinct PFs')

NOT_IN_PLACEMENT = (
    '%s: passthrough:vf_anti_affinity needs the devices in Placement, and '
    'nova 34 keeps these out (physical_network-tagged devices, for '
    'neutron ports): nova-compute would pick the VFs on its own')


class PciPoolFilter(plugin.PluginBase):
    """Passes the hosts whose devices fit the request, IOMMU groups and all.

    Inside nova-scheduler it is a nova BaseHostFilter and candidate filter
    (see :func:`passthrough_plugin.scheduler.filters.all_filters`) and
    reads nova's CONF. With PCI in Placement it keeps only the allocation
    candidates that obey the plugin's rules and puts the best first: nova
    claims that one and nova-compute assigns its devices. Standalone it
    takes a ConfigOpts and accepts host names and engine Requests.
    """

    # On a rebuild the instance stays where it is with the devices it has:
    # there is nothing to fit (nova then skips the filter, as for its own).
    RUN_ON_REBUILD = False
    # The mode this filter said it runs in (said once, when first asked).
    _logged_mode: str | None = None
    _exact_key: object = None
    _resize_key: object = None
    _groups_key: object = None
    _groups_token = 0
    # The request's groups as every host's candidates are judged on them.
    _ask: candidates.Ask | None = None
    _extras: list[request_mod.DeviceRequest] = []
    _request_mode = PLACEMENT
    _strategy = 'pack'
    _debug = False
    _resize = False
    _exact_budget: list[int] = [0]

    def run_filter_for_index(self, index: int) -> bool:
        return True

    def filter_all(self, filter_obj_list: Iterable[Any],
                   spec_obj: Any) -> Iterator[Any]:
        # One pass of one instance: what is the same for every host
        # (nova's RequestSpec, its decision key) is looked at once.
        in_nova = nova_adapter.is_request_spec(spec_obj)
        key = nova_adapter.decision_key(spec_obj) if in_nova else None
        for obj in filter_obj_list:
            if self._passes(obj, spec_obj, in_nova, key):
                yield obj

    def _filter_one(self, obj: Any, spec_obj: Any) -> bool:
        # The rebuild check is in host_passes, on the request parsed once.
        return self.host_passes(obj, spec_obj)

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        """Never raises: a bad request or store fails the host, logged."""
        in_nova = nova_adapter.is_request_spec(spec_obj)
        return self._passes(
            host_state, spec_obj, in_nova,
            nova_adapter.decision_key(spec_obj) if in_nova else None)

    def _passes(self, host_state: Any, spec_obj: Any, in_nova: bool,
                key: object) -> bool:
        """host_passes, with what is the same for every host given
        (``key``: the decision key of a nova RequestSpec)."""
        host = nova_adapter.host_name(host_state)
        if not self.RUN_ON_REBUILD and in_nova and \
                spec_obj is not self._last_spec and \
                nova_adapter.is_rebuild(spec_obj):
            return True  # before any store access: nothing to fit
        try:
            request = self.request_for(spec_obj)
        except (exception.Invalid, exception.StoreError):
            return False  # logged once per request by request_for
        if request.rebuild and not self.RUN_ON_REBUILD:
            return True
        if in_nova:
            # Worked out once per host: the weigher reads it back.
            decision = self._decide_in_nova(host, host_state, spec_obj,
                                            request, key)
            self.shared.put(key, host, decision)
        else:
            decision = self._engine_decides(host, request)
        if not decision.ok:
            LOG.info('%s rejected: %s', host, decision.detail_for(host))
        return decision.ok

    def _engine_decides(self, host: str, request: engine_mod.Request
                        ) -> summary_mod.Decision:
        """The host-level decision from the host's summary; a rejection
        gets the device-level reason."""
        decision = self.engine.decide(host, request)
        if not decision.ok and decision.reason in _SUMMARY_REASONS:
            decision = self._exact(host, request, decision)
        return decision

    def _exact(self, host: str, request: engine_mod.Request,
               decision: summary_mod.Decision) -> summary_mod.Decision:
        """The device-level reason (the summary's is coarse) for the first
        few rejected hosts of a request: it reads the host's report."""
        key = (self._last_key, request.token)
        if key != self._exact_key:
            self._exact_key = key
            self._exact_budget = [EXACT_PER_REQUEST]
        return self.engine._exact(host, request, decision,
                                  self._exact_budget)

    def _mode(self) -> str:
        in_placement = nova_adapter.pci_in_placement(self.engine.conf)
        mode = PLACEMENT if in_placement else CLASSIC
        if mode != self._logged_mode:
            self._logged_mode = mode
            if mode == PLACEMENT:
                LOG.info(
                    'PciPoolFilter runs with PCI in Placement: it keeps only '
                    'the allocation candidates that obey IOMMU viability, '
                    'passthrough:vf_anti_affinity, PF/VF dependency, the NUMA '
                    'policy and passthrough:hotplug_headroom, best first by '
                    'weigh_strategy, so nova-compute assigns the devices the '
                    'plugin chose. Devices nova keeps out of Placement '
                    '(physical_network-tagged, for neutron ports) are '
                    'decided per host only.')
            else:
                LOG.warning(
                    'PciPoolFilter runs in classic mode ([filter_scheduler] '
                    'pci_in_placement = False): it decides hosts only; '
                    'nova-compute picks the devices on its own, so IOMMU '
                    'viability holds only for hosts whose every matching '
                    'device is assignable, pack/spread rank hosts but not '
                    'devices, and passthrough:vf_anti_affinity requests '
                    'are refused. Set [pci] report_in_placement and '
                    '[filter_scheduler] pci_in_placement to True to have '
                    'the plugin choose the devices.')
        return mode

    def _decide_in_nova(self, host: str, host_state: Any, spec_obj: Any,
                        request: engine_mod.Request, key: object
                        ) -> summary_mod.Decision:
        if not request.wants_devices:
            return self._engine_decides(host, request)
        if key != self._groups_key or request.token != self._groups_token:
            # The same for every host of the request: worked out once.
            self._groups_key, self._groups_token = key, request.token
            self._request_mode = self._mode()
            self._strategy = \
                self.engine.conf.passthrough_scheduler.weigh_strategy
            # A debug call per host costs more than the rule checks.
            self._debug = LOG.isEnabledFor(std_logging.DEBUG)
            groups = nova_adapter.device_groups(spec_obj, request.requests)
            self._extras = [r for r in request.requests.requests
                            if r.source != 'flavor'] + \
                list(request.requests.headroom)
            self._ask = None if groups is None else candidates.Ask(
                groups, self._extras, request.numa_cell_count)
        if self._request_mode == CLASSIC:
            if request.requests.vf_anti_affinity:
                return summary_mod.Decision(
                    False, NEEDS_PLACEMENT, ANTI_AFFINITY_NEEDS % host, host)
            return self._engine_decides(host, request)
        ask = self._ask
        mappings = nova_adapter.candidate_mappings(host_state)
        if ask is None or not mappings or \
                not _any_in(ask.group_ids, mappings[0]):
            # No PCI request groups (nova keeps physical_network-tagged
            # devices out of Placement) or no candidates to choose from:
            # the host-level decision, which cannot spread VFs.
            if request.requests.vf_anti_affinity and mappings:
                return summary_mod.Decision(
                    False, NEEDS_PLACEMENT, NOT_IN_PLACEMENT % host, host)
            LOG.debug('%s: the requested devices are not in Placement; '
                      'decided per host', host)
            return self._engine_decides(host, request)
        extras = self._extras
        view = self._view(host, host_state, bool(extras))
        if view is None:
            # No usable report: the engine's answer (missing_report).
            return self._engine_decides(host, request)
        pick = None
        if self._is_move_claim(spec_obj, key):
            # nova-compute's move claim picks the devices itself: refuse
            # the host where that pick breaks a rule.
            pick = candidates.move_claim_pick(ask.groups,
                                              list(view.providers.values()))
            breaks = candidates.move_claim_verdict(view, ask.groups, pick,
                                                   extras)
            if breaks is not None:
                return summary_mod.Decision(False, breaks.reason,
                                            breaks.detail, host)
        choice = ask.choose(view, mappings, self._strategy)
        if choice.ok and pick is not None:
            # Placement then records the devices nova's claim takes.
            choice = candidates.follow_pick(view, ask.groups, mappings,
                                            choice, pick, extras,
                                            request.numa_cell_count)
        if choice.ok:
            found = host_state.allocation_candidates
            host_state.allocation_candidates = [found[i]
                                                for i in choice.order]
            if self._debug:
                LOG.debug('%s: %d of %d allocation candidates obey the '
                          'rules', host, len(choice.order), choice.total)
        return candidates.decision(view, choice)

    def _is_move_claim(self, spec_obj: Any, key: object) -> bool:
        """A resize, cold migration or evacuation (nova-compute's move
        claim picks the devices); asked once per request (``key``, its
        decision key), not per host."""
        if key != self._resize_key:
            self._resize_key = key
            self._resize = nova_adapter.is_move_claim(spec_obj)
        return self._resize

    def _view(self, host: str, host_state: Any, device_level: bool
              ) -> candidates.HostView | None:
        engine = self.engine
        found = engine.summary(host)
        if found is None or found.summary is None:
            return None
        facts = self.shared.host_facts(engine, host, found.generation)
        if facts is None:
            return None
        pools = None
        if device_level and facts.pools is None:
            # Requests that must still fit afterwards need the devices.
            pools = plugin.host_pools(engine, host)
            if pools is None:
                return None
        return nova_adapter.host_view(host, facts, host_state, pools)


def _any_in(group_ids: list[str], mapping: Any) -> bool:
    """Does the candidate map any of the groups (a loop, asked per host:
    cheaper than any() over a generator)?"""
    for group_id in group_ids:
        if group_id in mapping:
            return True
    return False
