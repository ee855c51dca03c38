"""Flavor extra specs to device requests."""

from __future__ import annotations

import json

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import request as request_mod
from tests.unit.pci.fakes import case

ALIASES = alias_mod.parse_aliases([json.dumps(a) for a in (
    {'name': 'vf', 'vendor_id': '8086', 'product_id': '154c',
     'device_type': 'type-VF'},
    {'name': 'pf', 'vendor_id': '8086', 'product_id': '1572',
     'device_type': 'type-PF', 'numa_policy': 'required'},
    [{'name': 'gpu', 'vendor_id': '10de', 'product_id': '1eb8'},
     {'name': 'gpu', 'vendor_id': '10de', 'product_id': '1eb9'}],
)])
ALIAS = request_mod.ALIAS_KEY
POLICY = request_mod.NUMA_POLICY_KEY
ANTI = request_mod.ANTI_AFFINITY_KEY
HEADROOM = request_mod.HEADROOM_KEY


def build(specs: dict[str, str],
          aliases: dict[str, alias_mod.Alias] | None = None
          ) -> request_mod.RequestSet:
    return request_mod.RequestSet.from_extra_specs(
        specs, ALIASES if aliases is None else aliases)


def summary(rs: request_mod.RequestSet) -> list[tuple[str, int, str]]:
    return [(r.alias_name, r.count, r.numa_policy) for r in rs.requests]


class AliasCountTest(testtools.TestCase):

    VALID = [
        ('vf:1', [('vf', 1, 'legacy')]),
        ('vf:2,gpu:1', [('vf', 2, 'legacy'), ('gpu', 1, 'legacy')]),
        (' vf :2 , gpu:1', [('vf', 2, 'legacy'), ('gpu', 1, 'legacy')]),
        ('vf:0000002', [('vf', 2, 'legacy')]),
        ('pf:1', [('pf', 1, 'required')]),
        ('vf:1, vf:3', [('vf', 1, 'legacy'), ('vf', 3, 'legacy')]),
        ('gpu:01', [('gpu', 1, 'legacy')]),
        ('vf:16', [('vf', 16, 'legacy')]),
    ]

    def test_valid(self) -> None:
        for value, expected in self.VALID:
            with case(value):
                rs = build({ALIAS: value})
                self.assertEqual(expected, summary(rs))
                self.assertEqual((), rs.headroom)
                self.assertFalse(rs.vf_anti_affinity)
                self.assertFalse(rs.empty)
                for r in rs.requests:
                    self.assertEqual(request_mod.SOURCE_FLAVOR, r.source)
                    self.assertEqual(ALIASES[r.alias_name].specs, r.specs)

    def test_alternatives_carried(self) -> None:
        rs = build({ALIAS: 'gpu:1'})
        self.assertEqual([0x1eb8, 0x1eb9],
                         [s.product_id for s in rs.requests[0].specs])

    BAD = [
        ('vf:0', "count '0' of 'vf' must be a whole number of at least 1"),
        ('vf:-1', "count '-1' of 'vf' must be a whole number of at least "
         "1 (and at most 999999); nova-api refuses it too"),
        (' vf : 2 , gpu:1 ', 'nova-api refuses it too (microversion 2.86 '
         "and later). Write 'vf:2,gpu:1'"),
        ('vf:1 ', 'no blanks around a count; nova-api refuses it too'),
        ('vf:0', "nova would have accepted it and asked for no device; "
         "leave 'vf:0' out"),
        ('vf:1000000', 'nova would have accepted it and then found no host '
         'with that many devices'),
        ('vf:\u0663', "nova would have accepted it as 3; write 'vf:3'"),
        ('vf:x', "count 'x' of 'vf' must be a whole number of at least 1"),
        ('vf:1.5', "count '1.5' of 'vf'"),
        ('vf:', "count '' of 'vf'"),
        ('vf', "'vf' is not name:count"),
        (':1', "':1' is not name:count"),
        ('vf:1:2', "'vf:1:2' is not name:count"),
        ('vf:1,', "'' is not name:count"),
        ('vf:1,,gpu:1', "'' is not name:count"),
        ('', 'expected name:count[,name:count]'),
        ('   ', 'expected name:count[,name:count]'),
        ('vf:²', "count '²' of 'vf'"),
        ('vf:' + '1' * 50, "of 'vf'"),
    ]

    def test_bad_counts(self) -> None:
        for value, reason in self.BAD:
            with case(repr(value)[:30]):
                exc = self.assertRaises(exception.InvalidExtraSpec, build,
                                        {ALIAS: value})
                self.assertIn(f'{ALIAS}={value!r}', exc.message)
                self.assertIn(reason, exc.message)

    def test_unknown_alias(self) -> None:
        exc = self.assertRaises(exception.UnknownAlias, build,
                                {ALIAS: 'vf:1, nvme:2'})
        self.assertIn("alias 'nvme' is not defined in [pci] alias",
                      exc.message)
        self.assertIn('defined aliases: gpu, pf, vf', exc.message)
        self.assertIn(ALIAS, exc.message)
        self.assertIsInstance(exc, exception.InvalidExtraSpec)

    def test_unknown_alias_without_aliases(self) -> None:
        exc = self.assertRaises(exception.UnknownAlias, build,
                                {ALIAS: 'vf:1'}, {})
        self.assertIn('defined aliases: (none)', exc.message)

    def test_alias_names_are_case_sensitive(self) -> None:
        self.assertRaises(exception.UnknownAlias, build, {ALIAS: 'VF:1'})


