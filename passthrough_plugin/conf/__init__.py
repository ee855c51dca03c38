"""oslo.config option groups, one module per group.

Nothing registers on import: callers pass their own ``ConfigOpts`` to
:func:`register_all` (or a group module's ``register_opts``).
"""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import opts


def register_all(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register every option group of the plugin on ``conf``."""
    for module in opts.GROUP_MODULES:
        module.register_opts(conf)
    return conf
