"""The one exception hierarchy of passthrough-plugin."""

from __future__ import annotations

from typing import Any


class PassthroughException(Exception):
    """Base exception: formats ``msg_fmt`` with the keyword arguments.

    Subclasses set ``msg_fmt``; callers pass the named values, so every
    message names the item, the field, the value and what would be valid.
    """

    msg_fmt = "An unknown error occurred."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # A programming error in a caller must not hide the original
                # problem: fall back to the format and the raw arguments.
                message = "%s (%r)" % (self.msg_fmt, kwargs)
        self.message = message
        super().__init__(message)


# -- invalid input -----------------------------------------------------------

class Invalid(PassthroughException):
    msg_fmt = "Invalid input: %(reason)s"


class InvalidPciAddress(Invalid):
    msg_fmt = ("Invalid PCI address %(value)r in %(field)s: %(reason)s; "
               "expected DDDD:BB:SS.F or BB:SS.F with domain <= ffff, "
               "bus <= ff, slot <= 1f and function <= 7")


class InvalidDeviceSpec(Invalid):
    msg_fmt = "Invalid %(item)s: %(reason)s"


class InvalidAlias(Invalid):
    msg_fmt = "Invalid %(item)s: %(reason)s"


class InvalidExtraSpec(Invalid):
    msg_fmt = "Invalid flavor extra spec %(key)s=%(value)r: %(reason)s"


class UnknownAlias(InvalidExtraSpec):
    msg_fmt = ("Invalid flavor extra spec %(key)s=%(value)r: alias "
               "%(alias)r is not defined in [pci] alias; defined aliases: "
               "%(known)s")


class InvalidHostReport(Invalid):
    msg_fmt = ("Invalid host report for %(host)s at %(path)s: "
               "%(reason)s")


class InvalidConfig(Invalid):
    msg_fmt = ("Invalid configuration [%(group)s] %(option)s=%(value)r: "
               "%(reason)s")


# -- report stores ---------------------------------------------------------

class StoreError(PassthroughException):
    msg_fmt = "Report store error: %(reason)s"


class HostReportNotFound(StoreError):
    msg_fmt = "No host report for host %(host)s in the %(store)s store"


class GenerationConflict(StoreError):
    msg_fmt = ("Host %(host)s changed under us: expected generation "
               "%(expected)s, the store has %(actual)s")


class ClaimFailed(StoreError):
    msg_fmt = ("Claim for consumer %(consumer)s on host %(host)s failed: "
               "%(reason)s")


class StoreUnavailable(StoreError):
    msg_fmt = "The %(store)s report store is unavailable: %(reason)s"


# -- host side -------------------------------------------------------------

class AgentError(PassthroughException):
    msg_fmt = "Agent error: %(reason)s"


class SysfsError(AgentError):
    msg_fmt = "sysfs error at %(path)s: %(reason)s"


class DeviceNotFound(AgentError):
    msg_fmt = "PCI device %(address)s not found under %(root)s"


class BindError(AgentError):
    msg_fmt = "Cannot bind %(address)s to %(driver)s: %(reason)s"


class DeviceBusy(BindError):
    msg_fmt = ("Refusing to bind %(address)s to %(driver)s: %(reason)s "
               "(use --force to override)")


class GroupNotViable(BindError):
    msg_fmt = ("Cannot bind %(address)s to %(driver)s: IOMMU group "
               "%(group)s member %(member)s %(reason)s")


class VfConfigError(AgentError):
    msg_fmt = "Cannot set %(num_vfs)s VFs on %(address)s: %(reason)s"


# -- lifecycle -------------------------------------------------------------

class LedgerError(PassthroughException):
    msg_fmt = "Ledger error: %(reason)s"


# -- placement -------------------------------------------------------------

class PlacementError(StoreError):
    msg_fmt = ("Placement %(method)s %(path)s failed with HTTP %(status)s "
               "(%(code)s): %(detail)s")


class PlacementNotFound(PlacementError):
    pass


