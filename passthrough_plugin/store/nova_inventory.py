"""The placement driver beside nova's PCI inventory: reports, no providers."""

from __future__ import annotations

from collections.abc import Callable

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import placement as placement_conf
from passthrough_plugin.conf import placement_store as placement_store_conf
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base
from passthrough_plugin.store import file as file_store
from passthrough_plugin.store.placement import mapping
from passthrough_plugin.store.placement import sync
from passthrough_plugin.store.placement.client import PlacementClient

LOG = logging.getLogger(__name__)

OWN = 'own'
NOVA = 'nova'


def mode(conf: cfg.ConfigOpts) -> str:
    """``[placement_store] inventory``: ``own`` or ``nova``."""
    placement_store_conf.register_opts(conf)
    return str(conf.placement_store.inventory)


def select(conf: cfg.ConfigOpts,
           own: Callable[[cfg.ConfigOpts], base.ReportStore]
           ) -> base.ReportStore:
    """The store ``[report_store] driver = placement`` stands for; says
    which inventory mode it runs in, once, when the process loads it."""
    store_conf.register_opts(conf)
    if mode(conf) == NOVA:
        LOG.info("Report store placement, [placement_store] inventory = "
                 "nova: nova's PCI providers are the only PCI inventory; "
                 "no provider of ours is written, host reports are kept "
                 "in %s", conf.file_store.path)
        return NovaInventoryStore(conf)
    LOG.info("Report store placement, [placement_store] inventory = own: "
             "the agent writes its own PCI providers "
             "(<host>:passthrough:<address>) and claims are allocations on "
             "them (deployments without nova)")
    return own(conf)


class NovaInventoryStore(file_store.FileReportStore):
    """Host reports in ``[file_store] path``, and nothing in Placement.

    nova's PCI providers (``[pci] report_in_placement``) hold the
    inventory and nova claims the devices there; a second inventory of
    the agent's would offer every device twice. What nova lacks (IOMMU
    groups and viability, drivers, devices held by hot-plug, hot-plug
    extras) stays in the host report, keyed by host and PCI address, as
    the file store keeps it; PciPoolFilter joins it with nova's pools.

    On the first publish of a host the store looks at Placement once:
    it deletes the providers an earlier ``inventory = own`` run left there
    (unless allocated: those are kept and named in the log), and warns when
    nova has no PCI provider under the host (nova's ``[pci]
    report_in_placement`` is off). Placement being unreachable delays that
    look to a later publish; the report is stored either way.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 client: PlacementClient | None = None) -> None:
        super().__init__(conf)
        placement_conf.register_opts(conf)
        self._client = client
        self._looked: set[str] = set()

    def publish(self, report: report_mod.HostReport) -> int:
        """Store the report; no Placement write but the cleanup above.

        :raises: StoreUnavailable, InvalidHostReport
        """
        if report.host not in self._looked:
            self._look(report.host)
        return super().publish(report)

    def _look(self, host: str) -> None:
        try:
            client = self._client
            if client is None:
                client = self._client = PlacementClient.from_conf(self.conf)
            root = client.find_provider(host)
            if root is None:
                LOG.warning('%s: Placement has no compute node provider of '
                            'that name yet; nova-compute creates it', host)
                return
            ours = sorted(
                (rp.name, rp) for rp in client.list_providers(
                    in_tree=root.uuid) if mapping.split_name(rp.name))
            for name, rp in ours:
                try:
                    client.delete_provider(rp.uuid)
                    LOG.info('%s: deleted provider %s ([placement_store] '
                             'inventory = nova: nova\'s providers are the '
                             'inventory)', host, name)
                except exception.PlacementConflict:
                    LOG.warning('%s: provider %s of an earlier [placement_'
                                'store] inventory = own run is still '
                                'allocated; kept until its consumers go, '
                                'then delete it by hand', host, name)
            nova = sync.with_trait(client, mapping.NOVA_MANAGED,
                                   in_tree=root.uuid)
        except exception.PassthroughException as exc:
            LOG.warning('%s: cannot look at Placement (%s); the host report '
                        'is stored, the look is tried again at the next '
                        'publish', host, exc.message)
            return
        self._looked.add(host)
        if not nova:
            LOG.warning("%s: [placement_store] inventory = nova, but nova "
                        "has no PCI provider under this host in Placement: "
                        "set [pci] report_in_placement = True in the host's "
                        "nova.conf, else no PCI device of it can be "
                        "scheduled", host)
        else:
            LOG.info('%s: nova reports %d PCI providers in Placement',
                     host, len(nova))
