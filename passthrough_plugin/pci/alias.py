"""``[pci] alias``: named device requests that flavors refer to."""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

import jsonschema

from passthrough_plugin import exception
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import jsonopt
from passthrough_plugin.pci import names

TYPE_PCI = 'type-PCI'
TYPE_PF = 'type-PF'
TYPE_VF = 'type-VF'
DEVICE_TYPES = (TYPE_PCI, TYPE_PF, TYPE_VF)
NUMA_POLICIES = ('required', 'legacy', 'preferred', 'socket')
DEFAULT_NUMA_POLICY = 'legacy'

# jsonschema uses re.search, where $ also matches before a final newline.
_ID = {'type': 'string', 'pattern': '^[0-9a-fA-F]{4}$(?!\n)'}
SCHEMA: dict[str, Any] = {
    'type': 'object',
    'additionalProperties': False,
    'properties': {
        'name': {'type': 'string', 'minLength': 1, 'maxLength': 256},
        'capability_type': {'type': 'string', 'enum': ['pci']},
        'product_id': _ID,
        'vendor_id': _ID,
        'device_type': {'type': 'string', 'enum': list(DEVICE_TYPES)},
        'numa_policy': {'type': 'string', 'enum': list(NUMA_POLICIES)},
        'resource_class': {'type': 'string', 'minLength': 1,
                           'maxLength': names.MAX_NAME},
        'traits': {'type': 'string'},
        'live_migratable': {'type': 'string'},
    },
    'required': ['name'],
}
_VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
# nova 34's alias schema: its id pattern (jsonschema applies it with
# re.search: \\d takes any Unicode digit and $ a final newline too) and
# any string as resource_class.
_NOVA_ID = {'type': 'string', 'pattern': '^([\\da-fA-F]{4})$'}
_NOVA_VALIDATOR = jsonschema.Draft7Validator(dict(SCHEMA, properties=dict(
    SCHEMA['properties'], vendor_id=_NOVA_ID, product_id=_NOVA_ID,
    resource_class={'type': 'string'})))
# nova reads resource_class only with [filter_scheduler] pci_in_placement.
NOVA_IGNORES_RC = (' (nova would have accepted it: without [filter_scheduler] '
                   'pci_in_placement it ignores resource_class)')


def nova_accepts(entry: Any) -> bool:
    """Whether nova 34 (PCI not in Placement) accepts this one entry."""
    if not isinstance(entry, dict) or any(
            True for _e in _NOVA_VALIDATOR.iter_errors(entry)):
        return False
    live = entry.get('live_migratable')
    return ('vendor_id' in entry and 'product_id' in entry
            and (live is None or device_spec.parse_bool(live) is not None))


def _describe(error: jsonschema.ValidationError, entry: Any) -> str:
    where = '.'.join(str(p) for p in error.absolute_path) or 'the entry'
    if error.validator == 'additionalProperties':
        allowed = ', '.join(sorted(SCHEMA['properties']))
        return '%s; allowed keys: %s' % (error.message, allowed)
    if error.validator == 'enum':
        allowed: list[Any] = list(error.validator_value)  # type: ignore
        return '%s %r is not one of %s' % (
            where, error.instance, ', '.join(map(str, allowed)))
    nova = nova_accepts(entry)
    if error.validator == 'pattern':
        return '%s %r must be exactly 4 hex digits%s' % (
            where, error.instance,
            _nova_id_note(str(error.instance)) if nova else '')
    note = NOVA_IGNORES_RC if nova and where == 'resource_class' else ''
    return '%s: %s%s' % (where, error.message, note)


def _nova_id_note(value: str) -> str:
    """What nova makes of an id this module refuses: it matches nothing."""
    fixed = ''.join(str(unicodedata.digit(c, 0)) if c.isdigit() else c
                    for c in value.rstrip('\n'))
    return (' (nova would have accepted it and matched no device with it; '
            'write %r)' % fixed)


