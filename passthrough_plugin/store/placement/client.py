"""A thin typed client of the Placement API over openstacksdk's proxy.

openstacksdk's placement proxy does the calls it has a resource for
(providers, inventories, traits, allocations); its keystoneauth adapter
side does the rest (allocation candidates, resource classes, aggregates,
usages) with this module's microversion (the transport is
:mod:`passthrough_plugin.store.placement.transport`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from openstack.placement.v1 import resource_provider_trait as _rp_trait
from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import connection
from passthrough_plugin import exception
from passthrough_plugin.conf import placement as placement_conf
from passthrough_plugin.store.placement import transport
from passthrough_plugin.store.placement.transport import (
    CONCURRENT_UPDATE, DUPLICATE_NAME, NOAUTH_TOKEN, rolled_back)
from passthrough_plugin.store.placement.types import (
    AllocationCandidates, Allocations, Json, RequestGroup, ResourceProvider,
    candidate_params)

__all__ = ['AllocationCandidates', 'Allocations', 'PlacementClient',
           'RequestGroup', 'ResourceProvider', 'candidate_params']

LOG = logging.getLogger(__name__)
T = TypeVar('T')


def _provider(found: Any) -> ResourceProvider:
    """Our record of an openstacksdk ResourceProvider."""
    return ResourceProvider(
        uuid=found.id, name=found.name, generation=int(found.generation),
        parent_provider_uuid=found.parent_provider_id,
        root_provider_uuid=found.root_provider_id)


class PlacementClient(transport.Transport):
    """Placement calls the report store needs, with errors mapped (see
    :class:`~passthrough_plugin.store.placement.transport.Transport`)."""

    @classmethod
    def from_connection(cls, conn: connection.Connection,
                        **kwargs: Any) -> PlacementClient:
        """Over ``conn.placement`` of an openstacksdk connection (made at
        the first call)."""
        auth = conn.session.auth
        hint = conn.config.config.get('placement_endpoint_override') or \
            getattr(auth, 'endpoint', None)
        auth_url = getattr(auth, 'auth_url', None)
        if hint is None and auth_url:
            hint = f'the placement endpoint in the catalog of {auth_url}'
        return cls(lambda: conn.placement, endpoint_hint=hint, **kwargs)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, **kwargs: Any) -> PlacementClient:
        """Build from the ``[placement]`` group (registered by the caller)
        through :func:`passthrough_plugin.connection.from_config`."""
        return cls.from_connection(connection.from_config(conf), **kwargs)

    @classmethod
    def from_endpoint(cls, endpoint: str, *, token: str = NOAUTH_TOKEN,
                      timeout: float = placement_conf.DEFAULT_TIMEOUT,
                      **kwargs: Any) -> PlacementClient:
        """Build for a Placement with ``noauth2`` (development and tests)."""
        return cls.from_connection(connection.from_endpoint(
            endpoint, token=token, timeout=timeout), **kwargs)

    def _put_generation(self, uuid: str, what: str,
                        put: Callable[[int], int],
                        generation: int | None) -> int:
        """``put(generation)`` (a write of the whole desired state that
        returns the new generation); on a generation conflict re-read and
        retry.

        The body is the whole desired state, so writing it again over
        someone else's change is what the caller asked for.
        """
        gen = self.get_provider_strict(uuid).generation \
            if generation is None else generation
        for attempt in range(1, self._attempts + 1):
            try:
                return put(gen)
            except exception.PlacementConflict as exc:
                if exc.kwargs.get('code') != CONCURRENT_UPDATE:
                    raise
                if attempt == self._attempts:
                    raise exception.ProviderGenerationConflict(
                        provider=uuid, what=what, attempts=attempt,
                        detail=exc.kwargs.get('detail')) from exc
                LOG.debug("%s of provider %s: generation %s is stale, "
                          "re-reading", what, uuid, gen)
                gen = self.get_provider_strict(uuid).generation
        raise AssertionError('unreachable')  # pragma: no cover

    # -- resource providers ------------------------------------------------

    def get_provider(self, uuid: str) -> ResourceProvider | None:
        try:
            return self.get_provider_strict(uuid)
        except exception.PlacementNotFound:
            return None

    def get_provider_strict(self, uuid: str) -> ResourceProvider:
        """:raises PlacementNotFound: when there is no such provider."""
        return _provider(self._sdk(
            'GET', f'/resource_providers/{uuid}',
            lambda: self._proxy.get_resource_provider(uuid)))

    def list_providers(self, *, name: str | None = None,
                       in_tree: str | None = None,
                       member_of: str | None = None,
                       required: Sequence[str] = (),
                       ) -> list[ResourceProvider]:
        query = {k: v for k, v in (('name', name), ('in_tree', in_tree),
                                   ('member_of', member_of)) if v}
        if required:
            query['required'] = ','.join(required)
        found = self._sdk('GET', '/resource_providers', lambda: list(
            self._proxy.resource_providers(**query)))
        return [_provider(rp) for rp in found]

    def find_provider(self, name: str) -> ResourceProvider | None:
        found = self.list_providers(name=name)
        return found[0] if found else None

    def create_provider(self, name: str, *, uuid: str | None = None,
                        parent_provider_uuid: str | None = None,
                        ) -> ResourceProvider:
        """:raises PlacementConflict: name or uuid taken (code duplicate)."""
        attrs: Json = {'name': name}
        if uuid:
            attrs['id'] = uuid
        if parent_provider_uuid:
            attrs['parent_provider_id'] = parent_provider_uuid
        return _provider(self._sdk(
            'POST', '/resource_providers',
            lambda: self._proxy.create_resource_provider(**attrs)))

    def ensure_provider(self, name: str, *, uuid: str | None = None,
                        parent_provider_uuid: str | None = None,
                        ) -> ResourceProvider:
        """The provider by uuid (or name), created when absent."""
        found = self.get_provider(uuid) if uuid else self.find_provider(name)
        if found is not None:
            return found
        try:
            return self.create_provider(
                name, uuid=uuid, parent_provider_uuid=parent_provider_uuid)
        except exception.PlacementConflict as exc:
            # Someone else created it between our read and our write.
            if exc.kwargs.get('code') != DUPLICATE_NAME:
                raise
            found = (self.get_provider(uuid) if uuid
                     else self.find_provider(name))
            if found is None:
                raise
            return found

    def delete_provider(self, uuid: str) -> bool:
        """Delete; False when it was already gone.

        :raises PlacementConflict: it has allocations or children.
        """
        try:
            self._sdk('DELETE', f'/resource_providers/{uuid}',
                      lambda: self._proxy.delete_resource_provider(
                          uuid, ignore_missing=False))
        except exception.PlacementNotFound:
            return False
        return True

    # -- inventories, traits, classes, aggregates --------------------------

    def get_inventories(self, uuid: str) -> tuple[int, dict[str, Json]]:
        # The adapter: the sdk's inventory list drops the provider
        # generation when there is no inventory.
        body = self._call('GET', f'/resource_providers/{uuid}/inventories')
        return (body['resource_provider_generation'], body['inventories'])

    def set_inventories(self, uuid: str,
                        inventories: Mapping[str, Mapping[str, Any]], *,
                        generation: int | None = None) -> int:
        """Replace all inventories; return the new provider generation.

        ``CUSTOM_`` resource classes are created when absent.

        :raises PlacementConflict: code ``placement.inventory.inuse`` when a
            class with allocations would go away.
        :raises ProviderGenerationConflict: still racing after the attempts.
        """
        inv = {rc: dict(fields) for rc, fields in inventories.items()}

        def put(gen: int) -> int:
            done = self._sdk(
                'PUT', f'/resource_providers/{uuid}/inventories',
                lambda: self._proxy.set_resource_provider_inventories(
                    uuid, inv, gen))
            return int(done.generation)

        def write() -> int:
            for rc in inv:
                if rc.startswith('CUSTOM_'):
                    self.ensure_resource_class(rc)
            return self._put_generation(uuid, 'inventories', put,
                                        generation)
        return self._again_if_forgotten(write, self._known_classes,
                                        'Unknown resource class')

    def _again_if_forgotten(self, write: Callable[[], T],
                            known: set[str], marker: str) -> T:
        """Run ``write``; if Placement lost custom names we created and
        remembered (its database was replaced), forget them and run again.
        """
        try:
            return write()
        except exception.PlacementError as exc:
            if not known or exc.kwargs.get('status') != 400 or \
                    marker not in str(exc.kwargs.get('detail')):
                raise
            LOG.warning("Placement at %s forgot custom names we created "
                        "(%s); creating them again", self.endpoint,
                        exc.kwargs.get('detail'))
            known.clear()
            return write()

    def ensure_traits(self, traits: Iterable[str]) -> None:
        """Create the ``CUSTOM_`` traits that do not exist yet."""
        for trait in traits:
            if trait.startswith('CUSTOM_') and \
                    trait not in self._known_traits:
                self._sdk('PUT', f'/traits/{trait}',
                          functools.partial(self._create_trait, trait))
                self._known_traits.add(trait)

    def _create_trait(self, name: str) -> Any:
        return self._proxy.create_trait(name)

    def get_traits(self, uuid: str) -> tuple[int, set[str]]:
        found = self._sdk(
            'GET', f'/resource_providers/{uuid}/traits',
            lambda: self._proxy.get_resource_provider_trait(uuid))
        return (int(found.resource_provider_generation),
                set(found.traits or ()))

    def set_traits(self, uuid: str, traits: Iterable[str], *,
                   generation: int | None = None) -> int:
        """Replace the provider's traits, creating custom ones first."""
        wanted = sorted(set(traits))

        def put(gen: int) -> int:
            done = self._sdk(
                'PUT', f'/resource_providers/{uuid}/traits',
                lambda: self._proxy.set_resource_provider_trait(
                    _rp_trait.ResourceProviderTrait(
                        resource_provider_id=uuid),
                    traits=wanted, resource_provider_generation=gen))
            return int(done.resource_provider_generation)

        def write() -> int:
            self.ensure_traits(wanted)
            return self._put_generation(uuid, 'traits', put, generation)
        return self._again_if_forgotten(write, self._known_traits,
                                        'No such trait')

    def ensure_resource_class(self, name: str) -> None:
        """Create custom resource class ``name`` (``CUSTOM_...``) if absent."""
        if name not in self._known_classes:
            self._call('PUT', f'/resource_classes/{name}')
            self._known_classes.add(name)

    def set_aggregates(self, uuid: str, aggregates: Iterable[str], *,
                       generation: int | None = None) -> int:
        wanted = sorted(set(aggregates))
        path = f'/resource_providers/{uuid}/aggregates'
        return self._put_generation(
            uuid, 'aggregates', lambda g: int(self._call('PUT', path, body={
                'resource_provider_generation': g,
                'aggregates': wanted})['resource_provider_generation']),
            generation)

    def get_provider_usages(self, uuid: str) -> dict[str, int]:
        body = self._call('GET', f'/resource_providers/{uuid}/usages')
        return dict(body['usages'])

    # -- allocation candidates and allocations -----------------------------

    def get_allocation_candidates(
            self, groups: Mapping[str, RequestGroup], **kwargs: Any,
    ) -> AllocationCandidates:
        """GET /allocation_candidates; ``kwargs`` as :func:`candidate_params`.

        ``groups`` maps the suffix ('' for the unsuffixed group, else e.g.
        ``'_PF1'``) to its :class:`RequestGroup`.
        """
        body = self._call('GET', '/allocation_candidates',
                          params=candidate_params(groups, **kwargs))
        return AllocationCandidates(body['allocation_requests'],
                                    body['provider_summaries'])

    def get_candidates_body(self, params: Sequence[tuple[str, str]]
                            ) -> Json:
        """GET /allocation_candidates with a query built already (see
        :func:`candidate_params`); the reply as Placement sent it."""
        return self._call('GET', '/allocation_candidates', params=params)

    def get_allocations(self, consumer: str) -> Allocations:
        """The consumer's allocations; empty, generation None if unknown."""
        found = self._sdk('GET', f'/allocations/{consumer}',
                          lambda: self._proxy.get_allocation(consumer))
        return Allocations(
            consumer_uuid=consumer,
            allocations={rp: dict(a['resources'])
                         for rp, a in (found.allocations or {}).items()},
            consumer_generation=found.consumer_generation,
            project_id=found.project_id, user_id=found.user_id,
            consumer_type=found.consumer_type)

    def put_allocations(self, consumer: str,
                        allocations: Mapping[str, Mapping[str, int]], *,
                        consumer_generation: int | None, project_id: str,
                        user_id: str, consumer_type: str = 'INSTANCE') -> None:
        """Replace the consumer's allocations (all or nothing).

        ``consumer_generation`` is None for a new consumer, else the
        generation last read.

        :raises ConsumerGenerationConflict: the consumer changed meanwhile.
        :raises PlacementCapacityExceeded: no room (or no such inventory).
        """
        attrs = {'allocations': {rp: {'resources': dict(res)}
                                 for rp, res in allocations.items()},
                 'consumer_generation': consumer_generation,
                 'project_id': project_id, 'user_id': user_id,
                 'consumer_type': consumer_type}
        path = f'/allocations/{consumer}'
        for attempt in range(1, self._attempts + 1):
            try:
                self._sdk('PUT', path, lambda: self._proxy.update_allocation(
                    consumer, **attrs))
                return
            except exception.PlacementUnavailable as exc:
                if attempt == self._attempts or not rolled_back(exc):
                    raise
                LOG.debug("allocations of %s: Placement's transaction was "
                          "rolled back (%s), sending again", consumer,
                          exc.message)
            except exception.PlacementConflict as exc:
                detail = str(exc.kwargs.get('detail'))
                if 'consumer generation conflict' in detail:
                    raise exception.ConsumerGenerationConflict(
                        consumer=consumer, sent=consumer_generation,
                        detail=detail) from exc
                if exc.kwargs.get('code') != CONCURRENT_UPDATE:
                    raise exception.PlacementCapacityExceeded(
                        consumer=consumer, detail=detail) from exc
                # A provider moved under placement's own retries; the
                # consumer generation still guards this identical retry.
                if attempt == self._attempts:
                    raise
                LOG.debug("allocations of %s raced a provider update, "
                          "retrying", consumer)

    def delete_allocations(self, consumer: str, *,
                           consumer_generation: int | None = None) -> bool:
        """Remove the consumer's allocations; False if it had none.

        With ``consumer_generation`` the removal is conditional (an empty
        PUT) and raises ConsumerGenerationConflict when it is stale.
        """
        if consumer_generation is None:
            for attempt in range(1, self._attempts + 1):
                try:
                    self._sdk('DELETE', f'/allocations/{consumer}',
                              lambda: self._proxy.delete_allocation(
                                  consumer, ignore_missing=False))
                except exception.PlacementNotFound:
                    return False
                except exception.PlacementUnavailable as exc:
                    if attempt == self._attempts or not rolled_back(exc):
                        raise
                    continue
                return True
            raise AssertionError('unreachable')  # pragma: no cover
        current = self.get_allocations(consumer)
        if current.consumer_generation is None:
            raise exception.ConsumerGenerationConflict(
                consumer=consumer, sent=consumer_generation,
                detail='Placement has no allocations for it')
        self.put_allocations(
            consumer, {}, consumer_generation=consumer_generation,
            project_id=current.project_id or '',
            user_id=current.user_id or '',
            consumer_type=current.consumer_type or 'INSTANCE')
        return bool(current.allocations)
