"""The ``openstack.cli.extension`` module OSC loads: options and client."""

from __future__ import annotations

import argparse
import os
from typing import Any

from oslo_log import log as logging

from passthrough_plugin.osc import settings

LOG = logging.getLogger(__name__)

# OSC looks for these names; the command group is openstack.passthrough.v1.
API_NAME = 'passthrough'
API_VERSION_OPTION = 'os_passthrough_api_version'
DEFAULT_API_VERSION = '1'
API_VERSIONS = ('1',)


def make_client(instance: Any) -> settings.PluginSettings:
    """The plugin's "client": its own settings, read once per OSC run.

    ``instance`` is OSC's ClientManager; the OpenStack side (flavors,
    servers) comes from ``instance.sdk_connection`` in the commands.
    """
    options = getattr(instance, '_cli_options', None)
    config = getattr(options, 'config', None) or {}
    path = config.get('passthrough_config_file') or settings.default_path()
    LOG.debug('passthrough-plugin settings from %s', path)
    return settings.PluginSettings(path)


def build_option_parser(parser: argparse.ArgumentParser
                        ) -> argparse.ArgumentParser:
    """Add the plugin's global options to the ``openstack`` parser."""
    parser.add_argument(
        '--os-passthrough-api-version', metavar='<version>',
        default=os.environ.get('OS_PASSTHROUGH_API_VERSION'),
        help='passthrough-plugin command set version (only 1); '
        'default: env[OS_PASSTHROUGH_API_VERSION] or 1')
    parser.add_argument(
        '--passthrough-config-file', metavar='<path>',
        default=os.environ.get(settings.ENV_VAR),
        help='the passthrough-plugin configuration file ([report_store], '
        '[file_store], [placement], [pci] alias, [lifecycle] connection) '
        'read by the "openstack pci" commands; default: env[%s] or %s'
        % (settings.ENV_VAR, settings.DEFAULT_PATH))
    return parser
