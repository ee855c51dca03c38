"""The plugin's own settings inside OSC: which config file, read lazily."""

from __future__ import annotations

import os

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin import exception

LOG = logging.getLogger(__name__)

ENV_VAR = 'PASSTHROUGH_CONFIG_FILE'
DEFAULT_PATH = '/etc/passthrough-plugin/passthrough-plugin.conf'


def default_path() -> str:
    """``$PASSTHROUGH_CONFIG_FILE``, else the packaged location."""
    return os.environ.get(ENV_VAR) or DEFAULT_PATH


class PluginSettings:
    """The passthrough-plugin configuration the ``openstack pci`` commands use.

    The file is read on first use, so commands that do not need it (and
    ``openstack --help``) never touch it. A file named explicitly
    (``--passthrough-config-file`` or ``$PASSTHROUGH_CONFIG_FILE``) must
    exist; the default location may be absent, and then the built-in
    defaults apply.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conf: cfg.ConfigOpts | None = None

    @property
    def explicit(self) -> bool:
        return self.path != DEFAULT_PATH

    @property
    def conf(self) -> cfg.ConfigOpts:
        """Every option group of the plugin, loaded from :attr:`path`.

        :raises: InvalidConfig naming the file and what is wrong with it.
        """
        if self._conf is None:
            self._conf = load(self.path, required=self.explicit)
        return self._conf


def load(path: str, required: bool = True) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every plugin group, read from ``path``.

    :raises: InvalidConfig (missing when ``required``, unreadable,
        unparsable, not UTF-8).
    """
    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    files = [path] if required or os.path.exists(path) else []
    if not files:
        LOG.debug('%s does not exist; using the built-in defaults', path)
    try:
        conf(args=[], project='passthrough-plugin', prog='openstack',
             default_config_files=files, default_config_dirs=[],
             use_env=False)
    except cfg.ConfigFilesNotFoundError:
        raise exception.InvalidConfig(
            group='-', option='--passthrough-config-file', value=path,
            reason='no such file; give an existing passthrough-plugin '
            'configuration file (or set %s)' % ENV_VAR) from None
    except cfg.ConfigFileParseError as exc:
        raise exception.InvalidConfig(
            group='-', option='--passthrough-config-file', value=path,
            reason='not an oslo.config INI file: %s' % exc.msg) from None
    except UnicodeDecodeError:
        raise exception.InvalidConfig(
            group='-', option='--passthrough-config-file', value=path,
            reason='not UTF-8 text; an oslo.config INI file') from None
    except OSError as exc:  # a directory, no permission
        raise exception.InvalidConfig(
            group='-', option='--passthrough-config-file', value=path,
            reason='cannot read it: %s' % (exc.strerror or exc)) from None
    return conf
