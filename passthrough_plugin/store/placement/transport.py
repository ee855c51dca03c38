"""The Placement client's transport: openstacksdk's proxy, errors mapped.

Every call goes through :meth:`Transport._call` (the keystoneauth adapter
side, for what openstacksdk has no resource for) or :meth:`Transport._sdk`
(an openstacksdk resource call); both count calls by method and turn
keystoneauth and openstacksdk failures into the project's exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc
from openstack import proxy as sdk_proxy
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.store.placement.types import Json

LOG = logging.getLogger(__name__)

# 1.28 consumer generations, 1.31 in_tree, 1.33 string group suffixes,
# 1.38 consumer types, 1.39 any-traits: the newest openstack-placement 16
# serves, and the oldest with everything used here.
MICROVERSION = '1.39'
CONCURRENT_UPDATE = 'placement.concurrent_update'
DUPLICATE_NAME = 'placement.duplicate_name'
DEFAULT_ATTEMPTS = 5
# HTTP 500 answers of Placement whose database transaction was rolled
# back, so nothing was written and the same request may be sent again:
# Placement 16 retries a deadlocked write inside the request's aborted
# PostgreSQL transaction and fails with the second marker.
ROLLED_BACK = ('deadlock detected', 'current transaction is aborted',
               'Deadlock found')
# Placement's noauth2 middleware takes the token "admin" as an admin: not a
# secret, the development convention.
NOAUTH_TOKEN = 'admin'  # noqa: S105


def _error_parts(resp: Any) -> tuple[str, str]:
    """(code, detail) of a Placement error reply, without webob's preamble."""
    try:
        error = resp.json()['errors'][0]
        code, detail = error.get('code', '?'), str(error.get('detail', ''))
    except (ValueError, KeyError, IndexError, TypeError):
        return '?', (resp.text or '').strip()[:300]
    parts = [p.strip() for p in detail.split('\n\n') if p.strip()]
    return code, (parts[-1] if parts else detail.strip())


def rolled_back(exc: exception.PlacementUnavailable) -> bool:
    """Whether Placement said its database transaction was rolled back."""
    return 'HTTP 500' in exc.message and any(
        marker in exc.message for marker in ROLLED_BACK)


def _setup(proxy: sdk_proxy.Proxy) -> sdk_proxy.Proxy:
    """Our microversion for the sdk's resource calls too (the error codes
    of 1.23 and consumer generations of 1.28 are what the retries read),
    and errors in JSON (Placement answers them in JSON only when asked)."""
    proxy.default_microversion = MICROVERSION
    proxy.additional_headers.setdefault('Accept', 'application/json')
    return proxy


