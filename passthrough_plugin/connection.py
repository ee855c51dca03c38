"""openstacksdk connections from clouds.yaml / OS_* or ``[placement]``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging as std_logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ksa_session
from keystoneauth1 import token_endpoint
from openstack import connection as sdk_connection
from openstack import exceptions as sdk_exc
from openstack.config import loader as sdk_loader
from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import placement as placement_conf

LOG = logging.getLogger(__name__)
Connection = sdk_connection.Connection
APP_NAME = 'passthrough-plugin'
# At most this many names are listed in a "valid are" message.
LIST_LIMIT = 20
__all__ = ['Connection', 'Flavor', 'Server', 'add_arguments', 'configured',
           'from_args', 'from_cloud', 'from_config', 'from_endpoint',
           'lookup_flavor', 'lookup_server', 'names']


@dataclasses.dataclass(frozen=True)
class Flavor:
    """A nova flavor as the scheduler needs it."""

    id: str
    name: str
    extra_specs: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Server:
    """A nova server: who it is, where it runs, what it was given."""

    id: str
    name: str
    project_id: str
    host: str | None
    status: str
    flavor: Flavor


# -- building connections ----------------------------------------------------

def from_config(conf: cfg.ConfigOpts,
                group: str = placement_conf.GROUP_NAME) -> Connection:
    """A connection from the keystoneauth options of ``[placement]``.

    The group's session and auth options build a keystoneauth session
    (nova.conf's ``[placement]`` works unchanged); its adapter options
    (``valid_interfaces``, ``region_name``, ``endpoint_override``) reach
    the placement proxy through openstacksdk's oslo.config support.
    ``register_opts`` of :mod:`passthrough_plugin.conf.placement` must have
    run on ``conf``.

    :raises InvalidConfig: the auth options are incomplete or unknown.
    """
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, group)
    except (ksa_exc.auth_plugins.MissingRequiredOptions,
            ksa_exc.auth_plugins.NoMatchingPlugin) as exc:
        raise exception.InvalidConfig(
            group=group, option='auth_type',
            value=conf[group].auth_type, reason=str(exc)) from exc
    session = ks_loading.load_session_from_conf_options(
        conf, group, auth=auth, **placement_conf.session_kwargs(conf))
    return Connection(session=session, oslo_conf=conf,
                      service_types=[placement_conf.DEFAULT_SERVICE_TYPE],
                      app_name=APP_NAME)


def from_endpoint(endpoint: str, *, token: str = 'admin',  # noqa: S107
                  timeout: float = placement_conf.DEFAULT_TIMEOUT,
                  ) -> Connection:
    """A connection to a Placement with ``noauth2`` (development, tests).

    Only its ``placement`` proxy is usable: every request goes to
    ``endpoint`` with the fixed ``token``.
    """
    session = ksa_session.Session(
        auth=token_endpoint.Token(endpoint, token), timeout=timeout)
    return Connection(session=session, app_name=APP_NAME,
                      placement_endpoint_override=endpoint)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--os-cloud`` and ``--os-region-name``, as every OpenStack tool has.

    Without ``--os-cloud`` the ``OS_CLOUD`` variable names the cloud of
    clouds.yaml; without either, ``OS_AUTH_URL`` and the other ``OS_*``
    variables describe it.
    """
    parser.add_argument(
        '--os-cloud', metavar='NAME', default=os.environ.get('OS_CLOUD'),
        help='a cloud of clouds.yaml (default: $OS_CLOUD, else the OS_* '
        'variables)')
    parser.add_argument(
        '--os-region-name', metavar='REGION',
        default=os.environ.get('OS_REGION_NAME'),
        help='the region of that cloud (default: $OS_REGION_NAME)')


def configured(args: argparse.Namespace | None = None) -> bool:
    """Whether the command line or the environment names a cloud."""
    return bool((args is not None and getattr(args, 'os_cloud', None))
                or os.environ.get('OS_CLOUD')
                or os.environ.get('OS_AUTH_URL'))


def from_args(args: argparse.Namespace) -> Connection:
    """The connection :func:`add_arguments`' options name."""
    return from_cloud(getattr(args, 'os_cloud', None),
                      region_name=getattr(args, 'os_region_name', None))


def from_cloud(name: str | None = None, *,
               region_name: str | None = None) -> Connection:
    """A connection to cloud ``name`` of clouds.yaml (None: ``OS_CLOUD``,
    else the ``OS_*`` variables), as the ``openstack`` CLI would make it.

    :raises UnknownCloud: no such cloud, or nothing describes one.
    """
    config = sdk_loader.OpenStackConfig(app_name=APP_NAME)
    name = name or os.environ.get('OS_CLOUD') or None
    if name is None and not os.environ.get('OS_AUTH_URL'):
        raise exception.UnknownCloud(cloud='(none given)',
                                     known=_known(config))
    try:
        region = config.get_one(cloud=name, region_name=region_name)
    except sdk_exc.ConfigException as exc:
        if name is not None and name not in config.get_cloud_names():
            raise exception.UnknownCloud(
                cloud=name, known=_known(config)) from exc
        raise exception.CloudUnavailable(
            cloud=name or 'from OS_* variables',
            reason=str(exc)) from exc
    return Connection(config=region)


def _known(config: sdk_loader.OpenStackConfig) -> str:
    clouds = [c for c in config.get_cloud_names() if c != 'envvars']
    searched = dict.fromkeys(os.path.dirname(f) for f in getattr(
        config, '_config_files', ()))
    where = config.config_filename or 'no clouds.yaml in %s' % ', '.join(
        searched)
    if not clouds:
        return ('no cloud is defined (%s); give --os-cloud NAME of '
                'clouds.yaml or set OS_AUTH_URL and the other OS_* '
                'variables' % where)
    return 'clouds of %s: %s' % (where, ', '.join(sorted(clouds)))


def cloud_name(conn: Connection) -> str:
    """The name messages use for the connection's cloud."""
    region = conn.config
    name = getattr(region, 'name', None) or 'envvars'
    auth = region.config.get('auth', {}) or {}
    url = auth.get('auth_url') or auth.get('endpoint')
    return '%s (%s)' % (name, url) if url else str(name)


@contextlib.contextmanager
def errors(conn: Connection, what: str) -> Iterator[None]:
    """Turn auth failures and unreachable endpoints into one-line errors.

    :raises CloudUnavailable: for those; NotFound is left to the caller.
    """
    # keystoneauth logs a warning before it gives up on an unreachable
    # keystone; the one line raised here says it (--debug shows both).
    ksa_log = std_logging.getLogger('keystoneauth')
    saved = ksa_log.level
    if not ksa_log.isEnabledFor(std_logging.DEBUG):
        ksa_log.setLevel(std_logging.ERROR)
    try:
        yield
    except (ksa_exc.Unauthorized, sdk_exc.HttpException) as exc:
        status = getattr(exc, 'status_code', None) or getattr(
            exc, 'http_status', None)
        if isinstance(exc, sdk_exc.NotFoundException):
            raise
        if status in (401, 403) or isinstance(exc, ksa_exc.Unauthorized):
            raise exception.CloudUnavailable(
                cloud=cloud_name(conn), reason=(
                    'the credentials were refused (HTTP %s) while %s; check '
                    'username, password, project and domain of the cloud'
                    % (status or 401, what))) from exc
        raise exception.CloudUnavailable(
            cloud=cloud_name(conn),
            reason='%s failed: %s' % (what, _one_line(exc))) from exc
    except (ksa_exc.ConnectionError, ksa_exc.DiscoveryFailure,
            ksa_exc.EndpointNotFound, ksa_exc.MissingAuthPlugin,
            ksa_exc.auth_plugins.MissingRequiredOptions,
            sdk_exc.SDKException) as exc:
        raise exception.CloudUnavailable(
            cloud=cloud_name(conn), reason='%s: cannot reach it: %s' % (
                what, _one_line(exc))) from exc
    finally:
        ksa_log.setLevel(saved)


# "Unable to establish connection to URL: HTTPConnectionPool(...)
# ... [Errno 111] Connection refused')": the URL and the errno are the news.
_URL = re.compile(r'^(.*? to \S+?):? HTTPConnectionPool')
_ERRNO = re.compile(r'\[Errno -?\d+\] [^"\')]+')


def _one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    url, errno = _URL.match(text), _ERRNO.search(text)
    if url and errno:
        return '%s (%s)' % (url.group(1), errno.group(0).strip())
    return text[:300] or type(exc).__name__


# -- looking things up -------------------------------------------------------

def _flavor(body: Any, extra_specs: Mapping[str, Any] | None = None
            ) -> Flavor:
    specs = extra_specs if extra_specs is not None else (
        getattr(body, 'extra_specs', None) or {})
    return Flavor(id=str(getattr(body, 'id', None) or ''),
                  name=str(getattr(body, 'name', None)
                           or getattr(body, 'original_name', None) or ''),
                  extra_specs={str(k): str(v) for k, v in specs.items()})


def _names(items: Any) -> str:
    names = sorted({str(getattr(i, 'name', '') or i.id) for i in items})
    more = ', ...' if len(names) > LIST_LIMIT else ''
    return ', '.join(names[:LIST_LIMIT]) + more if names else 'none'


def lookup_flavor(conn: Connection, name_or_id: str) -> Flavor:
    """The flavor called or numbered ``name_or_id``, with its extra specs.

    :raises CloudObjectNotFound: no such flavor (the message lists them).
    :raises CloudUnavailable: auth refused, nova unreachable.
    """
    with errors(conn, 'looking up flavor %r' % name_or_id):
        found = conn.compute.find_flavor(name_or_id, ignore_missing=True,
                                         get_extra_specs=True)
        if found is None:
            raise exception.CloudObjectNotFound(
                kind='flavor', value=name_or_id, cloud=cloud_name(conn),
                valid='flavors: ' + _names(conn.compute.flavors()))
        return _flavor(found)


def lookup_server(conn: Connection, name_or_id: str) -> Server:
    """The server called or with uuid ``name_or_id`` (any project when the
    credentials are an admin's), with the flavor it runs with.

    :raises CloudObjectNotFound: no such server, or the name is ambiguous.
    :raises CloudUnavailable: auth refused, nova unreachable.
    """
    with errors(conn, 'looking up server %r' % name_or_id):
        try:
            found = conn.compute.find_server(
                name_or_id, ignore_missing=True, all_projects=True)
        except sdk_exc.DuplicateResource as exc:
            raise exception.CloudObjectNotFound(
                kind='server', value=name_or_id, cloud=cloud_name(conn),
                valid='several servers have that name; give its '
                'UUID') from exc
        if found is None:
            raise exception.CloudObjectNotFound(
                kind='server', value=name_or_id, cloud=cloud_name(conn),
                valid='servers: ' + _names(
                    conn.compute.servers(all_projects=True)))
        server = conn.compute.get_server(found.id)
        embedded = server.flavor
        # Compute API >= 2.47 embeds the flavor with its extra specs; the
        # flavor's own record may have been changed or deleted since.
        flavor = _flavor(embedded) if embedded is not None else Flavor(
            '', '', {})
        return Server(id=str(server.id), name=str(server.name or ''),
                      project_id=str(server.project_id or ''),
                      host=server.compute_host, status=str(server.status),
                      flavor=flavor)


def names(conn: Connection, *, projects: bool = True,
          servers: bool = True) -> dict[str, str]:
    """id -> name of every project and server the credentials can see.

    Best effort for display: a service the credentials may not list
    contributes nothing (logged at debug).

    :raises CloudUnavailable: auth refused, the cloud unreachable.
    """
    found: dict[str, str] = {}
    if projects:
        with errors(conn, 'listing projects'):
            try:
                identity: Any = conn.identity  # v3: projects
                found.update({p.id: p.name for p in identity.projects()})
            except sdk_exc.ForbiddenException:
                LOG.debug("projects not listable with these credentials")
    if servers:
        with errors(conn, 'listing servers'):
            try:
                found.update({s.id: s.name for s in
                              conn.compute.servers(all_projects=True)})
            except sdk_exc.ForbiddenException:
                found.update({s.id: s.name for s in conn.compute.servers()})
    return found
