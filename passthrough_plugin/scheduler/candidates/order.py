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


class Ask:
    """What one request asks of every host's candidates, worked out once
    (nova asks each of its hosts in turn): its groups keyed by request,
    the devices that must still fit afterwards, and the path that judges
    them."""

    __slots__ = ('groups', 'keyed', 'requests', 'group_ids', 'extras',
                 'numa_cell_count', 'fast')

    def __init__(self, groups: Sequence[Group],
                 extras: Sequence[request_mod.DeviceRequest] = (),
                 numa_cell_count: int | None = None) -> None:
        self.groups = groups
        self.keyed, self.requests = rules.keyed(groups)
        self.group_ids = [g for g, _n in self.keyed]
        self.extras = extras
        self.numa_cell_count = numa_cell_count
        # One request, nothing that must fit afterwards: the rules are per
        # provider counts and a walk on the compact facts.
        self.fast = len(self.requests) == 1 and not extras and \
            not numa_cell_count

    def choose(self, view: HostView,
               mappings: Sequence[Mapping[str, Sequence[str]]],
               strategy: str, fast: bool = True) -> Choice:
        """Judge every candidate; keep the good ones, best first (ties
        keep Placement's order). ``fast=False`` judges every candidate in
        full (the fast paths' reference in tests)."""
        if fast and self.fast and view.pools is None:
            group_ids = self.group_ids
            if len(group_ids) == 1:
                found = _choose_one(view, group_ids[0], self.requests[0],
                                    mappings, strategy == 'spread')
            else:
                found = _choose_fast(view, group_ids, self.requests[0],
                                     mappings, strategy)
            if found is not None:
                return found
        return self._judge_each(view, mappings, strategy)

    def _judge_each(self, view: HostView,
                    mappings: Sequence[Mapping[str, Sequence[str]]],
                    strategy: str) -> Choice:
        """Every candidate judged in full (the same key judged once)."""
        keyed, requests = self.keyed, self.requests
        extras, numa_cell_count = self.extras, self.numa_cell_count
        good: list[tuple[tuple[int, int, int], int, rules.Verdict]] = []
        first_bad: rules.Verdict | None = None
        cache: dict[rules.Key, rules.Verdict] = {}
        # Candidates that differ only in which group of a request took
        # which provider are judged once.
        single = len(requests) == 1
        group_ids = self.group_ids
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
            return _none_left(view, first_bad, len(mappings))
        return Choice([i for _k, i, _v in good], good[0][2], None, '',
                      len(mappings))


def choose(view: HostView, groups: Sequence[Group],
           mappings: Sequence[Mapping[str, Sequence[str]]],
           strategy: str,
           extras: Sequence[request_mod.DeviceRequest] = (),
           numa_cell_count: int | None = None, fast: bool = True) -> Choice:
    """One host's candidates judged (:meth:`Ask.choose`; a caller asking
    many hosts makes the Ask once)."""
    return Ask(groups, extras, numa_cell_count).choose(view, mappings,
                                                       strategy, fast)


def _none_left(view: HostView, first_bad: rules.Verdict | None,
               total: int) -> Choice:
    detail = first_bad.detail if first_bad is not None else \
        '%s: no allocation candidate' % view.host
    if total > 1:
        detail = '%s (and every other of its %d allocation candidates ' \
            'breaks a rule)' % (detail, total)
    return Choice([], None, first_bad.reason if first_bad else
                  explain.INSUFFICIENT, detail, total)


def _choose_fast(view: HostView, group_ids: Sequence[str],
                 request: request_mod.DeviceRequest,
                 mappings: Sequence[Mapping[str, Sequence[str]]],
                 strategy: str) -> Choice | None:
    """``choose`` for one request with nothing that must fit afterwards:
    the rules are per provider counts (``view.where``) and, where free
    devices share IOMMU groups, a walk on the host's compact facts, so a
    candidate is a few additions. Only the loser (when none is left) is
    judged in full, for its reason. None when a candidate names no
    provider for a group (the full path says why). One device a
    candidate is :func:`_choose_one`."""
    in_use, where = view.in_use, view.where
    anti = request.anti_affinity
    spread = strategy == 'spread'
    walks = view.facts.walk
    scores: dict[tuple[str, ...], tuple[int, int, int] | None] = {}
    good: list[tuple[tuple[int, int, int], int, tuple[str, ...]]] = []
    first_bad: tuple[str, ...] | None = None
    rps: tuple[str, ...]
    pair = len(group_ids) == 2
    if pair:
        first_group, second_group = group_ids
    for index, mapping in enumerate(mappings):
        try:
            if pair:
                # Two devices (the usual ask): no list, no sort.
                a, b = mapping[first_group][0], mapping[second_group][0]
                rps = (a, b) if a <= b else (b, a)
            else:
                rps = tuple(sorted([mapping[g][0] for g in group_ids]))
        except (KeyError, IndexError):
            return None
        if rps in scores:
            score = scores[rps]
        else:
            score = scores[rps] = _score(rps, in_use, where, anti, spread)
            if score is not None and walks:
                score = scores[rps] = _walked(view, rps, score, spread)
        if score is not None:
            good.append((score, index, rps))
        elif first_bad is None:
            first_bad = rps
    requests = [request]
    if not good:
        return _none_left(view, None if first_bad is None else
                          rules.judge_key(view, tuple((0, rp)
                                                      for rp in first_bad),
                                          requests, (), None),
                          len(mappings))
    # Index breaks ties between equal scores (Placement's order); indexes
    # are unique, so the providers are never compared.
    good.sort()
    # The winner's figures, as the full judgement gives them.
    score, _index, rps = good[0]
    sign = -1 if spread else 1
    best = rules.Verdict(True, broken=sign * score[0], lost=score[1],
                         left=sign * score[2], taken=len(rps))
    return Choice([i for _s, i, _k in good], best, None, '', len(mappings))


