"""Placement API values and the allocation-candidates query, no I/O."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from passthrough_plugin import exception

# '' (the unsuffixed group), a number (before 1.33) or '_' and 1-64 chars.
_SUFFIX = re.compile(r'^(_[A-Za-z0-9_-]{1,64}|[0-9]+)?$')

Json = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ResourceProvider:
    uuid: str
    name: str
    generation: int
    parent_provider_uuid: str | None
    root_provider_uuid: str

    @classmethod
    def from_body(cls, body: Json) -> ResourceProvider:
        return cls(uuid=body['uuid'], name=body['name'],
                   generation=body['generation'],
                   parent_provider_uuid=body.get('parent_provider_uuid'),
                   root_provider_uuid=body['root_provider_uuid'])


@dataclasses.dataclass(frozen=True)
class Allocations:
    """A consumer's allocations: provider uuid -> resource class -> amount."""

    consumer_uuid: str
    allocations: dict[str, dict[str, int]]
    consumer_generation: int | None
    project_id: str | None = None
    user_id: str | None = None
    consumer_type: str | None = None


@dataclasses.dataclass(frozen=True)
class RequestGroup:
    """One (suffixed) request group of GET /allocation_candidates.

    ``required`` holds trait names, ``!NAME`` for forbidden ones and
    ``in:A,B`` for any-of; ``member_of`` holds aggregate uuids,
    ``in:a,b`` or ``!in:a,b`` entries, each sent as its own parameter.
    """

    resources: Mapping[str, int]
    required: Sequence[str] = ()
    member_of: Sequence[str] = ()
    in_tree: str | None = None


@dataclasses.dataclass(frozen=True)
class AllocationCandidates:
    allocation_requests: list[Json]
    provider_summaries: dict[str, Json]


def candidate_params(groups: Mapping[str, RequestGroup], *,
                     limit: int | None = None,
                     group_policy: str | None = None,
                     root_required: Sequence[str] = (),
                     same_subtree: Sequence[str] = (),
                     ) -> list[tuple[str, str]]:
    """The query of GET /allocation_candidates for ``groups`` by suffix.

    :raises passthrough_plugin.exception.Invalid: for a bad group suffix.
    """
    params: list[tuple[str, str]] = []
    for suffix, group in groups.items():
        if not _SUFFIX.match(suffix):
            raise exception.Invalid(reason=(
                f"request group suffix {suffix!r}: expected '' or '_' "
                "followed by 1-64 of [A-Za-z0-9_-]"))
        if group.resources:
            params.append(('resources' + suffix, ','.join(
                f'{rc}:{n}' for rc, n in sorted(group.resources.items()))))
        plain = [t for t in group.required if not t.startswith('in:')]
        if plain:
            params.append(('required' + suffix, ','.join(plain)))
        params.extend(('required' + suffix, t) for t in group.required
                      if t.startswith('in:'))
        params.extend(('member_of' + suffix, m) for m in group.member_of)
        if group.in_tree:
            params.append(('in_tree' + suffix, group.in_tree))
    if group_policy is None and sum(1 for s in groups if s) > 1:
        # Placement insists on a policy once there are two suffixed groups.
        group_policy = 'none'
    if group_policy is not None:
        params.append(('group_policy', group_policy))
    if limit is not None:
        params.append(('limit', str(limit)))
    if root_required:
        params.append(('root_required', ','.join(root_required)))
    params.extend(('same_subtree', s) for s in same_subtree)
    return params
