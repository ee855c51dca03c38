"""[passthrough_scheduler]: the filter, weigher and standalone engine."""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import groups

scheduler_group = cfg.OptGroup(
    'passthrough_scheduler',
    title='passthrough-plugin scheduler options',
    help="""
Options of PciPoolFilter, PciPoolWeigher and passthrough-scheduler.

Inside nova, ``[filter_scheduler] pci_in_placement = True`` (with ``[pci]
report_in_placement = True`` on the computes) lets PciPoolFilter choose the
devices, not only the hosts: see doc/nova.rst. Without it the filter
decides hosts only and refuses ``passthrough:vf_anti_affinity`` requests.
""")

scheduler_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        'weigh_strategy',
        default='pack',
        choices=[
            ('pack', 'Fill PFs that already have VFs in use and keep whole '
                     'PFs and whole IOMMU groups free.'),
            ('spread', 'Prefer the hosts with the most free devices.'),
        ],
        help="""
How the plugin chooses among the hosts, and devices, that fit a request
with PCI devices. Requests without PCI devices are always steered away from
PCI hosts.

Inside nova with PCI in Placement (``[filter_scheduler] pci_in_placement =
True``), PciPoolFilter also orders each host's allocation candidates by
this strategy, so the candidate nova claims (and the devices nova-compute
assigns) is the plugin's choice: ``pack`` takes VFs from PFs that already
serve VFs, breaks the fewest whole PFs and keeps whole IOMMU groups free;
``spread`` does the reverse. PciPoolWeigher weighs each host on the
candidate nova will claim. In classic mode (``pci_in_placement = False``)
only hosts are ranked: nova-compute picks the devices.

Related options:

* ``[passthrough_scheduler] weight_multiplier``
* ``[filter_scheduler] pci_in_placement`` (nova)
"""),
    cfg.FloatOpt(
        'weight_multiplier',
        default=1.0,
        min=0.0,
        help="""
Multiplier of PciPoolWeigher's normalised weight, as for nova's weighers.
``0`` disables the weigher; larger values let it outweigh the others.
Inside nova, a host aggregate's ``passthrough_weight_multiplier`` metadata
overrides it for the hosts of that aggregate.
"""),
    cfg.StrOpt(
        'missing_report',
        default='fail',
        choices=[
            ('fail', 'A host with no report fails PciPoolFilter; the reason '
                     '("<host> has no PCI report in the <driver> report '
                     'store") is logged at INFO.'),
            ('pass', 'A host with no report passes PciPoolFilter whatever '
                     'the request: nova\'s own data (PciPassthroughFilter, '
                     'Placement\'s allocation candidates) alone decide it. '
                     'Logged at DEBUG once per host per request.'),
        ],
        help="""
What PciPoolFilter does with a host that has no agent report in the report
store (no ``passthrough-agent`` there yet, or its report expired).

With ``pass`` the plugin adds nothing for such a host: none of its rules
(IOMMU groups, ``passthrough:vf_anti_affinity``, headroom) can be checked
there, and PciPoolWeigher ranks it below every host that has a report.
Use ``pass`` while rolling the agent out, or to keep nova's behaviour on
hosts without one; ``fail`` keeps PCI guests on hosts the plugin can vouch
for. The standalone ``passthrough-scheduler`` only considers hosts with a
report.

Related options:

* ``[report_store] driver``
"""),
    cfg.FloatOpt(
        'store_refresh_interval',
        default=1.0,
        min=0.0,
        help="""
Inside nova-scheduler: the longest time, in seconds, PciPoolFilter and
PciPoolWeigher answer from their summaries before asking the report store
for its generations again. A new request always asks (one cheap call, not
one per host); this bounds how stale the answers to a burst of requests
(e.g. several instances of one boot request) can be. ``0`` asks on every
host check.

Related options:

* ``[report_store] driver``
"""),
    cfg.IntOpt(
        'summary_cache_size',
        default=100000,
        min=1,
        help="""
How many per-host pool summaries the scheduler keeps in memory, keyed by the
report's generation, so a request reads the store only for hosts whose
report changed.
"""),
    cfg.BoolOpt(
        'nova_compatible_matching',
        default=False,
        help="""
Match the regular expressions of ``[pci] device_spec`` address dicts as
nova does: case-sensitive and anchored at the start only, so
``{"bus": "0"}`` also matches bus ``0a`` and ``{"bus": "0A"}`` matches
nothing. By default each expression must match the whole field, in any
case (``{"bus": "0A"}`` matches bus ``0a``). Turn it on when a device_spec
written for nova relies on nova's reading; doc/nova-differences.rst lists
every difference. Read by passthrough-agent, which applies device_spec.

Related options:

* ``[pci] device_spec``
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, scheduler_group, scheduler_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {scheduler_group: scheduler_opts}
