"""Registering option groups so that ConfigOpts objects share nothing."""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg


def register(conf: cfg.ConfigOpts, group: cfg.OptGroup,
             opts: Sequence[cfg.Opt]) -> None:
    """Register ``opts`` under a fresh copy of ``group`` on ``conf``.

    ConfigOpts.register_group keeps a shallow copy of the group, whose
    option table (holding set_override values) would otherwise be shared by
    every ConfigOpts the module-level group is registered in: an override
    in one test or one engine would leak into the others.

    When ``conf`` has the group already, only the options it lacks are
    added: inside nova-scheduler nova owns ``[pci]`` and ``[placement]``
    (same names, its own definitions), and registering ours over them
    would fail as duplicates.
    """
    if group.name in conf:
        present = set(conf[group.name])
        for opt in opts:
            if opt.dest not in present:
                conf.register_opt(opt, group=group.name)
        return
    fresh = cfg.OptGroup(group.name, title=group.title, help=group.help)
    conf.register_group(fresh)
    conf.register_opts(opts, group=fresh)
