"""The tempest.test_plugins entry point of passthrough-plugin."""

from __future__ import annotations

import os

from oslo_config import cfg
from tempest.test_discover import plugins

from passthrough_tempest_plugin import config


class PassthroughTempestPlugin(plugins.TempestPlugin):
    """Loads the plugin's tests and its ``[passthrough]`` options."""

    def load_tests(self) -> tuple[str, str]:
        base_path = os.path.dirname(os.path.dirname(os.path.abspath(
            __file__)))
        test_dir = os.path.join(base_path, 'passthrough_tempest_plugin',
                                'tests')
        return test_dir, base_path

    def register_opts(self, conf: cfg.ConfigOpts) -> None:
        config.register_opts(conf)

    def get_opt_lists(self) -> list[tuple[str, list[cfg.Opt]]]:
        return config.list_opts()
