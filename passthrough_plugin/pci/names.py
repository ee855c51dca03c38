"""Placement resource class and trait names, normalised as nova does."""

from __future__ import annotations

from collections.abc import Iterable

import os_resource_classes
import os_traits

# Placement: a resource class name has at most 255 characters.
MAX_NAME = 255

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


def check_resource_class(requested: str) -> str:
    """The resource class ``requested`` names, by Placement's rules.

    :raises: ValueError when the name normalises to nothing (``!!!`` and
        ``ГПУ`` would both be ``CUSTOM__``) or is longer than Placement
        allows.
    """
    name = resource_class(requested, '', '')
    if name not in os_resource_classes.STANDARDS and not any(
            c.isalnum() for c in name[len('CUSTOM_'):]):
        raise ValueError(
            'resource class %r has no letter or digit of A-Z, 0-9 (it would '
            'become %s); use letters, digits and "_", e.g. CUSTOM_GPU_A100'
            % (requested[:60], name))
    if len(name) > MAX_NAME:
        raise ValueError('resource class %r... is %d characters long as %s; '
                         'Placement allows at most %d' % (
                             requested[:60], len(name), name[:20], MAX_NAME))
    return name


def check_collisions(requested: dict[str, str]) -> None:
    """Refuse two different names that normalise to one resource class.

    ``requested`` maps each name as written to where it was written.

    :raises: ValueError naming both names and where they are.
    """
    seen: dict[str, str] = {}
    for raw, where in requested.items():
        name = resource_class(raw, '', '')
        first = seen.setdefault(name, raw)
        if first.upper() != raw.upper():
            raise ValueError(
                'resource classes %r (%s) and %r (%s) both become %s; give '
                'them names that differ in letters or digits' % (
                    first[:60], requested[first], raw[:60], where, name))


def class_problem(named: Iterable[tuple[str, str]]
                  ) -> tuple[str, str] | None:
    """The first bad or colliding resource class of (item, name) pairs.

    Returns (item, reason) or None; ``item`` labels are cut at the entry's
    JSON (``[pci] alias value 2 {...}`` -> ``[pci] alias value 2``) where
    they name the other entry.
    """
    seen: dict[str, str] = {}
    for item, raw in named:
        try:
            check_resource_class(raw)
            seen.setdefault(raw, item.split(' {')[0])
            check_collisions(seen)
        except ValueError as exc:
            return item, str(exc)
    return None


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
