"""[pci] alias and flavor extra specs, random and hostile, against nova.

Each case is a random ``[pci] alias`` (valid entries mutated the ways
operators get them wrong) and a random flavor. nova answers with its own
code: ``get_alias_from_config`` for the aliases, nova-api's extra spec
validators (microversion 2.86 and later) and nova-compute's reading
(``get_pci_numa_policy_constraint``, ``_translate_alias_to_requests``) for
the flavor. Every disagreement must be one doc/nova-differences.rst
documents, and where the core refuses what nova accepts, its error must
say so; where nova-api refuses a value, the core's error must say that too.
"""

from __future__ import annotations

import collections
import json
import random
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod
from tests.functional.differential import base
from tests.functional.differential import generators as gen

CASES = 3000
NOVA_ACCEPTS = 'nova would have accepted it'
API_REFUSES = 'nova-api refuses it too (microversion 2.86 and later)'
# The core refuses, nova accepts: the fragment the error must carry.
ALIAS_STRICTER = {
    'blank_name': "(nova would have accepted it as an alias named '')",
    'id_matching_nothing': '(nova would have accepted it and matched no '
                           'device with it; write ',
    'resource_class_ignored': '(nova would have accepted it: without '
                              '[filter_scheduler] pci_in_placement it '
                              'ignores resource_class)',
}
COUNT_STRICTER = {
    'count_zero': '(nova would have accepted it and asked for no '
                  'device; ',
    'count_too_large': '(nova would have accepted it and then found no '
                       'host with that many devices)',
    'count_unicode_digits': '(nova would have accepted it as ',
}
ARABIC = dict(zip('0123456789', '٠١٢٣٤٥٦٧٨٩', strict=True))


def _bad_id(rng: random.Random, good: str) -> Any:
    return rng.choice((
        good.upper(), good + '\n', ''.join(ARABIC.get(c, c) for c in good),
        good[:3], '0x' + good[2:], ' ' + good, 4660, good + 'ab'))


# One mutation of a valid entry: the ways operators get aliases wrong.
MUTATIONS: tuple[tuple[str, Any], ...] = (
    ('vendor_id', _bad_id), ('product_id', _bad_id),
    ('vendor_id', None), ('product_id', None), ('device_type', None),
    ('device_type', 'vdpa'), ('numa_policy', ''), ('numa_policy', 'Required'),
    ('resource_class', 'CUSTOM_GPU'), ('resource_class', 'gpu'),
    ('resource_class', ''), ('resource_class', '!!!'),
    ('resource_class', 'rc_only'), ('traits', 'CUSTOM_FAST'),
    ('traits', 'fast,HW_GPU_API_X'), ('live_migratable', 'yes'),
    ('live_migratable', 'maybe'), ('live_migratable', ''),
    ('capability_type', 'pci'), ('capability_type', 'usb'),
    ('physical_network', 'physnet1'),
)


def alias_entry(rng: random.Random, name: str) -> dict[str, Any]:
    """A valid entry, mutated once half of the time."""
    entry: dict[str, Any] = {
        'name': name, 'vendor_id': rng.choice(gen.VENDORS),
        'product_id': rng.choice(
            gen.PCI_PRODUCTS + gen.VF_PRODUCTS + gen.PF_PRODUCTS)}
    if rng.random() < 0.7:
        entry['device_type'] = rng.choice(alias_mod.DEVICE_TYPES)
    if rng.random() < 0.3:
        entry['numa_policy'] = rng.choice(alias_mod.NUMA_POLICIES)
    if rng.random() < 0.15:
        entry['live_migratable'] = rng.choice(('true', 'false'))
    if rng.random() < 0.5:
        key, value = rng.choice(MUTATIONS)
        if value is None:
            entry.pop(key, None)
        elif value == 'rc_only':
            entry.pop('product_id')
            entry['resource_class'] = 'CUSTOM_GPU'
        elif callable(value):
            entry[key] = value(rng, entry[key])
        else:
            entry[key] = value
    return entry


def aliases(rng: random.Random) -> tuple[list[str], list[str]]:
    """``[pci] alias`` values and the names they define."""
    names = []
    for n in range(rng.randint(1, 3)):
        roll = rng.random()
        names.append('a%d' % n if roll < 0.85 else rng.choice(
            ('  ', ' a%d ' % n, '', 'my alias')))
    values = []
    for name in names:
        entries = [alias_entry(rng, name)]
        if rng.random() < 0.15:
            # alternatives: same name, device_type kept or not
            twin = alias_entry(rng, name)
            if rng.random() < 0.6:
                for key in ('device_type', 'numa_policy'):
                    if key in entries[0]:
                        twin[key] = entries[0][key]
                    else:
                        twin.pop(key, None)
            entries.append(twin)
        if len(entries) > 1 and rng.random() < 0.3:
            values.append(json.dumps(entries))
        else:
            values.extend(json.dumps(e) for e in entries)
    rng.shuffle(values)
    return values, [n.strip() for n in names]


