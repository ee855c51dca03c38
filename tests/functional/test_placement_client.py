"""PlacementClient against a real openstack-placement server."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import uuid

import testtools
from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.conf import placement as placement_conf
from passthrough_plugin.store.placement import client as pc
from tests.functional.fixtures import placement

VF = 'CUSTOM_PCI_8086_10CA'
PHYSNET = 'CUSTOM_PHYSNET_PHYSNET1'


class CandidateParamsTest(testtools.TestCase):
    """The query string, without a server."""

    def test_groups_suffixes_and_policy(self) -> None:
        params = pc.candidate_params({
            '': pc.RequestGroup({'VCPU': 1}),
            '_PF1': pc.RequestGroup({VF: 2}, required=[PHYSNET, '!CUSTOM_X',
                                                      'in:CUSTOM_A,CUSTOM_B'],
                                    member_of=['in:a1,a2'], in_tree='rt'),
            '_PF2': pc.RequestGroup({VF: 1}),
        }, limit=10, root_required=['!CUSTOM_BAD'])
        self.assertEqual([
            ('resources', 'VCPU:1'),
            ('resources_PF1', f'{VF}:2'),
            ('required_PF1', f'{PHYSNET},!CUSTOM_X'),
            ('required_PF1', 'in:CUSTOM_A,CUSTOM_B'),
            ('member_of_PF1', 'in:a1,a2'),
            ('in_tree_PF1', 'rt'),
            ('resources_PF2', f'{VF}:1'),
            ('group_policy', 'none'),
            ('limit', '10'),
            ('root_required', '!CUSTOM_BAD'),
        ], params)

    def test_bad_suffix_names_the_suffix(self) -> None:
        error = self.assertRaises(
            exception.Invalid, pc.candidate_params,
            {'PF 1': pc.RequestGroup({VF: 1})})
        self.assertIn("'PF 1'", str(error))


class PlacementClientTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.server = self.useFixture(placement.PlacementFixture())
        self.client = pc.PlacementClient.from_endpoint(self.server.url)

    def _tree(self) -> tuple[pc.ResourceProvider, pc.ResourceProvider]:
        root = self.client.ensure_provider('cn1')
        pf = self.client.ensure_provider(
            'cn1:0000:3b:00.0', parent_provider_uuid=root.uuid)
        self.client.ensure_resource_class(VF)
        self.client.set_inventories(pf.uuid, {VF: {'total': 4}})
        return root, pf

    def test_provider_tree_inventories_traits_classes(self) -> None:
        root, pf = self._tree()
        self.assertEqual(root.uuid, pf.root_provider_uuid)
        self.assertEqual(root.uuid, pf.parent_provider_uuid)
        # ensure_provider finds what exists instead of failing.
        self.assertEqual(root, self.client.ensure_provider('cn1'))
        gen = self.client.set_traits(pf.uuid, [PHYSNET, 'HW_NIC_SRIOV'])
        self.assertEqual((gen, {PHYSNET, 'HW_NIC_SRIOV'}),
                         self.client.get_traits(pf.uuid))
        gen, inventories = self.client.get_inventories(pf.uuid)
        self.assertEqual(4, inventories[VF]['total'])
        found = self.client.list_providers(in_tree=root.uuid)
        self.assertEqual({root.uuid, pf.uuid}, {rp.uuid for rp in found})
        candidates = self.client.get_allocation_candidates(
            {'': pc.RequestGroup({VF: 2}, required=[PHYSNET],
                                 in_tree=root.uuid)}, limit=5)
        self.assertEqual(
            [{pf.uuid: {'resources': {VF: 2}}}],
            [ar['allocations'] for ar in candidates.allocation_requests])
        self.assertEqual(
            {'capacity': 4, 'used': 0},
            candidates.provider_summaries[pf.uuid]['resources'][VF])
        none = self.client.get_allocation_candidates(
            {'': pc.RequestGroup({VF: 2}, required=['!' + PHYSNET])})
        self.assertEqual([], none.allocation_requests)

    def test_stale_provider_generation_is_reread_and_retried(self) -> None:
        _, pf = self._tree()
        stale = self.client.get_provider_strict(pf.uuid).generation
        self.client.set_traits(pf.uuid, [PHYSNET])  # moves the generation
        gen = self.client.set_inventories(
            pf.uuid, {VF: {'total': 8}}, generation=stale)
        self.assertGreater(gen, stale + 1)
        self.assertEqual(8, self.client.get_inventories(pf.uuid)[1][VF]
                         ['total'])

    def test_generation_conflict_gives_up_after_the_attempts(self) -> None:
        _, pf = self._tree()
        stale = self.client.get_provider_strict(pf.uuid).generation - 1
        once = pc.PlacementClient.from_endpoint(self.server.url, attempts=1)
        error = self.assertRaises(
            exception.ProviderGenerationConflict, once.set_inventories,
            pf.uuid, {VF: {'total': 2}}, generation=stale)
        self.assertIn(pf.uuid, str(error))
        self.assertIn('inventories', str(error))

    def test_allocations_with_consumer_generations(self) -> None:
        _, pf = self._tree()
        consumer = str(uuid.uuid4())
        self.assertEqual(
            pc.Allocations(consumer, {}, None),
            self.client.get_allocations(consumer))
        self.client.put_allocations(
            consumer, {pf.uuid: {VF: 2}}, consumer_generation=None,
            project_id='p1', user_id='u1')
        got = self.client.get_allocations(consumer)
        self.assertEqual({pf.uuid: {VF: 2}}, got.allocations)
        self.assertEqual(('p1', 'u1', 'INSTANCE'),
                         (got.project_id, got.user_id, got.consumer_type))
        self.assertEqual({VF: 2}, self.client.get_provider_usages(pf.uuid))
        self.client.put_allocations(
            consumer, {pf.uuid: {VF: 3}},
            consumer_generation=got.consumer_generation,
            project_id='p1', user_id='u1')
        self.assertEqual({VF: 3}, self.client.get_provider_usages(pf.uuid))
        # The generation read before the update is stale now.
        error = self.assertRaises(
            exception.ConsumerGenerationConflict,
            self.client.put_allocations, consumer, {pf.uuid: {VF: 1}},
            consumer_generation=got.consumer_generation,
            project_id='p1', user_id='u1')
        self.assertIn(consumer, str(error))
        self.assertIn('re-read', str(error))
        self.assertEqual({VF: 3}, self.client.get_provider_usages(pf.uuid))
        # A second scheduler claiming "new" consumer of the same uuid.
        self.assertRaises(
            exception.ConsumerGenerationConflict,
            self.client.put_allocations, consumer, {pf.uuid: {VF: 1}},
            consumer_generation=None, project_id='p1', user_id='u1')
        # Conditional delete with the stale generation fails, the fresh works.
        self.assertRaises(
            exception.ConsumerGenerationConflict,
            self.client.delete_allocations, consumer,
            consumer_generation=got.consumer_generation)
        fresh = self.client.get_allocations(consumer).consumer_generation
        self.assertTrue(self.client.delete_allocations(
            consumer, consumer_generation=fresh))
        self.assertEqual({VF: 0}, self.client.get_provider_usages(pf.uuid))
        self.assertFalse(self.client.delete_allocations(consumer))

    def test_capacity_and_inventory_in_use_are_clear_conflicts(self) -> None:
        _, pf = self._tree()
        error = self.assertRaises(
            exception.PlacementCapacityExceeded,
            self.client.put_allocations, str(uuid.uuid4()),
            {pf.uuid: {VF: 5}}, consumer_generation=None, project_id='p',
            user_id='u')
        self.assertIn('exceed the capacity', str(error))
        self.client.put_allocations(
            str(uuid.uuid4()), {pf.uuid: {VF: 1}}, consumer_generation=None,
            project_id='p', user_id='u')
        in_use = self.assertRaises(
            exception.PlacementConflict, self.client.set_inventories,
            pf.uuid, {})
        self.assertEqual('placement.inventory.inuse', in_use.kwargs['code'])
        self.assertRaises(exception.PlacementConflict,
                          self.client.delete_provider, pf.uuid)

    def test_unknown_trait_is_a_placement_error_not_a_traceback(self) -> None:
        _, pf = self._tree()
        error = self.assertRaises(exception.PlacementError,
                                  self.client.set_traits, pf.uuid,
                                  ['NOT_A_TRAIT'])
        self.assertIn('No such trait NOT_A_TRAIT', str(error))
        self.assertEqual(400, error.kwargs['status'])

    def test_server_down_is_unavailable_then_recovers(self) -> None:
        _, pf = self._tree()
        self.server.stop()
        error = self.assertRaises(exception.StoreUnavailable,
                                  self.client.get_provider, pf.uuid)
        self.assertIsInstance(error, exception.PlacementUnavailable)
        self.assertIn(f'cannot reach Placement at {self.server.url}',
                      str(error))
        self.assertRaises(exception.PlacementUnavailable,
                          self.client.put_allocations, str(uuid.uuid4()),
                          {pf.uuid: {VF: 1}}, consumer_generation=None,
                          project_id='p', user_id='u')
        self.server.start()
        self.assertEqual(pf.uuid, self.client.get_provider_strict(
            pf.uuid).uuid)
        self.client.put_allocations(
            str(uuid.uuid4()), {pf.uuid: {VF: 1}}, consumer_generation=None,
            project_id='p', user_id='u')
        self.assertEqual({VF: 1}, self.client.get_provider_usages(pf.uuid))

    def test_custom_names_are_recreated_when_placement_forgot(self) -> None:
        _, pf = self._tree()
        self.client.set_traits(pf.uuid, [PHYSNET])
        self.server.stop()
        self.server.reset_database()
        self.server.start()
        self.assertIsNone(self.client.get_provider(pf.uuid))
        # The same client remembers having created VF and PHYSNET.
        root, pf = self._tree()
        self.client.set_traits(pf.uuid, [PHYSNET])
        self.assertEqual({PHYSNET}, self.client.get_traits(pf.uuid)[1])
        self.assertEqual(4, self.client.get_inventories(pf.uuid)[1][VF]
                         ['total'])

    def test_over_an_openstacksdk_connection(self) -> None:
        import openstack
        conn = openstack.connection.Connection(
            auth_type='admin_token',
            auth={'token': 'admin', 'endpoint': self.server.url})
        client = pc.PlacementClient(conn.placement)  # a keystoneauth Adapter
        self.assertEqual('sdk', client.ensure_provider('sdk').name)
        self.assertEqual(self.server.url, client.endpoint)
        self.server.stop()
        error = self.assertRaises(exception.PlacementUnavailable,
                                  client.list_providers)
        self.assertIn(self.server.url, str(error))

    def test_from_conf_with_admin_token(self) -> None:
        path = os.path.join(self.server.workdir, 'plugin.conf')
        with open(path, 'w') as f:
            f.write('[placement]\nauth_type = admin_token\n'
                    f'endpoint = {self.server.url}\ntoken = admin\n')
        conf = cfg.ConfigOpts()
        placement_conf.register_opts(conf)
        conf(['--config-file', path])
        client = pc.PlacementClient.from_conf(conf)
        self.assertEqual(self.server.url, client.endpoint)
        self.assertEqual('cn9', client.ensure_provider('cn9').name)
        self.assertEqual(['cn9'],
                         [rp.name for rp in client.list_providers()])


class _Unavailable503(http.server.BaseHTTPRequestHandler):
    """Placement whose database is down: its version document (which needs
    no database) answers, every other request is a 503."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status, body = 503, json.dumps({'errors': [{
            'status': 503, 'code': 'placement.undefined_code',
            'detail': '503 Service Unavailable\n\nDatabase is down'}]})
        if self.path == '/':
            status, body = 200, json.dumps({'versions': [{
                'id': 'v1.0', 'max_version': '1.39', 'min_version': '1.0',
                'status': 'CURRENT', 'links': [
                    {'rel': 'self', 'href': ''}]}]})
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


