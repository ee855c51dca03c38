"""[placement_store]: how the placement report store behaves (not how it
reaches Placement: that is ``[placement]``)."""

from __future__ import annotations

from oslo_config import cfg

from passthrough_plugin.conf import groups

placement_store_group = cfg.OptGroup(
    'placement_store',
    title='Placement report store',
    help='Behaviour of the ``placement`` report store ([report_store] '
         'driver = placement): retries, candidate limits, claim identity.')

placement_store_opts: list[cfg.Opt] = [
    cfg.IntOpt(
        'candidate_limit',
        default=1000,
        min=1,
        help="""
At most this many allocation candidates are asked of Placement per
scheduling request (the ``limit`` of ``GET /allocation_candidates``). The
plugin refines every candidate host with its own rules, so a low value
may hide hosts that fit; a high one costs Placement time on large clouds.

Related options:

* ``[report_store] driver``
"""),
    cfg.FloatOpt(
        'candidates_max_age',
        default=60.0,
        min=0.0,
        help="""
Seconds the scheduler keeps an allocation-candidates answer of Placement
to claim from. Within that time a claim costs one Placement call (``PUT
/allocations/{consumer}``): the kept answer is updated with the
scheduler's own claims and releases; it is asked afresh when Placement
refuses a claim on one of its providers (HTTP 409: another scheduler took
the room), when a provider generation moves by more than the scheduler's
own writes, and after this age. A request that fits no host of a kept
answer is asked afresh before it is refused. Placement checks capacity on
every claim, so a kept answer can cost a retry, never an overcommit.
``0`` asks Placement for candidates on every claim.

Related options:

* ``[placement_store] candidate_limit``
"""),
    cfg.IntOpt(
        'host_subset_size',
        default=1,
        min=1,
        help="""
A claim goes to a host picked at random among this many best-ranked hosts
(then the others, best first), as nova's ``[filter_scheduler]
host_subset_size`` does. With several schedulers claiming at once from
answers they keep, ``1`` (always the best host) makes them all write to
the same provider, where Placement serialises the writes and sends the
losers back (HTTP 409); a few hosts of choice spread the writes at the
cost of a less tight packing.

Related options:

* ``[placement_store] candidates_max_age``
* ``[passthrough_scheduler] weigh_strategy``
"""),
    cfg.IntOpt(
        'publish_attempts',
        default=3,
        min=1,
        help="""
How many times the agent tries one publish when Placement cannot be
reached, with ``publish_backoff`` seconds (doubling) between tries. When
all fail, the agent keeps its report and tries again at its next scan
(``[agent] scan_interval``); nothing is lost.

Related options:

* ``[placement_store] publish_backoff``
"""),
    cfg.FloatOpt(
        'publish_backoff',
        default=1.0,
        min=0.0,
        help="""
Seconds before the second publish attempt; doubles per attempt, at most
30 seconds.

Related options:

* ``[placement_store] publish_attempts``
"""),
    cfg.BoolOpt(
        'create_compute_node',
        default=True,
        help="""
Whether the agent creates the host's compute node provider (named
``[agent] host``) when Placement has none. Set it to False on nova compute
hosts: nova-compute creates that provider with its own uuid and would fail
if the agent had created one of the same name first; the agent then waits
(its publish fails with a message saying so, and the next scan tries
again) until nova-compute has registered the host.

Related options:

* ``[agent] host``
"""),
    cfg.StrOpt(
        'inventory',
        default='own',
        choices=[
            ('own', 'the agent writes its own PCI providers; deployments '
                    'without nova (the standalone scheduler)'),
            ('nova', 'nova reports PCI in Placement; the agent writes no '
                     'provider, its facts go to the host reports'),
        ],
        help="""
Who writes the PCI inventory into Placement when ``[report_store] driver
= placement``. There is one inventory per device, never two.

* ``own``: for deployments **without nova** (the standalone scheduler,
  ``passthrough-scheduler``). The agent writes one provider per PF and per
  type-PCI device, named ``<host>:passthrough:<address>``, under the host's
  compute node provider, and the scheduler claims devices there with
  allocations. The agent refuses to publish a host whose compute node
  already holds nova's PCI providers (trait ``COMPUTE_MANAGED_PCI_DEVICE``).
* ``nova``: for **nova deployments** with nova's ``[pci]
  report_in_placement = True`` and ``[filter_scheduler] pci_in_placement =
  True``. nova's PCI providers are the only inventory and nova claims the
  devices. The agent writes no provider (and deletes the unallocated ones
  an earlier ``own`` run left); it keeps its host reports, with what nova
  does not know (IOMMU groups and their viability, drivers, devices held
  by hot-plug, hot-plug extras), in ``[file_store] path``, keyed by host
  and PCI address, where PciPoolFilter joins them with nova's pools.
  Agents and nova-scheduler must share that directory.

Each process logs the mode once when it loads the store.

Related options:

* ``[report_store] driver``
* ``[file_store] path``
* nova.conf ``[pci] report_in_placement``
"""),
    cfg.IntOpt(
        'claim_attempts',
        default=5,
        min=1,
        help="""
How many times a claim re-reads a consumer's allocations when another
writer changed them meanwhile (a consumer generation conflict) before
giving up on the host.
"""),
    cfg.StrOpt(
        'project_id',
        default='passthrough-plugin',
        help="""
The project recorded on allocations written by the standalone scheduler
(``passthrough-scheduler claim``) for a consumer that Placement does not
know yet. Inside nova the instance's own project is used.
"""),
    cfg.StrOpt(
        'user_id',
        default='passthrough-plugin',
        help="""
The user recorded on allocations of a consumer Placement does not know
yet; see ``[placement_store] project_id``.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, placement_store_group, placement_store_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    return {placement_store_group: placement_store_opts}