class NumaPolicyTest(testtools.TestCase):

    def test_override(self) -> None:
        for policy in alias_mod.NUMA_POLICIES:
            with case(policy):
                rs = build({ALIAS: 'vf:1,pf:1', POLICY: policy})
                self.assertEqual([policy, policy],
                                 [r.numa_policy for r in rs.requests])

    def test_alias_policy_without_override(self) -> None:
        rs = build({ALIAS: 'vf:1,pf:1'})
        self.assertEqual(['legacy', 'required'],
                         [r.numa_policy for r in rs.requests])

    def test_policy_alone_is_no_request(self) -> None:
        self.assertTrue(build({POLICY: 'required'}).empty)

    def test_bad_policy(self) -> None:
        for value in ('strict', 'Required', '', 'none'):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidExtraSpec, build,
                                        {ALIAS: 'vf:1', POLICY: value})
                self.assertIn(f'{POLICY}={value!r}', exc.message)
                self.assertIn('must be one of required, legacy, preferred, '
                              'socket', exc.message)

    def test_headroom_gets_override_too(self) -> None:
        rs = build({ALIAS: 'vf:1', HEADROOM: 'pf:1', POLICY: 'socket'})
        self.assertEqual('socket', rs.headroom[0].numa_policy)


class PluginKeysTest(testtools.TestCase):

    def test_anti_affinity(self) -> None:
        for value, expected in (('true', True), ('yes', True),
                                ('False', False), ('0', False)):
            with case(value):
                rs = build({ALIAS: 'vf:2,gpu:1', ANTI: value})
                self.assertEqual(expected, rs.vf_anti_affinity)
                self.assertEqual([expected, expected],
                                 [r.anti_affinity for r in rs.requests])

    def test_bad_anti_affinity(self) -> None:
        exc = self.assertRaises(exception.InvalidExtraSpec, build,
                                {ALIAS: 'vf:2', ANTI: 'maybe'})
        self.assertIn(f"{ANTI}='maybe'", exc.message)
        self.assertIn('must be true or false', exc.message)

    def test_anti_affinity_needs_alias(self) -> None:
        exc = self.assertRaises(exception.InvalidExtraSpec, build,
                                {ANTI: 'true'})
        self.assertIn(ANTI, exc.message)
        self.assertIn(f'needs {ALIAS}', exc.message)
        # false without an alias is harmless
        self.assertTrue(build({ANTI: 'false'}).empty)

    def test_headroom(self) -> None:
        rs = build({ALIAS: 'vf:1', HEADROOM: 'vf:2, gpu:1', ANTI: 'true'})
        self.assertEqual([('vf', 2), ('gpu', 1)],
                         [(r.alias_name, r.count) for r in rs.headroom])
        self.assertEqual([False, False],
                         [r.anti_affinity for r in rs.headroom])
        self.assertTrue(rs.vf_anti_affinity)

    def test_headroom_alone(self) -> None:
        rs = build({HEADROOM: 'vf:1'})
        self.assertEqual((), rs.requests)
        self.assertFalse(rs.empty)

    def test_bad_headroom(self) -> None:
        for value in ('vf', 'vf:0', 'vf:two', ''):
            with case(repr(value)):
                exc = self.assertRaises(exception.InvalidExtraSpec, build,
                                        {HEADROOM: value})
                self.assertIn(f'{HEADROOM}={value!r}', exc.message)
        exc = self.assertRaises(exception.UnknownAlias, build,
                                {HEADROOM: 'nvme:1'})
        self.assertIn(HEADROOM, exc.message)
        self.assertIn("'nvme'", exc.message)

    def test_unknown_plugin_key(self) -> None:
        for key in ('passthrough:vf_antiaffinity', 'passthrough:',
                    'passthrough:hotplug_headroom2'):
            with case(key):
                exc = self.assertRaises(exception.InvalidExtraSpec, build,
                                        {ALIAS: 'vf:1', key: 'true'})
                self.assertIn(f"{key}='true'", exc.message)
                self.assertIn('unknown passthrough-plugin key; known keys: '
                              f'{ANTI}, {HEADROOM}', exc.message)

    def test_other_extra_specs_ignored(self) -> None:
        rs = build({'hw:cpu_policy': 'dedicated', 'quota:cpu_shares': '10',
                    'trait:CUSTOM_X': 'required', 'hw:numa_nodes': '2',
                    'Passthrough:x': 'y',
                    'resources:VGPU': '1', ALIAS: 'gpu:1'})
        self.assertEqual([('gpu', 1, 'legacy')], summary(rs))

    def test_no_specs(self) -> None:
        rs = build({})
        self.assertTrue(rs.empty)
        self.assertEqual('no devices', rs.describe())


