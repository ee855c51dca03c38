"""``openstack pci server attach|detach`` end to end: the OSC command queues
the request in the ledger, the host's agent (its event thread, as ``run``
starts it) performs it on the fake host with nova's fakelibvirt, and the
command prints the outcome it waited for."""

from __future__ import annotations

from passthrough_plugin.agent import hotplug_follow
from tests.functional.nova import hotplug_fixtures as hf
from tests.functional.nova.hotplug_fixtures import GPU0
from tests.functional.nova.hotplug_fixtures import HOST
from tests.functional.nova.hotplug_fixtures import INSTANCE
from tests.functional.nova.hotplug_fixtures import PROJECT
from tests.functional.osc import base


class ServerHotplugTest(base.OscTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.env = self.useFixture(hf.HotplugHost())
        # nova booted the instance: the ledger knows it, on this host.
        with self.env.ledger.begin() as txn:
            txn.add_instance(INSTANCE, PROJECT, HOST, {},
                             self.env.ledger.now())
        self.follower = self.env.follower()
        self.follower.request_poll = 0.1

    def pci(self, *argv: str, code: int = 0) -> base.Result:
        return self.osc('--passthrough-config-file', self.env.config, 'pci',
                        'server', *argv, code=code)

    def test_attach_then_detach(self) -> None:
        out = self.pci('attach', INSTANCE, '--alias', 'gpu', '-f',
                       'json').json()
        request = out.pop('request')
        self.assertEqual(
            {'server': INSTANCE, 'host': HOST, 'devices': GPU0,
             'result': 'instance %s holds 1 hot-plugged gpu device(s): '
             '%s -> guest 0000:00:05.0' % (INSTANCE, GPU0)}, out)
        self.assertEqual({GPU0: '0000:00:05.0'},
                         self.env.guest().hostdevs())
        self.assertEqual([(request, True, out['result'])],
                         self.follower.served)
        # The instance's history keeps the request and its outcome (the
        # command's clock is real, the agent's the fixture's: no order).
        actions = [e.action for e in self.env.ledger.events(INSTANCE)]
        self.assertEqual(['hotplug', 'hotplug_request', 'hotplug_result'],
                         sorted(actions))
        out = self.pci('detach', INSTANCE, '-f', 'json').json()
        self.assertEqual(('detached from %s: %s' % (INSTANCE, GPU0), GPU0),
                         (out['result'], out['devices']))
        self.assertEqual({}, self.env.guest().hostdevs())
        interval, = self.env.ledger.intervals(instance=INSTANCE)
        self.assertEqual('detached', interval.end_reason)

    def test_refusal_is_one_line(self) -> None:
        result = self.pci('attach', INSTANCE, '--alias', 'gpu:3', code=1)
        self.assertIn('attach on host %s failed: Hotplug of 3 x gpu into '
                      'instance %s on host %s refused (insufficient)'
                      % (HOST, INSTANCE, HOST), result.err)
        self.assertEqual({}, self.env.guest().hostdevs())

    def test_bad_input_names_the_option(self) -> None:
        result = self.pci('attach', INSTANCE, '--alias', 'nic', code=1)
        self.assertIn("--alias 'nic': not a [pci] alias; known: gpu",
                      result.err)
        result = self.pci('attach', INSTANCE, '--alias', 'gpu',
                          '--guest-address', '00:07.9', code=1)
        self.assertIn("Invalid PCI address '00:07.9' in --guest-address",
                      result.err)
        self.assertEqual([], self.follower.served)


class NoAgentTest(base.OscTestCase):
    """Nobody serves the host: the command says what it waited for."""

    def test_timeout(self) -> None:
        env = self.useFixture(hf.HotplugHost())
        with env.ledger.begin() as txn:
            txn.add_instance(INSTANCE, PROJECT, HOST, {}, env.ledger.now())
        result = self.osc('--passthrough-config-file', env.config, 'pci',
                          'server', 'attach', INSTANCE, '--alias', 'gpu',
                          '--wait-timeout', '0.5', code=1)
        self.assertIn('no outcome from the agent of host %s for request '
                      % HOST, result.err)
        self.assertIn('(attach of server %s) within 0.5 s (--wait-timeout): '
                      'is "passthrough-agent run" running there'
                      % INSTANCE, result.err)
        self.assertEqual({}, env.guest().hostdevs())
        # The agent starts: the queued request is served, once.
        follower = hotplug_follow.Follower(env.hotplugger())
        follower.catch_up()
        (_id, ok, message), = follower.served
        self.assertTrue(ok, message)
        self.assertEqual({GPU0: '0000:00:05.0'}, env.guest().hostdevs())
        self.assertEqual([], follower.serve_requests())