def count(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return str(rng.randint(1, 4))
    return rng.choice(('0', '01', '0000002', '1000000', '+1', '-1', '٣', '٠',
                       ' 1', '1 ', 'x', '', '1.5', '99999'))


def flavor(rng: random.Random, names: list[str]) -> dict[str, str]:
    known = names or ['a0']
    parts = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(known) if rng.random() < 0.9 else 'nope'
        if rng.random() < 0.1:
            name = ' %s ' % name
        parts.append('%s:%s' % (name, count(rng)))
    extra = {'pci_passthrough:alias': rng.choice((',', ', ', ' , ')).join(
        parts)}
    if rng.random() < 0.3:
        extra['hw:pci_numa_affinity_policy'] = rng.choice(
            alias_mod.NUMA_POLICIES + ('', 'REQUIRED', ' required'))
    return extra


def entries(values: list[str]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        parsed = json.loads(value)
        out.extend(parsed if isinstance(parsed, list) else [parsed])
    return out


def nova_spec(spec: dict[str, Any]) -> tuple[Any, ...]:
    return (int(spec['vendor_id'], 16) if 'vendor_id' in spec else None,
            int(spec['product_id'], 16) if 'product_id' in spec else None,
            spec.get('dev_type'), spec.get('live_migratable'))


def our_spec(spec: alias_mod.AliasSpec) -> tuple[Any, ...]:
    return (spec.vendor_id, spec.product_id, spec.dev_type,
            spec.live_migratable)


class ParsingTest(base.DifferentialTestCase):

    def _alias_stricter(self, values: list[str], message: str,
                        where: str) -> str:
        """The core refused aliases nova accepts: which documented kind."""
        kinds = [k for k, text in ALIAS_STRICTER.items() if text in message]
        self.assertEqual(1, len(kinds), where)
        found = entries(values)
        held = {
            'blank_name': any(not e['name'].strip() for e in found),
            'id_matching_nothing': any(
                isinstance(e.get(k), str) and not (
                    e[k].isascii() and e[k] == e[k].strip())
                for e in found for k in ('vendor_id', 'product_id')),
            'resource_class_ignored': any(
                'resource_class' in e for e in found),
        }
        self.assertTrue(held[kinds[0]], where)
        return kinds[0]

    def _nova_stricter(self, values: list[str], error: str,
                       where: str) -> str:
        """nova refused aliases the core accepts: which documented kind."""
        found = entries(values)
        if any(isinstance(json.loads(v), list) for v in values):
            return 'list_form'
        named = collections.Counter(e['name'].strip() for e in found
                                    if 'device_type' not in e)
        if "'dev_type'" in error and max(named.values(), default=0) > 1:
            return 'same_name_without_device_type'
        if 'does not have vendor_id and product_id' in error and any(
                'resource_class' in e and not (
                    'vendor_id' in e and 'product_id' in e) for e in found):
            return 'resource_class_only_classic'
        self.fail('%s: undocumented: nova refuses (%s), the core '
                  'accepts' % (where, error))

    def _flavor(self, nova: dict[str, Any], extra: dict[str, str],
                ours: Any, where: str, seen: collections.Counter[str]
                ) -> None:
        nova_ok = not nova['api'] and 'requests' in nova
        if isinstance(ours, exception.Invalid):
            message = ours.message
            if nova['api']:
                # nova-api refuses: the same refusal, saying so
                self.assertIn(API_REFUSES, message, where)
                seen['both_refuse_api'] += 1
            elif nova_ok:
                self.assertIn(NOVA_ACCEPTS, message, where)
                kinds = [k for k, t in COUNT_STRICTER.items()
                         if t in message]
                self.assertEqual(1, len(kinds), where)
                seen[kinds[0]] += 1
            else:
                seen['both_refuse_compute'] += 1
            return
        self.assertTrue(nova_ok, '%s: the core accepts, nova: %s' % (
            where, nova))
        ignored = ('capability_type', 'resource_class', 'traits')
        theirs = [(r['count'], r['numa_policy'] or 'legacy',
                   sorted(map(nova_spec, r['spec']), key=repr))
                  for r in nova['requests']]
        self.assertEqual(theirs, [
            (r.count, r.numa_policy, sorted(map(our_spec, r.specs),
                                            key=repr))
            for r in ours.requests], where)
        kept = {k for r in nova['requests'] for s in r['spec']
                for k in ignored if k in s}
        # documented: nova keeps capability_type in the request (nothing
        # matches) and ignores resource_class / traits in classic mode
        for key in sorted(kept):
            seen['documented_%s' % key] += 1
        seen['both_accept'] += 1

    def test_aliases_and_flavors(self) -> None:
        rng = self.rng()
        seen: collections.Counter[str] = collections.Counter()
        for number in range(CASES):
            values, names = aliases(rng)
            extra = flavor(rng, names)
            where = self.where(number, (values, extra))
            nova = self.oracle.ask({'cmd': 'flavor', 'aliases': values,
                                    'extra': extra})
            try:
                parsed = alias_mod.parse_aliases(values)
            except exception.InvalidAlias as exc:
                parsed = None
                if 'alias_error' in nova:
                    seen['aliases_both_refuse'] += 1
                else:
                    seen[self._alias_stricter(values, exc.message,
                                              where)] += 1
                continue
            if 'alias_error' in nova:
                seen[self._nova_stricter(values, nova['alias_error'],
                                         where)] += 1
                continue
            seen['aliases_both_accept'] += 1
            try:
                ours: Any = request_mod.RequestSet.from_extra_specs(
                    extra, parsed)
            except exception.Invalid as exc:
                ours = exc
            self._flavor(nova, extra, ours, where, seen)
        # every generator class met, and every documented kind seen
        for kind in (list(ALIAS_STRICTER) + list(COUNT_STRICTER) + [
                'list_form', 'same_name_without_device_type',
                'resource_class_only_classic', 'both_refuse_api',
                'both_accept', 'documented_capability_type',
                'documented_resource_class']):
            self.assertGreater(seen[kind], 0, '%s never seen: %s' % (
                kind, dict(seen)))
        self.assertGreater(seen['both_accept'], CASES // 10, dict(seen))
