"""nova's PCI providers and the agent's facts of one host, compact.

A provider is what nova's pools on ``host_state.pci_stats`` say it is: a
type-PCI or type-PF device (one device, its own address) or a PF whose VFs
it offers (the PF's address). nova-compute picks *which* VF of a PF on its
own, so a VF provider is safe only if nova cannot see more free VFs there
than the agent knows to be assignable.
"""

from __future__ import annotations

from collections.abc import Mapping

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler.candidates.facts import HostFacts

TYPE_VF = pools_mod.TYPE_VF
# nova hands a PF out only to requests that name type-PF.
TYPE_PF = 'type-PF'
# The hint operators get when nova can see devices it must not assign.
DEVICE_SPEC_HINT = ('list only assignable devices in nova\'s [pci] '
                    'device_spec (passthrough-agent nova-device-spec)')
# A request group id and the device request it asks one device of.
Group = tuple[str, request_mod.DeviceRequest]


class Provider:
    """One PCI resource provider as nova's scheduler pools show it."""

    __slots__ = ('rp_uuid', 'address', 'dev_type', 'free', 'numa_node',
                 'vendor_id', 'product_id')

    def __init__(self, rp_uuid: str, address: str, dev_type: str,
                 free: int, numa_node: int | None = None,
                 vendor_id: int | None = None,
                 product_id: int | None = None) -> None:
        self.rp_uuid = rp_uuid
        self.address = address
        self.dev_type = dev_type
        # Devices nova counts free there (after its own claims).
        self.free = free
        self.numa_node = numa_node
        self.vendor_id = vendor_id
        self.product_id = product_id

    def serves(self, request: request_mod.DeviceRequest) -> bool:
        """Could nova hand this provider's devices out for ``request``?"""
        return any((s.vendor_id is None or s.vendor_id == self.vendor_id)
                   and (s.product_id is None or
                        s.product_id == self.product_id)
                   and (s.dev_type == self.dev_type or s.dev_type is None
                        and self.dev_type != TYPE_PF)
                   for s in request.specs)


class HostView:
    """What one host's candidates are judged on, worked out once."""

    __slots__ = ('host', 'facts', 'pools', 'providers', 'viable', 'in_use',
                 'free_before', 'offered', 'offered_mask', 'fits', 'cap')

    def __init__(self, host: str, facts: HostFacts,
                 providers: Mapping[str, Provider],
                 pools: pools_mod.HostPools | None = None) -> None:
        """``pools``: the device-level pools, needed when requests must
        still fit after a candidate (hot-plugged devices, headroom)."""
        self.host = host
        self.facts = facts
        self.pools = pools
        self.providers = providers
        # Per VF provider: VFs the agent knows assignable, and VFs in use
        # (the agent's, plus nova's claims the report has not caught up
        # with).
        viable_of: dict[str, int] = {}
        in_use: dict[str, int] = {}
        # Per provider: the devices it can give under the rules that need
        # no device-level walk, or -1 when it breaks one (the full
        # judgement says which): the fast path of order.choose.
        cap: dict[str, int] = {}
        free = 0
        layout = facts.layout
        pf_pos, dev_pos = layout.pf_pos, layout.dev_pos
        vf_viable, vf_busy, states = (facts.vf_viable, facts.vf_busy,
                                      facts.states)
        # The devices nova offers, as bits on the compact facts (below).
        owner_mask = layout.owner_mask if pools is None and facts.walk \
            else None
        mask = 0
        for rp, provider in providers.items():
            count = provider.free
            if owner_mask is not None:
                mask |= owner_mask.get(provider.address, 0)
            if provider.dev_type == TYPE_VF:
                # facts.vf_counts, inline (once per provider per host)
                n = pf_pos.get(provider.address)
                viable, busy = (0, 0) if n is None else (vf_viable[n],
                                                         vf_busy[n])
                viable_of[rp] = viable
                in_use[rp] = busy + max(viable - count, 0)
                free += min(viable, count)
                cap[rp] = count if count <= viable else -1
            else:
                # facts.device, inline
                n = dev_pos.get(provider.address)
                if n is not None and states[n] is None:
                    if count:
                        free += 1
                    cap[rp] = count
                else:
                    cap[rp] = -1
        self.viable = viable_of
        self.in_use = in_use
        self.cap = cap
        self.free_before = free
        # VF provider -> the most VFs it was found able to give.
        self.fits: dict[str, int] = {}
        # The devices nova offers (device-level walks only): what a
        # candidate can make others lose; as bits on the compact facts.
        self.offered: set[int] = set()
        self.offered_mask = 0
        if pools is not None:
            addresses = {p.address for p in providers.values()}
            for i, dev in enumerate(pools.devices):
                if dev.address in addresses or (
                        dev.dev_type == TYPE_VF and
                        dev.parent_address in addresses):
                    self.offered.add(i)
        elif owner_mask is not None:
            self.offered_mask = mask

    @property
    def walks(self) -> bool:
        """Candidates here need the device-level walk."""
        return self.pools is not None or self.facts.walk