class PlacementFailureModesTest(testtools.TestCase):
    """Failures a real server cannot be made to show on demand."""

    def test_hung_server_times_out_as_unavailable(self) -> None:
        with socket.socket() as hung:
            hung.bind(('127.0.0.1', 0))
            hung.listen()  # accepts connections, never answers
            url = f'http://127.0.0.1:{hung.getsockname()[1]}'
            client = pc.PlacementClient.from_endpoint(url, timeout=0.5)
            error = self.assertRaises(exception.PlacementUnavailable,
                                      client.get_provider, 'x')
        self.assertIn(f'cannot reach Placement at {url}', str(error))

    def test_5xx_is_unavailable_with_the_detail(self) -> None:
        server = http.server.HTTPServer(('127.0.0.1', 0), _Unavailable503)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = f'http://127.0.0.1:{server.server_address[1]}'
        error = self.assertRaises(
            exception.PlacementUnavailable,
            pc.PlacementClient.from_endpoint(url).list_providers)
        self.assertIn(f'Placement at {url} answered GET /resource_providers '
                      'with HTTP 503: Database is down', str(error))


class PlacementConfTest(testtools.TestCase):

    def test_defaults_and_sample_options(self) -> None:
        conf = cfg.ConfigOpts()
        placement_conf.register_opts(conf)
        conf([])
        self.assertEqual('placement', conf.placement.service_type)
        self.assertEqual(['internal', 'public'],
                         conf.placement.valid_interfaces)
        self.assertIsNone(conf.placement.timeout)
        self.assertEqual({'timeout': 30.0},
                         placement_conf.session_kwargs(conf))
        names = [o.dest for o in
                 placement_conf.list_opts()[placement_conf.placement_group]]
        self.assertEqual(len(names), len(set(names)))
        for name in ('auth_type', 'auth_url', 'username', 'password',
                     'cafile', 'timeout', 'endpoint_override',
                     'region_name', 'valid_interfaces'):
            self.assertIn(name, names)
        self.assertNotIn('version', names)

    def test_coexists_with_novas_placement_group(self) -> None:
        from nova.conf import utils as nova_conf_utils
        conf = cfg.ConfigOpts()
        conf.register_group(cfg.OptGroup('placement'))
        nova_conf_utils.register_ksa_opts(conf, 'placement', 'placement')
        placement_conf.register_opts(conf)  # no DuplicateOptError
        placement_conf.register_opts(conf)
        conf([])
        self.assertEqual('placement', conf.placement.service_type)

    def test_two_config_objects_do_not_share_options(self) -> None:
        first, second = cfg.ConfigOpts(), cfg.ConfigOpts()
        placement_conf.register_opts(first)
        first.register_opt(cfg.StrOpt('only_here'), group='placement')
        placement_conf.register_opts(second)
        self.assertNotIn('only_here', set(second.placement))
