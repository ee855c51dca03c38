"""Placement resource class and trait names, normalised as nova does."""

from __future__ import annotations

import os_resource_classes
import os_traits

MANAGED_PCI_DEVICE = os_traits.COMPUTE_MANAGED_PCI_DEVICE
LIVE_MIGRATABLE = os_traits.HW_PCI_LIVE_MIGRATABLE


def resource_class(requested: str | None, vendor_id: str,
                   product_id: str) -> str:
    """The resource class of a device: the spec's, or CUSTOM_PCI_<V>_<P>."""
    if not requested:
        return 'CUSTOM_PCI_%s_%s' % (vendor_id.upper(), product_id.upper())
    name = requested.upper()
    if (name in os_resource_classes.STANDARDS
            or os_resource_classes.is_custom(name)):
        return name
    return str(os_resource_classes.normalize_name(name))


def traits(text: str | None) -> frozenset[str]:
    """Normalise a comma separated trait list (others become CUSTOM_)."""
    if not text:
        return frozenset()
    names = [t.strip() for t in text.split(',') if t.strip()]
    standard, rest = os_traits.check_traits(names)
    result = set(standard)
    for name in rest:
        name = name.upper()
        result.add(name if os_traits.is_custom(name)
                   else os_traits.normalize_name(name))
    return frozenset(result)
