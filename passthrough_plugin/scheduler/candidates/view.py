"""nova's PCI providers and the agent's facts of one host, compact.

A provider is what nova's pools on ``host_state.pci_stats`` say it is: a
type-PCI or type-PF device (one device, its own address) or a PF whose VFs
it offers (the PF's address). nova-compute picks *which* VF of a PF on its
own, so a VF provider is safe only if nova cannot see more free VFs there
than the agent knows to be assignable.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler.candidates.facts import HostFacts

TYPE_VF = pools_mod.TYPE_VF
# nova hands a PF out only to requests that name type-PF.
TYPE_PF = 'type-PF'
# The hint operators get when nova can see devices it must not assign.
DEVICE_SPEC_HINT = ('list only assignable devices in nova\'s [pci] '
                    'device_spec (passthrough-agent nova-device-spec)')
# A provider address the agent's facts do not hold (see Layout.at).
_NOWHERE = (-1, -1, -1, 0)
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
    """What one host's candidates are judged on, worked out once.

    ``where``: provider -> (the devices it can give under the rules that
    need no device-level walk, or -1 when it breaks one (the full
    judgement says which); the devices nova counts free there; a device
    provider's bit on the compact facts, or -1; its address), what the
    fast paths of order.choose read. ``providers`` (the Provider objects)
    is built on first use when the view was made from nova's pools
    (:meth:`of_nova_pools`): only a full judgement, a rule's reason or a
    move claim asks for it.
    """

    __slots__ = ('host', 'facts', 'pools', '_providers', '_make', '_src',
                 'where', 'viable', 'in_use', 'free_before', 'offered',
                 'offered_mask', 'fits')
    _providers: Mapping[str, Provider] | None
    _make: Callable[[Sequence[Mapping[str, Any]]],
                    Mapping[str, Provider]] | None
    _src: Sequence[Mapping[str, Any]] | None

    def __init__(self, host: str, facts: HostFacts,
                 providers: Mapping[str, Provider],
                 pools: pools_mod.HostPools | None = None) -> None:
        """``pools``: the device-level pools, needed when requests must
        still fit after a candidate (hot-plugged devices, headroom)."""
        self.host = host
        self.facts = facts
        self.pools = pools
        self._providers = providers
        self._make = self._src = None
        if not self._read([
                {'rp_uuid': rp, 'address': p.address, 'dev_type': p.dev_type,
                 'count': p.free} for rp, p in providers.items()]):
            raise TypeError('providers must have an int free count and '
                            'a str address, as providers_of makes them')
        if pools is not None:
            # The devices nova offers (device-level walks): what a
            # candidate can make others lose.
            addresses = {p.address for p in providers.values()}
            for i, dev in enumerate(pools.devices):
                if dev.address in addresses or (
                        dev.dev_type == TYPE_VF and
                        dev.parent_address in addresses):
                    self.offered.add(i)

    @classmethod
    def of_nova_pools(cls, host: str, facts: HostFacts,
                      pools: Sequence[Mapping[str, Any]],
                      providers_of: Callable[[Sequence[Mapping[str, Any]]],
                                             Mapping[str, Provider]]
                      ) -> HostView | None:
        """The view (no device-level pools) straight from nova's pool
        dicts, one pass, no Provider object built: the same figures as
        ``HostView(host, facts, providers_of(pools))``, asked for every
        host of every request. None when a provider spans several pools
        or a pool is not as nova 34 makes it (rp_uuid, address, dev_type,
        count): build the providers then."""
        self = cls.__new__(cls)
        self.host = host
        self.facts = facts
        self.pools = None
        self._providers = None
        if not self._read(pools):
            return None
        self._make, self._src = providers_of, pools
        return self

    def _read(self, pools: Sequence[Mapping[str, Any]]) -> bool:
        """The per-provider figures from pools as nova makes them (one per
        provider); False when they are not."""
        # Per VF provider: VFs the agent knows assignable, and VFs in use
        # (the agent's, plus nova's claims the report has not caught up
        # with).
        viable_of: dict[str, int] = {}
        in_use: dict[str, int] = {}
        where: dict[str, tuple[int, int, int, str]] = {}
        free = mask = 0
        facts = self.facts
        at = facts.layout.at
        vf_viable, vf_busy, states = (facts.vf_viable, facts.vf_busy,
                                      facts.states)
        outside = 0
        try:
            for pool in pools:
                rp = pool.get('rp_uuid')
                if not rp:
                    # Not in Placement (physical_network devices).
                    outside += 1
                    continue
                address = pool['address']
                count = pool['count']
                if count.__class__ is not int:
                    return False
                entry = at.get(address)
                if entry is None:
                    address = address.lower()
                    entry = at.get(address, _NOWHERE)
                pf_n, dev_n, bit, owned = entry
                mask |= owned
                if pool['dev_type'] == TYPE_VF:
                    # facts.vf_counts, inline (per provider per host)
                    viable, busy = (0, 0) if pf_n < 0 else (vf_viable[pf_n],
                                                            vf_busy[pf_n])
                    viable_of[rp] = viable
                    in_use[rp] = busy + max(viable - count, 0)
                    free += min(viable, count)
                    where[rp] = (count if count <= viable else -1, count, -1,
                                 address)
                # facts.device, inline
                elif dev_n >= 0 and states[dev_n] is None:
                    if count:
                        free += 1
                    where[rp] = (count, count, bit, address)
                else:
                    where[rp] = (-1, count, bit, address)
        except (KeyError, AttributeError, TypeError):
            return False
        if len(where) + outside != len(pools):
            return False  # a provider over several pools
        self.where = where
        self.viable = viable_of
        self.in_use = in_use
        self.free_before = free
        # VF provider -> the most VFs it was found able to give.
        self.fits: dict[str, int] = {}
        # The devices nova offers, as bits on the compact facts (their
        # walk only): what a candidate can make others lose.
        self.offered: set[int] = set()
        self.offered_mask = mask if self.pools is None and facts.walk \
            else 0
        return True

    @property
    def providers(self) -> Mapping[str, Provider]:
        """nova's PCI providers of the host (built on first use)."""
        found = self._providers
        if found is None:
            assert self._make is not None and self._src is not None
            found = self._providers = self._make(self._src)
        return found

    @property
    def walks(self) -> bool:
        """Candidates here need the device-level walk."""
        return self.pools is not None or self.facts.walk
