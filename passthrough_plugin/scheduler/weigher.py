"""PciPoolWeigher: pack or spread devices, keep non-PCI work off PCI hosts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.scheduler import plugin

LOG = logging.getLogger(__name__)
AGGREGATE_KEY = 'passthrough_weight_multiplier'
# raw_weight's figure for a host the plugin cannot weigh.
_BELOW_ALL = float('-inf')


class PciPoolWeigher(plugin.PluginBase):
    """Raw weights by ``[passthrough_scheduler] weigh_strategy``.

    Inside nova each host is weighed on the filter's decision for the same
    request: with PCI in Placement, on the candidate nova will claim.

    The handler (nova's, or the engine's) normalises them to 0..1 and
    multiplies by :meth:`weight_multiplier`.
    """

    minval = None
    maxval = None
    # [passthrough_scheduler] weight_multiplier as read by the last
    # weigh_objects (None: read it when asked).
    _multiplier: float | None = None

    def weight_multiplier(self, host_state: Any = None) -> float:
        """``[passthrough_scheduler] weight_multiplier``; inside nova a
        host aggregate's ``passthrough_weight_multiplier`` metadata
        overrides it, as nova's own weighers allow."""
        value = self._multiplier
        if value is None:
            value = float(
                self.engine.conf.passthrough_scheduler.weight_multiplier)
        if getattr(host_state, 'aggregates', None) and \
                nova_adapter.available():
            from nova.scheduler import utils as nova_utils

            value = float(nova_utils.get_weight_multiplier(
                host_state, AGGREGATE_KEY, value))
        return value

    def _weigh_object(self, host_state: Any, weight_properties: Any
                      ) -> float:
        return self.weigh_objects([_Weighed(host_state)],
                                  weight_properties)[0]

    def weigh_objects(self, weighed_obj_list: Sequence[Any],
                      weight_properties: Any) -> list[float]:
        hosts = [nova_adapter.host_name(o.obj) for o in weighed_obj_list]
        # nova asks weight_multiplier once per host after this call: the
        # option is read here, once per pass.
        self._multiplier = float(
            self.engine.conf.passthrough_scheduler.weight_multiplier)
        try:
            request = self.request_for(weight_properties)
        except exception.PassthroughException as exc:
            # The filter has already said why; do not reorder the hosts.
            LOG.debug('Not weighing: %s', exc.message)
            return [0.0] * len(hosts)
        engine = self.engine
        # Read once: an oslo.config lookup costs more than a weight.
        strategy = engine.conf.passthrough_scheduler.weigh_strategy
        # Inside nova: the filter's decision for this pass (with PCI in
        # Placement, the figures of the candidate nova will claim); a
        # host is never decided twice.
        shared = self.shared if nova_adapter.is_request_spec(
            weight_properties) else None
        key = nova_adapter.decision_key(weight_properties) \
            if shared is not None else None
        decisions = shared.decisions if shared is not None and \
            shared.key == key else {}
        spread = strategy == 'spread'
        # Per request, not per host (a property).
        wants_devices = request.wants_devices
        raw = []
        unknown = False
        for host in hosts:
            decision = decisions.get(host)
            if decision is not None and decision.ok and \
                    decision.reason is None and wants_devices:
                # The usual host (passed with devices): raw_weight's
                # figure, read here.
                raw.append(decision.spread if spread else decision.pack)
            else:
                weight = engine.raw_weight(host, request, decision, strategy)
                unknown = unknown or weight == _BELOW_ALL
                raw.append(weight)
        if not unknown:
            return raw
        # Hosts the plugin knows nothing of go just below the lowest.
        finite = [w for w in raw if w != _BELOW_ALL]
        floor = min(finite) - 1.0 if finite else 0.0
        return [floor if w == _BELOW_ALL else w for w in raw]


class _Weighed:
    __slots__ = ('obj',)

    def __init__(self, obj: Any) -> None:
        self.obj = obj
