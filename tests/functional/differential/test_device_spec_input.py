"""Hostile [pci] device_spec values against nova's Whitelist.

Random valid specs (generators.device_specs), half of them mutated once
the ways operators get them wrong. Where nova accepts what the core
refuses, the core's error must say what nova would have done; where nova
refuses what the core accepts, it must be a documented case; where both
accept, both must match the same devices with the same tags.
"""

from __future__ import annotations

import collections
import json
import random
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.pci import device_spec
from tests.functional.differential import base
from tests.functional.differential import generators as gen
from tests.functional.differential import test_matching

CASES = 2500
ARABIC = dict(zip('0123456789', '٠١٢٣٤٥٦٧٨٩', strict=True))


def _ids(v: str) -> list[Any]:
    return ['0x' + v, ' ' + v, v.upper(), ''.join(ARABIC.get(c, c)
                                                  for c in v),
            v + '\n', '+' + v, v[:2] + '_' + v[2:], '1' + v, 'xyz', 4660]


MUTATIONS: tuple[tuple[str, Any], ...] = (
    ('trusted', 'maybe'), ('trusted', ''), ('trusted', True),
    ('trusted', 'yes'), ('remote_managed', 'maybe'),
    ('physical_network', ['physnet1']), ('physical_network', {'a': 'b'}),
    ('physical_network', 5), ('dev_type', 'type-PF'), ('numa_node', '1'),
    ('count', '2'), ('devices', 'x'), ('rp_uuid', 'x'), ('rp_uuids', 'x'),
    ('parent_ifname', 'ens0'), ('address', {'func': '1'}),
    ('address', {'bus': '81', 'func': '1'}), ('address', '*:0x81:*.*'),
    ('address', '*:+81:*.*'), ('address', '*:00081:*.*'),
    ('address', '*:81:00. '), ('address', '*:81:00.1 '), ('devname', ''),
    ('devname', '  '), ('one_time_use', 'true'), ('one_time_use', 'no'),
    ('live_migratable', 'maybe'), ('managed', 'yes'),
    ('resource_class', ''),
)


def mutate(rng: random.Random, host: gen.Host, spec: dict[str, Any]
           ) -> None:
    if rng.random() < 0.3:
        key = rng.choice(('vendor_id', 'product_id'))
        good = spec.get(key) if spec.get(key, '*') != '*' else rng.choice(
            gen.VENDORS if key == 'vendor_id' else gen.PCI_PRODUCTS)
        spec[key] = rng.choice(_ids(good))
        return
    key, value = rng.choice(MUTATIONS)
    if key == 'devname':
        spec.pop('address', None)
    if key == 'address':
        spec.pop('devname', None)
    spec[key] = value


# The core refuses, nova accepts: what the error must say.
NOVA_ACCEPTS = 'nova would have'
# nova refuses, the core accepts (documented in "Input strictness").
NOVA_STRICTER = ('one_time_use', 'blank_glob_function')


class DeviceSpecInputTest(base.DifferentialTestCase):

    def _nova_stricter(self, specs: list[dict[str, Any]], error: str,
                       where: str) -> str:
        if 'one_time_use' in error and any(
                device_spec.parse_bool(s.get('one_time_use', 'no'))
                for s in specs):
            return 'one_time_use'
        if any(isinstance(s.get('address'), str)
               and s['address'].rpartition('.')[2].strip() == ''
               and s['address'].rpartition('.')[2] != ''
               for s in specs):
            return 'blank_glob_function'
        self.fail('%s: undocumented: nova refuses (%s), the core accepts'
                  % (where, error))

    def test_hostile_device_specs(self) -> None:
        rng = self.rng()
        seen: collections.Counter[str] = collections.Counter()
        for number in range(CASES):
            host = gen.Host(rng)
            specs = [json.loads(v) for v in gen.device_specs(rng, host)]
            if rng.random() < 0.6:
                mutate(rng, host, rng.choice(specs))
            values = [json.dumps(s) for s in specs]
            where = self.where(number, (values, host.devices))
            nova = self.oracle.ask({'cmd': 'match', 'pfs': host.pfs,
                                    'specs': values,
                                    'devices': host.devices})
            try:
                ours = device_spec.DeviceSpecList.from_config(
                    values, nova_compatible=True)
            except exception.InvalidDeviceSpec as exc:
                if 'error' in nova:
                    seen['both_refuse'] += 1
                else:
                    self.assertIn(NOVA_ACCEPTS, exc.message, where)
                    seen['noted'] += 1
                continue
            if 'error' in nova:
                seen[self._nova_stricter(specs, nova['error'], where)] += 1
                continue
            for dev, theirs in zip(host.devices, nova['devices'],
                                   strict=True):
                got = test_matching.ours(ours, host, dev)
                if got != theirs and theirs is not None and any(
                        not isinstance(v, str) and v is not None
                        for v in theirs['tags'].values()):
                    # documented: nova keeps a JSON number or boolean as
                    # the tag's value (no request's string equals it); the
                    # core reads it as a string
                    theirs = dict(theirs, tags={
                        k: str(v).lower() if isinstance(v, bool)
                        else v if v is None else str(v)
                        for k, v in theirs['tags'].items()})
                    seen['scalar_tag_as_string'] += 1
                self.assertEqual(theirs, got,
                                 '%s: device %s' % (where, dev['address']))
                seen['devices_compared'] += 1
            seen['both_accept'] += 1
        for kind in ('noted', 'both_refuse', 'both_accept',
                     'scalar_tag_as_string') + NOVA_STRICTER:
            self.assertGreater(seen[kind], 0, '%s never seen: %s' % (
                kind, dict(seen)))
        self.assertGreater(seen['devices_compared'], CASES, dict(seen))
