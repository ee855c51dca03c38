"""[placement]: how the plugin reaches the Placement API (keystoneauth)."""

from __future__ import annotations

from typing import Any

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_config import types

from passthrough_plugin.conf import groups

GROUP_NAME = 'placement'
DEFAULT_SERVICE_TYPE = 'placement'
# A request that hangs must not stall the agent or the scheduler for ever:
# used when the operator leaves ``[placement] timeout`` unset.
DEFAULT_TIMEOUT = 30.0

# The version pins are the code's business, not the operator's (as in nova);
# keystoneauth's adapter loader still reads them, hence ignored stand-ins.
_ADAPTER_VERSION_OPTS = ('version', 'min_version', 'max_version')

_GROUP_HELP = """
How the ``placement`` report store (``[report_store] driver =
placement``) reaches the OpenStack Placement API. These are the
standard keystoneauth session, auth and adapter options, with the
same names as nova's own ``[placement]`` group, so the section of an
existing nova.conf can be copied unchanged. When the plugin runs
inside nova-scheduler it shares nova's ``[placement]`` options.

Production, with keystone::

    [placement]
    auth_type = password
    auth_url = https://keystone.example.com/v3
    username = placement-plugin
    password = secret
    project_name = service
    user_domain_name = Default
    project_domain_name = Default
    valid_interfaces = internal
    region_name = RegionOne

A development Placement with ``[api] auth_strategy = noauth2``::

    [placement]
    auth_type = admin_token
    endpoint = http://127.0.0.1:8778
    token = admin

When ``timeout`` is unset, requests time out after 30 seconds.
"""


placement_group = cfg.OptGroup(GROUP_NAME, title='Placement service',
                               help=_GROUP_HELP)


class _Ignored(types.ConfigType):
    """Type of the version stand-ins: whatever is set reads as unset."""

    def __init__(self) -> None:
        super().__init__(type_name='ignored')

    def __call__(self, value: Any) -> None:
        return None

    def _formatter(self, value: Any) -> str:
        return ''


# One instance, so registering the stand-ins twice registers equal options.
_IGNORED = _Ignored()


def _session_opts() -> list[cfg.Opt]:
    return list(ks_loading.get_session_conf_options())


def _auth_opts() -> list[cfg.Opt]:
    return list(ks_loading.get_auth_common_conf_options())


def _adapter_opts() -> list[cfg.Opt]:
    opts = [opt for opt in ks_loading.get_adapter_conf_options(
        include_deprecated=False) if opt.dest not in _ADAPTER_VERSION_OPTS]
    cfg.set_defaults(opts, valid_interfaces=['internal', 'public'],
                     service_type=DEFAULT_SERVICE_TYPE)
    return opts


def _version_stand_ins() -> list[cfg.Opt]:
    return [cfg.Opt(name, type=_IGNORED) for name in _ADAPTER_VERSION_OPTS]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the keystoneauth options of ``[placement]`` on ``conf``.

    Inside nova-scheduler nova has registered the same keystoneauth options
    (with its own ignored version stand-ins): those are left as they are.
    """
    groups.register(conf, placement_group,
                    _session_opts() + _auth_opts() + _adapter_opts()
                    + _version_stand_ins())


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    """The options for the sample config: session, auth, password, adapter.

    The options of the chosen ``auth_type`` plugin are registered by
    keystoneauth when the client loads; the sample shows the ``password``
    plugin's, the usual one in production.
    """
    opts: list[cfg.Opt] = (
        _session_opts() + _auth_opts()
        + list(ks_loading.get_auth_plugin_conf_options('password'))
        + _adapter_opts())
    return {placement_group: opts}


def session_kwargs(conf: cfg.ConfigOpts) -> dict[str, Any]:
    """Keyword arguments that fill what the operator left unset."""
    group = conf[GROUP_NAME]
    if group.timeout is None:
        return {'timeout': DEFAULT_TIMEOUT}
    return {}