class RequestSetTest(testtools.TestCase):

    def test_describe(self) -> None:
        rs = build({ALIAS: 'vf:2,gpu:1'})
        self.assertEqual('2 x vf, 1 x gpu', rs.describe())

    def test_wants_pf(self) -> None:
        rs = build({ALIAS: 'vf:1,pf:1,gpu:1'})
        self.assertEqual([False, True, False],
                         [r.wants_pf for r in rs.requests])

    def test_hotplug_request_and_with_extra(self) -> None:
        rs = build({ALIAS: 'vf:1'})
        hot = request_mod.hotplug_request(ALIASES, 'gpu', 2)
        self.assertEqual(request_mod.SOURCE_HOTPLUG, hot.source)
        self.assertEqual(('gpu', 2, 'legacy'),
                         (hot.alias_name, hot.count, hot.numa_policy))
        more = rs.with_extra([hot])
        self.assertEqual(['vf', 'gpu'],
                         [r.alias_name for r in more.requests])
        self.assertEqual(1, len(rs.requests))  # frozen, not changed
        self.assertEqual(rs.headroom, more.headroom)

    def test_hotplug_count_must_be_positive(self) -> None:
        for count in (0, -1):
            with case(str(count)):
                exc = self.assertRaises(exception.Invalid,
                                        request_mod.hotplug_request,
                                        ALIASES, 'gpu', count)
                self.assertIn(str(count), exc.message)

    def test_hotplug_unknown_alias(self) -> None:
        exc = self.assertRaises(exception.UnknownAlias,
                                request_mod.hotplug_request, ALIASES, 'nvme')
        self.assertIn("alias 'nvme' is not defined", exc.message)
        self.assertIn('gpu, pf, vf', exc.message)

    def test_requests_are_hashable_values(self) -> None:
        a = build({ALIAS: 'vf:2'}).requests[0]
        b = build({ALIAS: 'vf:2'}).requests[0]
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))
