"""A host's allocation candidates judged, the survivors best first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import decision_memo as summary_mod
from passthrough_plugin.scheduler.candidates import rules
from passthrough_plugin.scheduler.candidates.view import Group
from passthrough_plugin.scheduler.candidates.view import HostView


class Choice:
    """A host's candidates judged: the survivors in order, or why none."""

    __slots__ = ('order', 'first', 'reason', 'detail', 'total')

    def __init__(self, order: list[int], first: rules.Verdict | None,
                 reason: str | None, detail: str, total: int) -> None:
        self.order = order
        self.first = first
        self.reason = reason
        self.detail = detail
        self.total = total

    @property
    def ok(self) -> bool:
        return bool(self.order)


def choose(view: HostView, groups: Sequence[Group],
           mappings: Sequence[Mapping[str, Sequence[str]]],
           strategy: str,
           extras: Sequence[request_mod.DeviceRequest] = (),
           numa_cell_count: int | None = None) -> Choice:
    """Judge every candidate; keep the good ones, best first (ties keep
    Placement's order)."""
    good: list[tuple[tuple[int, int, int], int, rules.Verdict]] = []
    first_bad: rules.Verdict | None = None
    cache: dict[rules.Key, rules.Verdict] = {}
    # Candidates that differ only in which group of a request took which
    # provider are judged once.
    keyed, requests = rules.keyed(groups)
    single = len(requests) == 1
    group_ids = [g for g, _n in keyed]
    for index, mapping in enumerate(mappings):
        if single:
            # One request (the usual case): its providers, sorted.
            try:
                key = tuple([(0, rp) for rp in sorted(
                    [mapping[g][0] for g in group_ids])])
            except (KeyError, IndexError):
                key = rules.key_of(keyed, mapping)
        else:
            key = rules.key_of(keyed, mapping)
        verdict = cache.get(key)
        if verdict is None:
            verdict = cache[key] = rules.judge_key(
                view, key, requests, extras, numa_cell_count)
        if verdict.ok:
            good.append((verdict.key(strategy), index, verdict))
        elif first_bad is None:
            first_bad = verdict
    good.sort(key=lambda item: (item[0], item[1]))
    if not good:
        detail = first_bad.detail if first_bad is not None else \
            '%s: no allocation candidate' % view.host
        if len(mappings) > 1:
            detail = '%s (and every other of its %d allocation candidates ' \
                'breaks a rule)' % (detail, len(mappings))
        return Choice([], None, first_bad.reason if first_bad else
                      explain.INSUFFICIENT, detail, len(mappings))
    return Choice([i for _k, i, _v in good], good[0][2], None, '',
                  len(mappings))


def decision(view: HostView, choice: Choice) -> summary_mod.Decision:
    """The weigher's figures of the candidate nova will claim."""
    if not choice.ok or choice.first is None:
        return summary_mod.Decision(False, choice.reason, choice.detail,
                                    view.host)
    first = choice.first
    return summary_mod.Decision(
        True, host=view.host, free_before=view.free_before,
        free_after=max(view.free_before - first.taken - first.lost, 0),
        broken_pfs=first.broken, local=first.local)
