"""How requests match pools: interned signatures and memoised matchers.

A pool's signature is what requests look at (ids, type, tags, resource
class, traits); signatures are interned so that a request's match results
are memoised per signature across all hosts. The NUMA policy cascade is
nova's. Used by the device-level pools and the pool-level summaries alike.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Protocol, TypeVar

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import request as request_mod

TYPE_PF = alias_mod.TYPE_PF
TYPE_VF = alias_mod.TYPE_VF


class Signature:
    """The properties of a pool that requests match on, interned.

    Interning makes a signature an identity-hashed key, so a request's
    match results are memoised per signature across all hosts.
    """

    __slots__ = ('vendor_id', 'product_id', 'dev_type', 'pool_tags',
                 'resource_class', 'traits', 'remote_managed',
                 'live_migratable', 'order', 'null_tags', 'parent_ifname',
                 'hotplug_pool', '__weakref__')

    def __init__(self, vendor_id: int, product_id: int, dev_type: str,
                 pool_tags: tuple[tuple[str, str], ...],
                 resource_class: str, traits: frozenset[str],
                 null_tags: tuple[str, ...] = (),
                 parent_ifname: str | None = None,
                 hotplug_pool: bool = False) -> None:
        self.vendor_id = vendor_id
        self.hotplug_pool = hotplug_pool
        self.null_tags = null_tags
        self.parent_ifname = parent_ifname
        self.product_id = product_id
        self.dev_type = dev_type
        self.pool_tags = pool_tags
        self.resource_class = resource_class
        self.traits = traits
        tags = dict(pool_tags)
        self.remote_managed = bool(device_spec.parse_bool(
            tags.get('remote_managed', 'false')))
        self.live_migratable = tags.get('live_migratable')
        # nova sorts pools by the number of keys in the pool dict: the
        # tags (null ones too), parent_ifname when known, and an implicit
        # remote_managed key on VF and PF pools.
        self.order = len(pool_tags) + len(null_tags) + (
            parent_ifname is not None) + (
            1 if dev_type in (TYPE_PF, TYPE_VF)
            and 'remote_managed' not in tags
            and 'remote_managed' not in null_tags else 0)


_SIGNATURES: dict[tuple[object, ...], Signature] = {}


def signature(vendor_id: int, product_id: int, dev_type: str,
              pool_tags: tuple[tuple[str, str], ...], resource_class: str,
              traits: frozenset[str], null_tags: tuple[str, ...] = (),
              parent_ifname: str | None = None,
              hotplug_pool: bool = False) -> Signature:
    key = (vendor_id, product_id, dev_type, pool_tags, resource_class,
           traits, null_tags, parent_ifname, hotplug_pool)
    sig = _SIGNATURES.get(key)
    if sig is None:
        sig = _SIGNATURES[key] = Signature(
            vendor_id, product_id, dev_type, pool_tags, resource_class,
            traits, null_tags, parent_ifname, hotplug_pool)
    return sig


def spec_matches(spec: alias_mod.AliasSpec, sig: Signature) -> bool:
    """nova's pci_device_prop_match of one alias spec, plus RC and traits."""
    return ((spec.vendor_id is None or spec.vendor_id == sig.vendor_id)
            and (spec.product_id is None
                 or spec.product_id == sig.product_id)
            and (spec.dev_type is None or spec.dev_type == sig.dev_type)
            and (spec.live_migratable is None
                 or spec.live_migratable == sig.live_migratable)
            and (spec.resource_class is None
                 or spec.resource_class == sig.resource_class)
            and spec.traits <= sig.traits)