class Transport:
    """Placement calls the report store needs, with errors mapped.

    ``adapter`` is openstacksdk's placement proxy (``conn.placement``), or
    a function that makes it: the sdk reads the endpoint's version document
    when it makes the proxy, so an unreachable Placement surfaces at the
    first call, as PlacementUnavailable.

    Every call may raise :class:`~passthrough_plugin.exception.
    PlacementUnavailable` (unreachable, timeout, 5xx, refused credentials)
    and :class:`~passthrough_plugin.exception.PlacementError` (or a leaf) for
    a refused request.
    """

    def __init__(self,
                 adapter: sdk_proxy.Proxy | Callable[[], sdk_proxy.Proxy],
                 *, attempts: int = DEFAULT_ATTEMPTS,
                 endpoint_hint: str | None = None) -> None:
        self._made: sdk_proxy.Proxy | None = None
        if isinstance(adapter, sdk_proxy.Proxy):
            self._made = _setup(adapter)
            endpoint_hint = endpoint_hint or adapter.endpoint_override
        else:
            self._make = adapter
        self._attempts = max(1, attempts)
        self._endpoint = endpoint_hint
        self._endpoint_known = bool(
            endpoint_hint and endpoint_hint.startswith('http'))
        self._known_traits: set[str] = set()
        self._known_classes: set[str] = set()
        # Calls made, by method (the benchmarks count calls per claim).
        self.calls: dict[str, int] = {}

    @property
    def _proxy(self) -> Any:
        """The sdk's placement proxy (typed loosely: the methods used are
        those of ``openstack.placement.v1._proxy.Proxy``). Call it inside
        ``_call`` or ``_sdk`` only: making it may reach the network."""
        if self._made is None:
            self._made = _setup(self._make())
        return self._made

    @property
    def endpoint(self) -> str:
        return self._endpoint or 'the placement endpoint of the catalog'

    # -- transport ---------------------------------------------------------

    def _call(self, method: str, path: str, *, body: Json | None = None,
              params: Sequence[tuple[str, str]] | None = None) -> Json:
        self.calls[method] = self.calls.get(method, 0) + 1
        try:
            resp = self._proxy.request(
                path, method, json=body, params=params, raise_exc=False,
                microversion=MICROVERSION,
                headers={'Accept': 'application/json'})
        except (ksa_exc.ConnectionError, ksa_exc.RequestTimeout,
                ksa_exc.DiscoveryFailure) as exc:
            raise exception.PlacementUnavailable(reason=(
                f"cannot reach Placement at {self.endpoint} "
                f"({method} {path}): {exc}")) from exc
        except ksa_exc.ClientException as exc:
            # No endpoint in the catalog, keystone refusing our credentials.
            raise exception.PlacementUnavailable(reason=(
                f"cannot use Placement at {self.endpoint} "
                f"({method} {path}): {type(exc).__name__}: {exc}")) from exc
        if resp.status_code < 400:
            if not self._endpoint_known:
                self._learn_endpoint()
            return resp.json() if resp.content else {}
        raise self._error(method, path, resp)

    def _sdk(self, method: str, path: str, call: Callable[[], Any]) -> Any:
        """Run one openstacksdk resource call with _call's error mapping."""
        self.calls[method] = self.calls.get(method, 0) + 1
        try:
            result = call()
        except sdk_exc.HttpException as exc:
            if exc.response is None:
                raise exception.PlacementUnavailable(reason=(
                    f"cannot use Placement at {self.endpoint} "
                    f"({method} {path}): {exc}")) from exc
            raise self._error(method, path, exc.response) from exc
        except (ksa_exc.ConnectionError, ksa_exc.RequestTimeout,
                ksa_exc.DiscoveryFailure) as exc:
            raise exception.PlacementUnavailable(reason=(
                f"cannot reach Placement at {self.endpoint} "
                f"({method} {path}): {exc}")) from exc
        except (ksa_exc.ClientException, sdk_exc.SDKException) as exc:
            raise exception.PlacementUnavailable(reason=(
                f"cannot use Placement at {self.endpoint} "
                f"({method} {path}): {type(exc).__name__}: {exc}")) from exc
        if not self._endpoint_known:
            self._learn_endpoint()
        return result

    def _learn_endpoint(self) -> None:
        """Remember the catalog's URL for messages (cheap after a reply:
        the catalog came with the token)."""
        try:
            self._endpoint = self._proxy.get_endpoint() or self._endpoint
        except ksa_exc.ClientException:
            LOG.debug("no endpoint to name in messages", exc_info=True)
        self._endpoint_known = True

    def _error(self, method: str, path: str,
               resp: Any) -> exception.PassthroughException:
        code, detail = _error_parts(resp)
        status = resp.status_code
        if status >= 500 or status in (401, 403):
            return exception.PlacementUnavailable(reason=(
                f"Placement at {self.endpoint} answered {method} {path} "
                f"with HTTP {status}: {detail}"))
        cls: type[exception.PlacementError] = exception.PlacementError
        if status == 404:
            cls = exception.PlacementNotFound
        elif status == 409:
            cls = exception.PlacementConflict
        return cls(method=method, path=path, status=status, code=code,
                   detail=detail)
