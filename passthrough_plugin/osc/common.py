"""What every ``openstack pci`` command shares: settings, errors, columns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from osc_lib import exceptions as osc_exc
from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import formatting
from passthrough_plugin.osc import settings as settings_mod

Columns = Sequence[tuple[str, str]]  # (key, heading), as lifecycle.formatting


def settings(app: Any) -> settings_mod.PluginSettings:
    """The plugin's settings of this OSC run (``make_client``'s answer)."""
    found = app.client_manager.passthrough
    assert isinstance(found, settings_mod.PluginSettings)
    return found


def conf(app: Any) -> cfg.ConfigOpts:
    """The plugin configuration. :raises: CommandError (a bad file)."""
    with errors():
        return settings(app).conf


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Our exceptions become OSC's CommandError: one line, exit 1."""
    try:
        yield
    except exception.PassthroughException as exc:
        raise osc_exc.CommandError(str(exc)) from None
    except cfg.Error as exc:
        raise osc_exc.CommandError(str(exc)) from None


def lister(rows: Sequence[dict[str, Any]], columns: Columns,
           ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """(headings, rows) for a cliff Lister from dict rows."""
    return (tuple(h for _k, h in columns),
            [tuple(formatting.jsonable(row.get(k)) for k, _h in columns)
             for row in rows])