class Matcher:
    """A request's match tests, memoised per signature."""

    __slots__ = ('request', 'spec_memo', 'usable_memo')

    def __init__(self, request: request_mod.DeviceRequest) -> None:
        self.request = request
        self.spec_memo: dict[Signature, bool] = {}
        self.usable_memo: dict[Signature, bool] = {}

    def spec(self, sig: Signature) -> bool:
        hit = self.spec_memo.get(sig)
        if hit is None:
            # The hotplug pool ([hotplug] device_spec) serves hotplugs and
            # their headroom only, never a flavor's devices.
            allowed = (not sig.hotplug_pool or self.request.source
                       == request_mod.SOURCE_HOTPLUG)
            hit = self.spec_memo[sig] = allowed and any(
                spec_matches(s, sig) for s in self.request.specs)
        return hit

    def usable(self, sig: Signature) -> bool:
        """Spec match and nova's later filters (PFs, remote-managed, LM)."""
        hit = self.usable_memo.get(sig)
        if hit is None:
            hit = self.usable_memo[sig] = self._usable(sig)
        return hit

    def _usable(self, sig: Signature) -> bool:
        if not self.spec(sig):
            return False
        request = self.request
        if sig.dev_type == TYPE_PF and not request.wants_pf:
            return False
        if sig.remote_managed:
            return False
        lm = [s.live_migratable for s in request.specs]
        if all(v == 'true' for v in lm):
            return sig.live_migratable == 'true'
        if all(v == 'false' for v in lm):
            return sig.live_migratable == 'false'
        return True


class _PoolLike(Protocol):
    @property
    def numa_node(self) -> int | None: ...

    @property
    def sig(self) -> Signature: ...


_P = TypeVar('_P', bound=_PoolLike)

_MATCHERS: dict[request_mod.DeviceRequest, Matcher] = {}


# id(request) -> (request, matcher); holding the request keeps its id from
# being reused while the entry lives.
_BY_ID: dict[int, tuple[request_mod.DeviceRequest, Matcher]] = {}


def matcher(request: request_mod.DeviceRequest) -> Matcher:
    """The memoising matcher of ``request``.

    Looked up by identity first: a scheduler asks with the same request
    object on every host, and hashing a frozen request costs more than the
    rest of a host's decision.
    """
    entry = _BY_ID.get(id(request))
    if entry is not None and entry[0] is request:
        return entry[1]
    found = _MATCHERS.get(request)
    if found is None:
        found = _MATCHERS[request] = Matcher(request)
    if len(_BY_ID) > 4096:
        _BY_ID.clear()
        _MATCHERS.clear()
        _MATCHERS[request] = found
    _BY_ID[id(request)] = (request, found)
    return found


def numa_filter(pools: list[_P], counts: dict[_P, int],
                request: request_mod.DeviceRequest, cells: Sequence[int],
                sockets: dict[int, int | None]) -> list[_P]:
    """nova's NUMA policy cascade (required, socket, legacy, preferred)."""
    policy = request.numa_policy
    wanted: set[int | None] = set(cells)
    strict = [p for p in pools if p.numa_node in wanted]
    if policy == 'required' or sum(
            counts[p] for p in strict) >= request.count:
        return strict
    if policy == 'socket':
        if not sockets or any(s is None for s in sockets.values()):
            return []
        chosen = {sockets[c] for c in cells if c in sockets}
        nodes = {n for n, s in sockets.items() if s in chosen}
        return [p for p in pools if p.numa_node in nodes]
    wanted.add(None)
    legacy = [p for p in pools if p.numa_node in wanted]
    if policy == 'legacy' or sum(
            counts[p] for p in legacy) >= request.count:
        return legacy
    return sorted(pools, key=lambda p: p.numa_node not in wanted)


def pools_for(pools: Sequence[_P], free: Callable[[_P], int],
               match: Matcher, request: request_mod.DeviceRequest,
               cells: Sequence[int] | None,
               sockets: dict[int, int | None]) -> list[_P] | None:
    """The pools ``request`` may take from, in the order it takes them:
    those nova's later filters let it use, and with guest NUMA ``cells``
    first those its specs match, cut by the NUMA policy (as nova filters
    before it looks at PFs, remote-managed and live-migratable devices).
    None when its specs match fewer free devices than it asks for
    (``free``: a pool's free devices)."""
    if not cells:
        return [p for p in pools if match.usable(p.sig)]
    spec = match.spec
    found = [p for p in pools if spec(p.sig)]
    counts = {p: free(p) for p in found}
    if sum(counts.values()) < request.count:
        return None
    found = numa_filter(found, counts, request, cells, sockets)
    return [p for p in found if match.usable(p.sig)]
