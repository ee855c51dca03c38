"""A RequestSet as one GET /allocation_candidates query, no I/O.

The query only prefilters hosts: the core refines every candidate with
its own rules, so each group asks no more than the core would grant.
A request of ``n`` devices becomes ``n`` groups of one (group_policy
``none``): Placement may then take them from one provider or several, as
the core may. With ``passthrough:vf_anti_affinity`` the policy is
``isolate`` and the other requests keep one group of ``n``.
"""

from __future__ import annotations

from passthrough_plugin import exception
from passthrough_plugin.pci import names
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement.types import RequestGroup

# Above this many devices one request stays one group: n groups of one
# make Placement enumerate providers^n combinations.
SPLIT_LIMIT = 4


def resource_class(request: request_mod.DeviceRequest) -> str:
    """The one resource class every alternative of ``request`` names.

    :raises PlacementRequestNotExpressible: alternatives in several
        classes, or one without vendor and product nor resource_class.
    """
    classes = set()
    for spec in request.specs:
        if spec.resource_class:
            classes.add(spec.resource_class)
        elif spec.vendor_id is not None and spec.product_id is not None:
            classes.add(names.resource_class(
                None, '%04x' % spec.vendor_id, '%04x' % spec.product_id))
        else:
            raise exception.PlacementRequestNotExpressible(
                alias=request.alias_name, reason=(
                    'an alternative has neither resource_class nor both '
                    'vendor_id and product_id'))
    if len(classes) != 1:
        raise exception.PlacementRequestNotExpressible(
            alias=request.alias_name, reason=(
                'its alternatives are in several resource classes (%s); '
                'a Placement request group holds one' % ', '.join(
                    sorted(classes))))
    return classes.pop()


def groups(requests: request_mod.RequestSet
           ) -> tuple[dict[str, RequestGroup], str | None]:
    """The request groups by suffix, and the group policy.

    :raises PlacementRequestNotExpressible:
    """
    isolate = requests.vf_anti_affinity
    out: dict[str, RequestGroup] = {}
    every = list(requests.requests) + list(requests.headroom)
    for n, request in enumerate(every):
        rc = resource_class(request)
        common = frozenset.intersection(
            *(spec.traits for spec in request.specs))
        required = sorted({mapping.DEVICE} | common)
        split = request.anti_affinity or (
            not isolate and request.count <= SPLIT_LIMIT)
        if split:
            for k in range(request.count):
                out['_R%dN%d' % (n, k)] = RequestGroup({rc: 1}, required)
        else:
            out['_R%d' % n] = RequestGroup({rc: request.count}, required)
    policy = 'isolate' if isolate else 'none'
    return out, policy
