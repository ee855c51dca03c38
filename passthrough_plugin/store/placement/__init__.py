"""The ``placement`` report store: devices as providers in a real Placement.

Modules: ``store`` (the ReportStore), ``client`` (HTTP calls), ``mapping``
(report -> providers), ``sync`` (publishing), ``claims`` (allocations),
``query`` / ``view`` (allocation candidates), ``types`` (shared records).
"""

from __future__ import annotations

# The setup.cfg entry point names the package: keep the class reachable here.
from passthrough_plugin.store.placement.store import PlacementReportStore

__all__ = ["PlacementReportStore"]
