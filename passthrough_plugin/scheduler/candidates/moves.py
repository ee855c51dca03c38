"""What nova's move operations do to the devices, and what breaks."""

from __future__ import annotations

from collections.abc import Sequence

from passthrough_plugin.pci import explain
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler.candidates.rules import Verdict
from passthrough_plugin.scheduler.candidates.view import Group
from passthrough_plugin.scheduler.candidates.view import Provider
from passthrough_plugin.scheduler.candidates.view import TYPE_VF


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
                               'passthrough:vf_anti_affinity: on a resize, '
                               'cold migration or evacuation nova 34 picks '
                               'the devices itself, ignoring the '
                               'scheduler\'s choice, and would take %d VFs '
                               'of PF %s' % (
                                   host, request.describe(), take,
                                   provider.address))
    return None