def _choose_one(view: HostView, group_id: str,
                request: request_mod.DeviceRequest,
                mappings: Sequence[Mapping[str, Sequence[str]]],
                spread: bool) -> Choice | None:
    """``_choose_fast`` for one device (a GPU, a NIC): each candidate is
    one provider, scored as ``_score`` scores a provider giving one."""
    in_use, where = view.in_use, view.where
    facts = view.facts
    walks = facts.walk
    shape = facts.layout
    free = facts.free
    take = shape.take_mask
    # Free devices nova offers: what taking a device can make lost.
    avail = free & view.offered_mask
    sign = -1 if spread else 1
    # (broken, lost, left, index): the score as _score makes it, then
    # Placement's order; flat, so the sort compares ints.
    good: list[tuple[int, int, int, int]] = []
    first_bad: str | None = None
    for index, mapping in enumerate(mappings):
        try:
            rp = mapping[group_id][0]
        except (KeyError, IndexError):
            return None
        entry = where.get(rp)
        if entry is None or entry[0] < 1:
            if first_bad is None:
                first_bad = rp
            continue
        _cap, count, i, address = entry
        if rp in in_use:  # a VF provider
            broken = 0 if in_use[rp] else sign
            left = sign * (count - 1)
            if walks:
                # Its first free VF (as _walked takes it).
                for i in shape.vfs.get(address, ()):
                    if free >> i & 1:
                        break
                else:
                    if first_bad is None:
                        first_bad = rp
                    continue
        else:
            broken = left = 0
        # The free devices taking it makes lost (_walked for one).
        lost = (take[i] & avail & ~(1 << i)).bit_count() if walks else 0
        good.append((broken, lost, left, index))
    if not good:
        return _none_left(view, None if first_bad is None else
                          rules.judge_key(view, ((0, first_bad),),
                                          [request], (), None),
                          len(mappings))
    good.sort()
    broken, lost, left, _index = good[0]
    best = rules.Verdict(True, broken=sign * broken, lost=lost,
                         left=sign * left, taken=1)
    return Choice([item[3] for item in good], best, None, '',
                  len(mappings))


def _score(rps: tuple[str, ...], in_use: Mapping[str, int],
           where: Mapping[str, tuple[int, int, int, str]],
           anti: bool, spread: bool) -> tuple[int, int, int] | None:
    """The candidate's sort key (as Verdict.key), None if it breaks a
    rule."""
    broken = left = 0
    n = len(rps)
    i = 0
    while i < n:
        rp = rps[i]
        j = i + 1
        while j < n and rps[j] == rp:
            j += 1
        count = j - i
        i = j
        entry = where.get(rp)
        if entry is None or count > entry[0]:
            return None
        if rp in in_use:  # a VF provider
            if anti and count > 1:
                return None
            if not in_use[rp]:
                broken += 1
            left += entry[1] - count
    return (-broken, 0, -left) if spread else (broken, 0, left)


def _walked(view: HostView, rps: tuple[str, ...],
            score: tuple[int, int, int], spread: bool
            ) -> tuple[int, int, int] | None:
    """``score`` with the devices the candidate makes others lose, on the
    compact facts (rules._walk_facts's steps, without its reasons); None
    when IOMMU groups taken whole leave it short."""
    facts = view.facts
    shape = facts.layout
    free = facts.free
    take = shape.take_mask
    where, in_use = view.where, view.in_use
    blocked = taken = 0
    for rp in rps:
        _cap, _count, i, address = where[rp]
        if rp in in_use:  # a VF provider
            for i in shape.vfs.get(address, ()):
                if free >> i & 1 and not blocked >> i & 1:
                    blocked |= take[i]
                    taken |= 1 << i
                    break
            else:
                return None
            continue
        if blocked >> i & 1:
            return None
        blocked |= take[i]
        taken |= 1 << i
    lost = (blocked & free & view.offered_mask & ~taken).bit_count()
    return (score[0], lost, score[2])


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
