"""The agent's facts of one host at one generation, compact.

What hosts of one hardware model have in common (addresses, PF/VF links,
IOMMU groups) is a :class:`Layout`, built once and shared by every host
with the same devices: a cloud has thousands of hosts and a handful of
models. What is a host's own (which devices are assignable, which are in
use) is a few small tuples in its :class:`HostFacts`.
"""

from __future__ import annotations

import itertools
import sys
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import pools as pools_mod

TYPE_VF = pools_mod.TYPE_VF
# Layouts kept; past this many distinct models the cache starts over.
LAYOUT_CACHE_SIZE = 256
_LAYOUTS: dict[int, tuple[pool_layout.Skeleton, Layout]] = {}
# Distinct device state tuples kept for sharing (the common ones come
# back soon after the cache starts over).
STATES_CACHE_SIZE = 4096
_STATES: dict[tuple[str | None, ...], tuple[str | None, ...]] = {}


class Layout:
    """The devices of a hardware model, indexed as the host's pools are.

    ``pf_pos``: PF address -> position in a host's VF counts; ``dev_pos``:
    other device's address -> position in a host's states (``dev_at``: its
    device index); ``vfs``: PF address -> its VFs' device indices;
    ``owner``: per device, the address nova's provider has for it (its
    own, a VF's PF's). ``multi``: devices in IOMMU groups of several
    devices; ``take``: per device, what taking it makes unusable (its
    group, its PF's group, its VFs' groups), kept only if ``multi``, as
    ``take_mask`` too (bit i: device i). ``at``: provider address ->
    (``pf_pos``, ``dev_pos``, its ``dev_at`` (-1 where it has none), its
    devices' bits (only if ``multi``, else 0)): what a view reads per
    provider, in one look-up.
    """

    __slots__ = ('pf_pos', 'dev_pos', 'dev_at', 'vfs', 'owner', 'multi',
                 'take', 'take_mask', 'at')

    def __init__(self, pools: pools_mod.HostPools) -> None:
        intern = sys.intern
        self.pf_pos: dict[str, int] = {}
        self.dev_pos: dict[str, int] = {}
        dev_at: list[int] = []
        vfs: dict[str, list[int]] = {}
        owner: list[str] = []
        for i, dev in enumerate(pools.devices):
            if dev.dev_type == TYPE_VF and dev.parent_address:
                pf = intern(dev.parent_address)
                if pf not in self.pf_pos:
                    self.pf_pos[pf] = len(self.pf_pos)
                vfs.setdefault(pf, []).append(i)
                owner.append(pf)
            else:
                address = intern(dev.address)
                self.dev_pos[address] = len(dev_at)
                dev_at.append(i)
                owner.append(address)
        self.dev_at = tuple(dev_at)
        self.vfs = {pf: tuple(found) for pf, found in vfs.items()}
        self.owner = tuple(owner)
        self.multi = tuple(i for members in pools.groups.values()
                           if len(members) > 1 for i in members)
        self.take: tuple[tuple[int, ...], ...] = ()
        # The same as bit masks (bit i: device i), for the walk.
        self.take_mask: tuple[int, ...] = ()
        owner_mask: dict[str, int] = {}
        if self.multi:
            self.take = tuple(_closure(pools, i)
                              for i in range(len(pools.devices)))
            self.take_mask = tuple(sum(1 << m for m in closure)
                                   for closure in self.take)
            for i, address in enumerate(owner):
                owner_mask[address] = owner_mask.get(
                    address, 0) | 1 << i
        self.at: dict[str, tuple[int, int, int, int]] = {}
        for address in itertools.chain(self.pf_pos, self.dev_pos):
            n = self.dev_pos.get(address, -1)
            self.at[address] = (self.pf_pos.get(address, -1), n,
                                -1 if n < 0 else self.dev_at[n],
                                owner_mask.get(address, 0))


def _closure(pools: pools_mod.HostPools, i: int) -> tuple[int, ...]:
    """Device ``i`` takes its IOMMU group; its PF and VFs become
    unusable."""
    groups, group_of = pools.groups, pools.group_of
    found: set[int] = set()
    for member in groups[group_of[i]]:
        found.add(member)
        parent = pools.parent[member]
        if parent >= 0:
            found.update(groups[group_of[parent]])
        for child in pools.children.get(member, ()):
            found.update(groups[group_of[child]])
    return tuple(sorted(found))


def layout(pools: pools_mod.HostPools) -> Layout:
    """The shared layout of the host of ``pools``: one per skeleton (the
    pools' hardware, shared by the hosts of one model)."""
    skeleton = pools.skeleton
    found = _LAYOUTS.get(id(skeleton))
    if found is None or found[0] is not skeleton:
        if len(_LAYOUTS) >= LAYOUT_CACHE_SIZE:
            _LAYOUTS.clear()
        # The skeleton is kept with its layout: its id is not reused.
        found = _LAYOUTS[id(skeleton)] = (skeleton, Layout(pools))
    return found[1]


def forget() -> None:
    """Drop the shared layouts and states (hosts keep theirs; later
    hosts build new ones): what a scheduler starting now would hold, for
    measuring."""
    _LAYOUTS.clear()
    _STATES.clear()


def _shared_states(states: tuple[str | None, ...]
                   ) -> tuple[str | None, ...]:
    """``states``, one tuple per distinct content: hosts of one model
    mostly repeat a few (their PFs free, or serving VFs)."""
    found = _STATES.get(states)
    if found is None:
        if len(_STATES) >= STATES_CACHE_SIZE:
            _STATES.clear()
        found = _STATES[states] = states
    return found


class HostFacts:
    """The agent's facts of one host at one generation, compact.

    Per PF: how many of its VFs are assignable and how many are in use;
    per other device: whether it is assignable (None) or why not. Hosts
    whose free devices share IOMMU groups (taking one device takes others
    there) also keep which devices are free: the device-level walk.
    """

    __slots__ = ('layout', 'vf_viable', 'vf_busy', 'states', 'free', 'walk')

    def __init__(self, pools: pools_mod.HostPools) -> None:
        shape = self.layout = layout(pools)
        state = pools.state
        viable = [0] * len(shape.pf_pos)
        busy = [0] * len(shape.pf_pos)
        pf_pos = shape.pf_pos
        for pf, members in shape.vfs.items():
            n = pf_pos[pf]
            for i in members:
                if state[i] is None:
                    viable[n] += 1
                elif state[i] == explain.IN_USE:
                    busy[n] += 1
        self.vf_viable = tuple(viable)
        self.vf_busy = tuple(busy)
        self.states = _shared_states(tuple([state[i] for i in shape.dev_at]))
        self.walk = any(state[i] is None for i in shape.multi)
        free = 0
        if self.walk:
            for i, why in enumerate(state):
                if why is None:
                    free |= 1 << i
        self.free = free

    @property
    def pools(self) -> None:
        """No device-level pools are kept (see ``walk``): a request that
        must still fit after a candidate reads them from the store."""
        return None

    def vf_counts(self, pf: str) -> tuple[int, int]:
        """VFs of PF ``pf`` the agent knows assignable, and in use."""
        n = self.layout.pf_pos.get(pf)
        if n is None:
            return 0, 0
        return self.vf_viable[n], self.vf_busy[n]

    def device(self, address: str) -> tuple[bool, str | None]:
        """Whether the device (not a VF) is in the report, and why it
        cannot be assigned (None: it can)."""
        n = self.layout.dev_pos.get(address)
        if n is None:
            return False, None
        return True, self.states[n]
