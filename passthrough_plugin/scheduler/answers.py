"""What the engine answers with: parsed requests, host answers, weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import decision_memo as summary_mod


@dataclasses.dataclass(frozen=True)
class Request:
    """One scheduling request, parsed once and shared by every host."""

    requests: request_mod.RequestSet
    numa_cells: tuple[int, ...] | None = None
    # The guest has this many NUMA cells not yet pinned to host cells.
    numa_cell_count: int | None = None
    instance_uuid: str | None = None
    rebuild: bool = False
    token: int = 0

    @property
    def wants_devices(self) -> bool:
        return bool(self.requests.requests)


class Answer:
    """One host's answer: fits (with its weight) or why not."""

    # A plain slotted class: built for every host of every request.
    __slots__ = ('host', 'ok', 'reason', 'detail', 'weight', 'free_before',
                 'free_after')

    def __init__(self, host: str, ok: bool, reason: str | None = None,
                 detail: str = '', weight: float = 0.0, *,
                 free_before: int = 0, free_after: int = 0) -> None:
        self.host = host
        self.ok = ok
        self.reason = reason
        self.detail = detail
        self.weight = weight
        self.free_before = free_before
        self.free_after = free_after

    def __repr__(self) -> str:
        return 'Answer(%s, ok=%s, reason=%s, weight=%.3f)' % (
            self.host, self.ok, self.reason, self.weight)


def hotplug_requests(keys: Iterable[summary_mod.HotplugKey]
                     ) -> list[request_mod.DeviceRequest]:
    """Requests for an instance's hot-plugged devices, one per kind."""
    counts: dict[summary_mod.HotplugKey, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    result = []
    for (vendor, product, dev_type, rc), count in sorted(counts.items()):
        spec = alias_mod.AliasSpec(int(vendor, 16), int(product, 16),
                                   dev_type, rc or None)
        result.append(request_mod.DeviceRequest(
            'hotplug:%s:%s' % (vendor, product), count, (spec,),
            source=request_mod.SOURCE_HOTPLUG))
    return result


def normalise(raw: Sequence[float], multiplier: float) -> list[float]:
    """nova's min-max normalisation (ignoring -inf), times the multiplier."""
    finite = [w for w in raw if w != float('-inf')]
    if not finite:
        return [0.0] * len(raw)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for w in raw:
        if w == float('-inf'):
            out.append(0.0)
        elif span:
            out.append(multiplier * (w - low) / span)
        else:
            out.append(0.0)
    return out


