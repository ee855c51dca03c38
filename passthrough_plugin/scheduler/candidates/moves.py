"""What nova's move operations do to the devices, and what breaks.

nova 34, per operation (see doc/nova.rst):

- live migration and unshelve claim the devices of the scheduler's
  allocation (the conductor or the compute writes its providers into the
  instance's PCI requests first): the candidate filter's order holds;
- resize, cold migration and evacuation run nova-compute's move claim:
  it rebuilds the PCI requests from the flavor without the scheduler's
  providers and takes, request by request, the first free devices of
  nova's pools in their order. The scheduler's allocation is still what
  Placement records. :func:`move_claim_pick` predicts that pick, the
  filter refuses the hosts where it breaks a rule and puts the candidate
  that matches it first, so Placement records the devices nova takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler.candidates import rules
from passthrough_plugin.scheduler.candidates.order import Choice
from passthrough_plugin.scheduler.candidates.rules import Verdict
from passthrough_plugin.scheduler.candidates.view import Group
from passthrough_plugin.scheduler.candidates.view import HostView
from passthrough_plugin.scheduler.candidates.view import Provider
from passthrough_plugin.scheduler.candidates.view import TYPE_VF

MOVE_PICKS = ('on a resize, cold migration or evacuation nova 34 picks '
              'the devices itself, ignoring the scheduler\'s choice')


def move_claim_breaks(host: str, groups: Sequence[Group],
                      providers: Sequence[Provider]) -> Verdict | None:
    """What nova 34's move claim (resize, cold migration, evacuation)
    would take.

    That claim rebuilds the PCI requests from the flavor without the
    scheduler's providers and takes, request by request, the first free
    devices of nova's pools in their order. When that breaks
    ``passthrough:vf_anti_affinity`` on this host, say so.
    """
    counts: dict[int, int] = {}
    requests: dict[int, request_mod.DeviceRequest] = {}
    for _group, request in groups:
        counts[id(request)] = counts.get(id(request), 0) + 1
        requests[id(request)] = request
    free = {p.rp_uuid: p.free for p in providers}
    for key, need in counts.items():
        request = requests[key]
        for provider in providers:
            if need <= 0:
                break
            if not provider.serves(request):
                continue
            take = min(need, free[provider.rp_uuid])
            free[provider.rp_uuid] -= take
            need -= take
            if take > 1 and request.anti_affinity and \
                    provider.dev_type == TYPE_VF:
                return Verdict(False, explain.ANTI_AFFINITY, '%s: %s with '
                               'passthrough:vf_anti_affinity: %s, and would '
                               'take %d VFs of PF %s' % (
                                   host, request.describe(), MOVE_PICKS, take,
                                   provider.address))
    return None


def move_claim_pick(groups: Sequence[Group], providers: Sequence[Provider]
                    ) -> dict[str, list[str]] | None:
    """The candidate nova's move claim takes, as group id -> provider: per
    request, the first providers (nova's pool order) that serve it and
    have free devices. None when nova's pools cannot give it (nova's own
    filter and claim say so)."""
    free = {p.rp_uuid: p.free for p in providers}
    pick: dict[str, list[str]] = {}
    for group_id, request in groups:
        found = next((p.rp_uuid for p in providers
                      if free[p.rp_uuid] > 0 and p.serves(request)), None)
        if found is None:
            return None
        free[found] -= 1
        pick[group_id] = [found]
    return pick


def move_claim_verdict(view: HostView, groups: Sequence[Group],
                       pick: Mapping[str, Sequence[str]] | None,
                       extras: Sequence[request_mod.DeviceRequest] = ()
                       ) -> Verdict | None:
    """Why nova's move claim on this host would break a rule, or None.

    The pick is judged by every rule but NUMA: nova's claim keeps the NUMA
    policy itself (it sorts and filters its pools by the guest's cells,
    which the prediction does not follow). ``extras`` (hot-plugged devices
    re-requested, headroom) must still fit after it.
    """
    breaks = move_claim_breaks(view.host, groups,
                               list(view.providers.values()))
    if breaks is not None or pick is None:
        return breaks
    verdict = rules.judge(view, groups, pick, extras)
    if verdict.ok:
        return None
    detail = verdict.detail
    if detail.startswith(view.host + ': '):
        detail = detail[len(view.host) + 2:]
    taken = sorted(view.providers[rps[0]].address for rps in pick.values()
                   if rps and rps[0] in view.providers)
    return Verdict(False, verdict.reason or explain.INSUFFICIENT,
                   '%s: %s, and would take the devices of %s: %s' % (
                       view.host, MOVE_PICKS, ', '.join(taken), detail))


def follow_pick(view: HostView, groups: Sequence[Group],
                mappings: Sequence[Mapping[str, Sequence[str]]],
                choice: Choice, pick: Mapping[str, Sequence[str]],
                extras: Sequence[request_mod.DeviceRequest] = (),
                numa_cell_count: int | None = None) -> Choice:
    """``choice`` with the surviving candidate that matches nova's move
    claim first, so that Placement's allocation names the devices nova
    takes; unchanged when none matches."""
    keyed, requests = rules.keyed(groups)
    wanted = rules.key_of(keyed, pick)
    for pos, index in enumerate(choice.order):
        if rules.key_of(keyed, mappings[index]) == wanted:
            if pos == 0:
                return choice
            first = rules.judge_key(view, wanted, requests, extras,
                                    numa_cell_count)
            order = [index] + choice.order[:pos] + choice.order[pos + 1:]
            return Choice(order, first, None, '', choice.total)
    return choice
