"""nova's pool order across the agent's published reports.

Each case is one compute's history, as in test_history, but the core's
side runs as a deployment runs it: a real file report store, the agent's
pool history (agent/pool_history.py) stamping a fresh scan - every device
available, no stamps, as discovery gives it - and publishing it after
every claim and release, the claims made through the store with the
devices the core chose on the store's report. After every publish the
pools read back from the store must be nova's, in nova's order.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile

import fixtures
from oslo_config import cfg

from passthrough_plugin.agent import pool_history
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import file as file_store
from tests.functional.differential import base
from tests.functional.differential import generators as gen
from tests.functional.differential import test_history

CASES = 200
HOST = 'h'


def scan(host: gen.Host, specs: device_spec.DeviceSpecList
         ) -> report_mod.HostReport:
    """What the agent's discovery gives: all available, no stamps."""
    rep = test_history.report(host, specs, {})
    rep.host = HOST
    return rep


class AgentHistoryTest(base.DifferentialTestCase):

    def setUp(self) -> None:
        super().setUp()
        shm = '/dev/shm' if os.path.isdir('/dev/shm') else None
        self.dir = self.useFixture(fixtures.TempDir(rootdir=shm)).path

    def _deployment(self, number: int) -> tuple[
            file_store.FileReportStore, pool_history.PoolHistory]:
        conf = cfg.ConfigOpts()
        store = file_store.FileReportStore(conf)
        store.path = tempfile.mkdtemp(dir=self.dir, prefix='%d-' % number)
        history = pool_history.PoolHistory(pool_history.path_for(
            os.path.join(store.path, 'agent-state.json')))
        return store, history

    def test_history_across_published_reports(self) -> None:
        rng = self.rng()
        seen: collections.Counter[str] = collections.Counter()
        for number in range(CASES):
            case = test_history.HistoryTest._case(  # noqa: SLF001
                self, rng, 'history')  # type: ignore[arg-type]
            host = case.pop('host')
            nova = self.oracle.ask(case)
            if nova['merged']:
                seen['null_tag_joins_other_pool'] += 1
                continue
            where = self.where(number, json.dumps(case))
            specs = device_spec.DeviceSpecList.from_config(case['specs'])
            aliases = alias_mod.parse_aliases(case['aliases'])
            store, history = self._deployment(number)

            # devices in use when the compute (the agent) starts
            store.publish(scan(host, specs))
            for uuid, addresses in nova['started'].items():
                for address in addresses:
                    store.claim(HOST, uuid, [address])
            history.reset()
            store.publish(history.stamp(scan(host, specs), store))
            for step, (op, theirs) in enumerate(
                    zip(case['ops'], nova['steps'], strict=True)):
                at = '%s step %d %s' % (where, step, op)
                if theirs['merged']:
                    seen['null_tag_joins_other_pool'] += 1
                    break
                if 'release' in op:
                    store.release(HOST, op['release'])
                else:
                    claim = op['claim']
                    rs = test_history.claim_request(claim, aliases)
                    hp = pools_mod.HostPools.from_report(store.get(HOST))
                    fit = hp.fit(rs, claim['cells'])
                    test_history.assert_claimed_as_nova(
                        self, fit, theirs['claim'], at)
                    if fit.ok:
                        store.claim(HOST, claim['uuid'],
                                    list(fit.addresses))
                        seen['claims'] += 1
                # the agent's next scan, stamped and published
                store.publish(history.stamp(scan(host, specs), store))
                published = pools_mod.HostPools.from_report(store.get(HOST))
                self.assertEqual([p for p in theirs['pools'] if p],
                                 test_history.pool_lists(published),
                                 '%s: pools' % at)
                seen['compared'] += 1
                # what a report without the history (a compute start at
                # every publish) would have given
                fresh = store.get(HOST)
                for dev in fresh.devices:
                    dev.pool_stamp = dev.join_stamp = None
                if test_history.pool_lists(pools_mod.HostPools.from_report(
                        fresh)) != test_history.pool_lists(published):
                    seen['history_mattered'] += 1
        self.assertGreaterEqual(seen['compared'], CASES * 3)
        self.assertGreater(seen['claims'], CASES // 5)
        # the stamps made a difference (without them this test fails)
        self.assertGreater(seen['history_mattered'], CASES // 20, seen)
