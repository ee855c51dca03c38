"""[pci] alias and pci_passthrough:alias against nova's own parsing."""

from __future__ import annotations

import json
from typing import Any

from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod
from tests.functional.differential import base
from tests.functional.differential import generators as gen

CASES = 600


def nova_spec(spec: dict[str, Any]) -> tuple[Any, ...]:
    return (int(spec['vendor_id'], 16) if 'vendor_id' in spec else None,
            int(spec['product_id'], 16) if 'product_id' in spec else None,
            spec.get('dev_type'), spec.get('live_migratable'))


def our_spec(spec: alias_mod.AliasSpec) -> tuple[Any, ...]:
    return (spec.vendor_id, spec.product_id, spec.dev_type,
            spec.live_migratable)


class AliasTest(base.DifferentialTestCase):

    def test_requests_equal_nova(self) -> None:
        rng = self.rng()
        compared = 0
        for case in range(CASES):
            host = gen.Host(rng)
            values = gen.aliases(rng, host)
            for n, value in enumerate(values):
                entry = json.loads(value)
                if rng.random() < 0.2:
                    entry['live_migratable'] = rng.choice(('true', 'false'))
                if rng.random() < 0.1:
                    entry['vendor_id'] = entry['vendor_id'].upper()
                values[n] = json.dumps(entry)
            names = sorted({json.loads(v)['name'] for v in values})
            asked = ','.join('%s:%d' % (rng.choice(names),
                                        rng.randint(1, 4))
                             for _ in range(rng.randint(1, 3)))
            policy = rng.choice((None, None) + alias_mod.NUMA_POLICIES)
            where = self.where(case, (values, asked, policy))
            nova = self.oracle.ask({'cmd': 'alias', 'aliases': values,
                                    'asked': asked, 'policy': policy})
            self.assertNotIn('error', nova, where)
            extra = {'pci_passthrough:alias': asked}
            if policy:
                extra['hw:pci_numa_affinity_policy'] = policy
            ours = request_mod.RequestSet.from_extra_specs(
                extra, alias_mod.parse_aliases(values)).requests
            self.assertEqual(
                [(r['count'], r['numa_policy'] or 'legacy',
                  sorted(map(nova_spec, r['spec']), key=repr))
                 for r in nova['requests']],
                [(r.count, r.numa_policy,
                  sorted(map(our_spec, r.specs), key=repr))
                 for r in ours], where)
            compared += 1
        self.assertEqual(CASES, compared)
