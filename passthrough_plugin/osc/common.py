"""What every ``openstack pci`` command shares: settings, errors, columns."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from cliff import columns
from osc_lib import exceptions as osc_exc
from oslo_config import cfg

from passthrough_plugin import connection as cloud_layer
from passthrough_plugin import exception
from passthrough_plugin.lifecycle import formatting
from passthrough_plugin.osc import settings as settings_mod

Columns = Sequence[tuple[str, str]]  # (key, heading), as lifecycle.formatting


def settings(app: Any) -> settings_mod.PluginSettings:
    """The plugin's settings of this OSC run.

    Read from the parsed global options rather than through
    ``client_manager.passthrough``: osc-lib caches a plugin's client on
    the ClientManager class, so a second run in the same process (OSC's
    interactive mode, tests) would get the first run's file.
    """
    path = getattr(app.options, 'passthrough_config_file', None)
    return settings_mod.PluginSettings(path or settings_mod.default_path())


def conf(app: Any) -> cfg.ConfigOpts:
    """The plugin configuration. :raises: CommandError (a bad file)."""
    with errors():
        return settings(app).conf


def connection(app: Any) -> Any:
    """The OSC client manager's openstacksdk connection, authenticated.

    Commands that work offline (``auth_required = False``) call this only
    when they do need the cloud, e.g. to look a server up by name; the
    credentials are then checked as for any OSC command.
    """
    manager = app.client_manager
    if not manager._auth_required:  # noqa: SLF001 - OSC's own switch
        manager._auth_required = True  # noqa: SLF001
        manager.setup_auth()
    return manager.sdk_connection


def has_cloud(app: Any) -> bool:
    """Whether the ``openstack`` CLI was given a cloud to talk to
    (``--os-cloud``, clouds.yaml, ``OS_AUTH_URL``...)."""
    config = getattr(getattr(app, 'cloud', None), 'config', None) or {}
    # Unvalidated (auth_required = False), OS_AUTH_URL and --os-auth-url
    # stay at the top; a clouds.yaml entry has them under auth.
    found = dict(config.get('auth') or {}, **config)
    return bool(found.get('auth_url') or found.get('endpoint'))


def add_ledger_options(parser: argparse.ArgumentParser, names: str) -> None:
    """``--no-names`` and ``--ledger``, for the commands that read the
    ledger; ``names`` says which names a cloud adds (e.g. 'server')."""
    parser.add_argument(
        '--no-names', action='store_true',
        help='IDs only; by default the %s names are shown beside them '
        'when the openstack CLI has a cloud' % names)
    parser.add_argument(
        '--ledger', metavar='<url>',
        help='SQLAlchemy URL of the ledger (default: [lifecycle] '
        'connection of the plugin configuration)')


def named(app: Any, rows: Sequence[dict[str, Any]], columns: Columns, *,
          skip: bool = False) -> list[tuple[str, str]]:
    """``columns`` with a name column after the project and server IDs.

    Only when the CLI has a cloud (and not ``skip``): the names are what
    keystone and nova list for the credentials; an ID they do not know
    (a deleted server) gets an empty name. ``rows`` gain the name keys.

    :raises: CommandError (the cloud refused or cannot be reached).
    """
    keys = [key for key, _h in columns if key in ('project', 'instance')]
    if skip or not keys or not has_cloud(app):
        return list(columns)
    with errors():
        names = cloud_layer.names(connection(app),
                                  projects='project' in keys)
    out = []
    for key, heading in columns:
        out.append((key, heading))
        if key in keys:
            out.append((key + '_name', heading + ' name'))
            for row in rows:
                row[key + '_name'] = names.get(str(row.get(key)))
    return out


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Our exceptions become OSC's CommandError: one line, exit 1."""
    try:
        yield
    except exception.PassthroughException as exc:
        raise osc_exc.CommandError(str(exc)) from None
    except cfg.Error as exc:
        raise osc_exc.CommandError(str(exc)) from None


class Blank(columns.FormattableColumn[None]):
    """An unknown value: empty in a table, ``null`` in JSON and YAML."""

    def human_readable(self) -> str:
        return ''

    def machine_readable(self) -> None:
        return None


class YesNo(columns.FormattableColumn[bool]):
    """A boolean: yes/no in a table, true/false in JSON and YAML."""

    def human_readable(self) -> str:
        return 'yes' if self._value else 'no'

    def machine_readable(self) -> bool:
        return bool(self._value)


def cell(value: Any) -> Any:
    """A value as cliff formats it: ISO times, blank for None, yes/no."""
    if value is None:
        return Blank(None)
    if isinstance(value, bool):
        return YesNo(value)
    return formatting.jsonable(value)


def lister(rows: Sequence[dict[str, Any]], columns: Columns,
           ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """(headings, rows) for a cliff Lister from dict rows."""
    return (tuple(h for _k, h in columns),
            [tuple(cell(row.get(k)) for k, _h in columns) for row in rows])