class PlacementConflict(PlacementError):
    pass


class ProviderGenerationConflict(PlacementConflict):
    msg_fmt = ("Resource provider %(provider)s kept changing under us: "
               "%(what)s not written after %(attempts)s attempts "
               "(%(detail)s)")


class ConsumerGenerationConflict(PlacementConflict):
    msg_fmt = ("Allocations of consumer %(consumer)s changed under us: "
               "we sent consumer_generation %(sent)s; %(detail)s; re-read "
               "the allocations and retry")


class PlacementCapacityExceeded(PlacementConflict):
    msg_fmt = ("Placement refused allocations for consumer %(consumer)s: "
               "%(detail)s")


class PlacementUnavailable(StoreUnavailable):
    msg_fmt = "The placement report store is unavailable: %(reason)s"


# -- lifecycle ledger (issue 6) ----------------------------------------------

class LedgerUnavailable(LedgerError):
    msg_fmt = "The ledger at %(url)s cannot be opened: %(reason)s"


class UnknownInstance(LedgerError):
    msg_fmt = ("Unknown instance %(value)r in %(field)s: the ledger has "
               "no record of it%(hint)s")


class InvalidLedgerInput(Invalid):
    msg_fmt = "Invalid %(field)s %(value)r: %(reason)s"


class HotplugRefused(LedgerError):
    msg_fmt = ("Hotplug of %(request)s into instance %(instance)s on host "
               "%(host)s refused (%(reason)s): %(detail)s")


class EvacuateRefused(LedgerError):
    msg_fmt = ("Evacuation of instance %(instance)s to host %(host)s "
               "refused (%(reason)s): %(detail)s")


class DomainXmlError(LedgerError):
    msg_fmt = "Cannot read the domain XML of %(source)s: %(reason)s"


# -- host agent (issue 4) ----------------------------------------------------

class InvalidVfCount(VfConfigError, Invalid):
    """A VF count outside 0..sriov_totalvfs: bad operator input."""


class ResizeRefused(LedgerError):
    msg_fmt = ("Resize of instance %(instance)s to host %(host)s refused "
               "(%(reason)s): %(detail)s")


# -- placement report store (issue 5) ----------------------------------------

class PlacementRequestNotExpressible(Invalid):
    msg_fmt = ("Alias %(alias)s cannot be asked of Placement: %(reason)s; "
               "give each alternative of the alias the same resource_class "
               "(or vendor_id and product_id of one device model)")


class NovaPciInPlacement(StoreError):
    msg_fmt = ("Host %(host)s: nova reports its PCI devices in Placement "
               "itself (providers %(providers)s carry "
               "COMPUTE_MANAGED_PCI_DEVICE): one inventory per device; "
               "set [placement_store] inventory = nova (nova's providers "
               "are the inventory, the agent writes none) or turn off "
               "nova's [pci] report_in_placement on that host")


class NoComputeNodeProvider(StoreError):
    msg_fmt = ("Placement at %(endpoint)s has no compute node provider "
               "named %(host)s and [placement_store] create_compute_node "
               "is False: start nova-compute on the host first, or make "
               "[agent] host equal nova's hypervisor hostname")


class HotplugFailed(AgentError):
    msg_fmt = ("%(action)s of %(what)s for instance %(instance)s failed at "
               "step %(step)s: %(reason)s; %(undo)s")


# -- OpenStack clouds (openstacksdk) ------------------------------------------

class CloudError(PassthroughException):
    msg_fmt = "OpenStack cloud error: %(reason)s"


class UnknownCloud(CloudError, Invalid):
    msg_fmt = "Unknown cloud %(cloud)s: %(known)s"


class CloudUnavailable(CloudError):
    msg_fmt = "Cannot use cloud %(cloud)s: %(reason)s"


class CloudObjectNotFound(CloudError, Invalid):
    msg_fmt = "No %(kind)s %(value)r in cloud %(cloud)s; %(valid)s"
