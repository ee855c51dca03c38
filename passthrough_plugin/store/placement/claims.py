"""Claims as Placement allocations: pools chosen by the core -> PUT."""

from __future__ import annotations

import dataclasses
import uuid as uuid_mod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.store import base
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement.client import PlacementClient

LOG = logging.getLogger(__name__)
Views = dict[str, mapping.ProviderView]


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A claim that went through: its lines, what it allocated, and
    whether the consumer was new (then it holds only these allocations)."""

    lines: list[str]
    allocations: dict[str, dict[str, int]]
    new_consumer: bool


def facts_of(host: str, views: Iterable[mapping.ProviderView]
             ) -> base.HostFacts:
    by_address: Views = {}
    pools = []
    sockets: dict[int, int | None] = {}
    for view in views:
        by_address[view.address] = view
        pools.extend(mapping.pool_facts(view))
        sockets.update(mapping.sockets_of(view.traits))
    return base.HostFacts(host, 0, pools, sockets, by_address)


def host_facts(summaries: Mapping[str, Mapping[str, Any]],
               names: Mapping[str, tuple[str, str]]
               ) -> list[base.HostFacts]:
    """Per host, the facts of our providers in an allocation-candidates
    reply's provider summaries (they cover whole trees)."""
    per_host: dict[str, list[mapping.ProviderView]] = {}
    for uuid, summary in summaries.items():
        traits = frozenset(summary.get('traits', ()))
        if mapping.DEVICE not in traits or uuid not in names:
            continue
        host, address = names[uuid]
        resources = {rc: (int(r['capacity']), int(r['used']))
                     for rc, r in summary.get('resources', {}).items()}
        per_host.setdefault(host, []).append(
            mapping.ProviderView(uuid, address, resources, traits))
    return [facts_of(host, views)
            for host, views in sorted(per_host.items())]


def allocations(facts: base.HostFacts,
                choice: Sequence[Mapping[tuple[str, str], int]]
                ) -> dict[str, dict[str, int]]:
    """Provider uuid -> class -> amount for the pools of ``choice``.

    A whole PF that also carries its VFs' inventory takes all of it too:
    Placement then refuses a VF of a PF given whole, and the PF of a PF
    with a VF in use, with no extra rule of ours.
    """
    views: Views = facts.handle if isinstance(facts.handle, dict) else {}
    out: dict[str, dict[str, int]] = {}
    for counts in choice:
        for (address, rc), count in counts.items():
            view = views[address]
            amounts = out.setdefault(view.uuid, {})
            amounts[rc] = amounts.get(rc, 0) + count
            vf_rc = view.vf_rc()
            if vf_rc and rc != vf_rc and vf_rc in view.resources:
                amounts[vf_rc] = view.resources[vf_rc][0]
    return out


def describe(facts: base.HostFacts,
             body: Mapping[str, Mapping[str, int]]) -> list[str]:
    views: Views = facts.handle if isinstance(facts.handle, dict) else {}
    address = {v.uuid: a for a, v in views.items()}
    return ['%s %s x%d' % (address.get(uuid, uuid), rc, n)
            for uuid, res in sorted(body.items())
            for rc, n in sorted(res.items())]


def claim(client: PlacementClient, facts: base.HostFacts, consumer: str,
          choice: Sequence[Mapping[tuple[str, str], int]], *,
          attempts: int, project_id: str, user_id: str) -> Claimed:
    """Add the chosen pools to ``consumer``'s allocations.

    First as a new consumer (one PUT); when Placement knows the consumer
    (nova wrote its VCPU/MEMORY_MB, or an earlier claim), re-read its
    allocations and write them back with ours merged in, guarded by the
    consumer generation.

    :raises: ClaimFailed, PlacementUnavailable
    """
    _check_consumer(consumer)
    ours = allocations(facts, choice)
    body = {uuid: dict(res) for uuid, res in ours.items()}
    generation: int | None = None
    project, user, ctype = project_id, user_id, 'INSTANCE'
    for attempt in range(1, attempts + 1):
        try:
            client.put_allocations(
                consumer, body, consumer_generation=generation,
                project_id=project, user_id=user, consumer_type=ctype)
            return Claimed(describe(facts, ours), ours, generation is None)
        except exception.PlacementCapacityExceeded as exc:
            raise exception.ClaimFailed(
                consumer=consumer, host=facts.host, reason=(
                    'Placement has no room any more: %s'
                    % exc.kwargs.get('detail'))) from exc
        except exception.ConsumerGenerationConflict:
            if attempt == attempts:
                raise exception.ClaimFailed(
                    consumer=consumer, host=facts.host, reason=(
                        'its allocations kept changing under us (%d '
                        'attempts)' % attempts)) from None
            current = client.get_allocations(consumer)
            generation = current.consumer_generation
            project = current.project_id or project_id
            user = current.user_id or user_id
            ctype = current.consumer_type or ctype
            body = {uuid: dict(res)
                    for uuid, res in current.allocations.items()}
            for uuid, res in ours.items():
                merged = body.setdefault(uuid, {})
                for rc, n in res.items():
                    merged[rc] = merged.get(rc, 0) + n
    raise AssertionError('unreachable')  # pragma: no cover


def _check_consumer(consumer: str) -> None:
    try:
        uuid_mod.UUID(consumer)
    except ValueError:
        raise exception.Invalid(reason=(
            'consumer %r: Placement allocations belong to a consumer UUID '
            '(the instance uuid), e.g. %s' % (consumer, uuid_mod.uuid4()))
        ) from None


def release(client: PlacementClient, consumer: str, providers: set[str],
            names: Mapping[str, tuple[str, str]], *,
            attempts: int
            ) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Remove ``consumer``'s allocations on ``providers`` (one host's),
    keeping the rest (nova's), guarded by the consumer generation: the
    lines and the allocations removed."""
    _check_consumer(consumer)
    for attempt in range(1, attempts + 1):
        current = client.get_allocations(consumer)
        mine = {u: r for u, r in current.allocations.items()
                if u in providers}
        if not mine:
            return [], {}
        rest = {u: r for u, r in current.allocations.items()
                if u not in providers}
        try:
            client.put_allocations(
                consumer, rest,
                consumer_generation=current.consumer_generation,
                project_id=current.project_id or '',
                user_id=current.user_id or '',
                consumer_type=current.consumer_type or 'INSTANCE')
        except exception.ConsumerGenerationConflict:
            if attempt == attempts:
                raise
            continue
        return ['%s %s x%d' % (names.get(u, ('', u))[1], rc, n)
                for u, res in sorted(mine.items())
                for rc, n in sorted(res.items())], mine
    raise AssertionError('unreachable')  # pragma: no cover


def choice_for_addresses(facts: base.HostFacts, consumer: str,
                         devices: Sequence[str]
                         ) -> dict[tuple[str, str], int]:
    """Whole PFs / type-PCI devices by address, as one choice."""
    views: Views = facts.handle if isinstance(facts.handle, dict) else {}
    choice: dict[tuple[str, str], int] = {}
    for address in devices:
        pools = [p for p in facts.pools if p.address == address
                 and p.dev_type != 'type-VF']
        if address not in views or not pools:
            raise exception.ClaimFailed(
                consumer=consumer, host=facts.host, reason=(
                    '%s is not a PF or type-PCI device in Placement; '
                    'Placement counts VFs without naming them, so VFs are '
                    'claimed through the scheduler' % address))
        choice[(address, pools[0].resource_class)] = 1
    return choice