@dataclasses.dataclass(frozen=True, slots=True)
class AliasSpec:
    """One alternative of an alias: what a matching device looks like."""

    vendor_id: int | None = None
    product_id: int | None = None
    dev_type: str | None = None
    resource_class: str | None = None
    traits: frozenset[str] = frozenset()
    live_migratable: str | None = None

    def to_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.vendor_id is not None:
            out['vendor_id'] = '%04x' % self.vendor_id
        if self.product_id is not None:
            out['product_id'] = '%04x' % self.product_id
        if self.dev_type is not None:
            out['device_type'] = self.dev_type
        if self.resource_class is not None:
            out['resource_class'] = self.resource_class
        if self.traits:
            out['traits'] = ','.join(sorted(self.traits))
        if self.live_migratable is not None:
            out['live_migratable'] = self.live_migratable
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Alias:
    """A named request: alternatives sharing one NUMA policy and type."""

    name: str
    numa_policy: str
    dev_type: str | None
    specs: tuple[AliasSpec, ...]


def _spec_from_entry(entry: dict[str, Any], item: str) -> AliasSpec:
    live = entry.get('live_migratable')
    if live is not None:
        parsed = device_spec.parse_bool(live)
        if parsed is None:
            raise exception.InvalidAlias(
                item=item, reason='live_migratable %r is not a boolean; use '
                'true or false' % live)
        live = 'true' if parsed else 'false'
    if not (('vendor_id' in entry and 'product_id' in entry)
            or 'resource_class' in entry):
        raise exception.InvalidAlias(
            item=item, reason='give both vendor_id and product_id, or a '
            'resource_class, so the alias can match devices')
    rc = entry.get('resource_class')
    return AliasSpec(
        vendor_id=int(entry['vendor_id'], 16) if 'vendor_id' in entry
        else None,
        product_id=int(entry['product_id'], 16) if 'product_id' in entry
        else None,
        dev_type=entry.get('device_type'),
        resource_class=names.resource_class(rc, '', '') if rc else None,
        traits=names.traits(entry.get('traits')),
        live_migratable=live,
    )


def parse_aliases(values: list[str],
                  option: str = '[pci] alias') -> dict[str, Alias]:
    """Parse ``[pci] alias`` values (each a JSON object or list of them).

    Entries sharing a name are alternatives; they must agree on
    ``numa_policy`` and ``device_type`` (nova fails there with an opaque
    ``'dev_type'`` error when only one of them sets ``device_type``).

    :raises: InvalidAlias naming the value, the field and what is valid.
    """
    grouped: dict[str, tuple[str, str | None, list[AliasSpec], str]] = {}
    classes: list[tuple[str, str]] = []
    for item, entry in jsonopt.entries(values, option,
                                       exception.InvalidAlias):
        error = next(iter(sorted(_VALIDATOR.iter_errors(entry),
                                 key=lambda e: list(e.path))), None)
        if error is not None:
            raise exception.InvalidAlias(item=item,
                                         reason=_describe(error, entry))
        if entry.get('resource_class'):
            classes.append((item, entry['resource_class']))
            problem = names.class_problem(classes)
            if problem is not None:
                raise exception.InvalidAlias(
                    item=problem[0], reason=problem[1] + (
                        NOVA_IGNORES_RC if nova_accepts(entry) else ''))
        name = entry['name'].strip()
        if not name:
            raise exception.InvalidAlias(
                item=item, reason='name %r is blank%s; give the alias a name'
                % (entry['name'], ' (nova would have accepted it as an alias '
                   'named \'\')' if nova_accepts(entry) else ''))
        policy = entry.get('numa_policy') or DEFAULT_NUMA_POLICY
        dev_type = entry.get('device_type')
        spec = _spec_from_entry(entry, item)
        if name not in grouped:
            grouped[name] = (policy, dev_type, [spec], item)
            continue
        first_policy, first_type, specs, first_item = grouped[name]
        if first_policy != policy:
            raise exception.InvalidAlias(
                item=item, reason='alias %r has numa_policy %r here but '
                '%r in %s; entries sharing a name must agree' % (
                    name, policy, first_policy, first_item))
        if first_type != dev_type:
            raise exception.InvalidAlias(
                item=item, reason='alias %r has device_type %s here but '
                '%s in %s; entries sharing a name must agree' % (
                    name, dev_type or '(unset)',
                    first_type or '(unset)', first_item))
        specs.append(spec)
    return {
        name: Alias(name, policy, dev_type, tuple(specs))
        for name, (policy, dev_type, specs, _item) in grouped.items()
    }
