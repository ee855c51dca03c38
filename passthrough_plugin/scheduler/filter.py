"""PciPoolFilter: does a host's PCI report fit the request?"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.scheduler import nova_adapter
from passthrough_plugin.scheduler import plugin

LOG = logging.getLogger(__name__)


class PciPoolFilter(plugin.PluginBase):
    """Passes the hosts whose devices fit the request, IOMMU groups and all.

    Inside nova-scheduler it is a nova BaseHostFilter (see
    :func:`passthrough_plugin.scheduler.filters.all_filters`) and reads
    nova's CONF; standalone it takes a ConfigOpts and accepts host names and
    engine Requests.
    """

    # On a rebuild the instance stays where it is with the devices it has:
    # there is nothing to fit (nova then skips the filter, as for its own).
    RUN_ON_REBUILD = False

    def run_filter_for_index(self, index: int) -> bool:
        return True

    def filter_all(self, filter_obj_list: Iterable[Any],
                   spec_obj: Any) -> Iterator[Any]:
        for obj in filter_obj_list:
            if self._filter_one(obj, spec_obj):
                yield obj

    def _filter_one(self, obj: Any, spec_obj: Any) -> bool:
        # The rebuild check is in host_passes, on the request parsed once.
        return self.host_passes(obj, spec_obj)

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        """Never raises: a bad request or store fails the host, logged."""
        host = nova_adapter.host_name(host_state)
        if not self.RUN_ON_REBUILD and nova_adapter.is_request_spec(
                spec_obj) and spec_obj is not self._last_spec and \
                nova_adapter.is_rebuild(spec_obj):
            return True  # before any store access: nothing to fit
        try:
            request = self.request_for(spec_obj)
        except (exception.Invalid, exception.StoreError):
            return False  # logged once per request by request_for
        if request.rebuild and not self.RUN_ON_REBUILD:
            return True
        decision = self.engine.decide(host, request)
        if not decision.ok:
            LOG.info('%s rejected: %s', host, decision.detail_for(host))
        return decision.ok
