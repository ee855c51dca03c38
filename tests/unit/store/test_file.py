"""The file report store: atomic files, generations, claims under a lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import file as file_store
from passthrough_plugin.store import loader
from tests.unit.scheduler import fakes


class FileStoreTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.conf = fakes.config(self, self.path)
        self.store = file_store.FileReportStore(self.conf)

    def test_publish_get_round_trip_and_generation(self) -> None:
        self.assertEqual(1, self.store.publish(fakes.sriov_host('h1')))
        self.assertEqual(2, self.store.publish(fakes.sriov_host('h1')))
        got = self.store.get('h1')
        self.assertEqual(2, got.generation)
        self.assertEqual(10, len(got.devices))
        self.assertEqual({'h1': 2}, self.store.generations())
        self.assertEqual(['h1'], self.store.hosts())

    def test_files_are_replaced_not_rewritten(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        inode = os.stat(os.path.join(self.path, 'h1.json')).st_ino
        self.store.publish(fakes.sriov_host('h1'))
        self.assertNotEqual(
            inode, os.stat(os.path.join(self.path, 'h1.json')).st_ino)
        leftovers = [n for n in os.listdir(self.path)
                     if n.startswith('.tmp-')]
        self.assertEqual([], leftovers)

    def test_missing_host(self) -> None:
        self.assertRaises(exception.HostReportNotFound, self.store.get, 'h9')
        self.assertEqual({}, self.store.generations())

    def test_bad_host_name_is_refused(self) -> None:
        self.assertRaises(exception.Invalid, self.store.get, '../etc/x')

    def test_corrupt_file_fails_that_host_only(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        self.store.publish(fakes.sriov_host('h2'))
        with open(os.path.join(self.path, 'h2.json'), 'w') as f:
            f.write('{"version": 1, "host": "h2", "gener')
        self.assertEqual(10, len(self.store.get('h1').devices))
        exc = self.assertRaises(exception.InvalidHostReport,
                                self.store.get, 'h2')
        self.assertIn('h2.json', exc.message)
        self.assertIn('not valid JSON', exc.message)
        self.assertEqual({'h1', 'h2'}, set(self.store.generations()))

    def test_file_of_another_host_is_invalid(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        os.rename(os.path.join(self.path, 'h1.json'),
                  os.path.join(self.path, 'h3.json'))
        exc = self.assertRaises(exception.InvalidHostReport,
                                self.store.get, 'h3')
        self.assertIn("report of host 'h1'", exc.message)

    def test_outside_write_changes_the_generation_token(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        before = self.store.generations()['h1']
        text = fakes.sriov_host('h1', used_vfs=1).to_json()
        tmp = os.path.join(self.path, 'x.tmp')
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.path, 'h1.json'))
        after = self.store.generations()['h1']
        self.assertNotEqual(before, after)
        # The next write through the store adopts the file, above before.
        self.store.release('h1', 'inst-0')
        self.assertGreater(self.store.generations()['h1'], before)

    def test_claim_is_all_or_none(self) -> None:
        self.store.publish(fakes.sriov_host('h1', used_vfs=1))
        taken = '0000:81:02.0'  # allocated to inst-0
        free = '0000:81:02.1'
        self.assertRaises(exception.ClaimFailed, self.store.claim, 'h1',
                          'c1', [free, taken])
        self.assertEqual('available', self.store.get('h1').device(
            free).status)
        self.store.claim('h1', 'c1', [free])
        dev = self.store.get('h1').device(free)
        self.assertEqual(('claimed', 'c1'), (dev.status, dev.owner))

    def test_claim_checks_generation(self) -> None:
        gen = self.store.publish(fakes.sriov_host('h1'))
        self.assertRaises(exception.GenerationConflict, self.store.claim,
                          'h1', 'c1', ['0000:81:02.0'],
                          expected_generation=gen - 1)
        self.assertEqual(gen + 1, self.store.claim(
            'h1', 'c1', ['0000:81:02.0'], expected_generation=gen))

    def test_claim_takes_the_whole_iommu_group(self) -> None:
        self.store.publish(fakes.sriov_host('h1', shared_group=True))
        self.store.claim('h1', 'c1', ['0000:81:02.0'])
        report = self.store.get('h1')
        owned = sorted(d.address for d in report.devices
                       if d.owner == 'c1')
        self.assertEqual(['0000:81:02.0', '0000:81:02.1', '0000:81:02.2',
                          '0000:81:02.3'], owned)

    def test_claim_unknown_device(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        exc = self.assertRaises(exception.ClaimFailed, self.store.claim,
                                'h1', 'c1', ['0000:99:00.0'])
        self.assertIn('0000:99:00.0 is not in the host report', exc.message)

    def test_release_by_consumer(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        self.store.claim('h1', 'c1', ['0000:81:02.0', '0000:81:02.1'])
        self.store.claim('h1', 'c2', ['0000:82:02.0'])
        self.assertEqual(['0000:81:02.0', '0000:81:02.1'],
                         self.store.release('h1', 'c1'))
        self.assertEqual([], self.store.release('h1', 'c1'))
        owners = {d.owner for d in self.store.get('h1').devices}
        self.assertEqual({None, 'c2'}, owners)

    def test_claims_survive_republish(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        self.store.claim('h1', 'c1', ['0000:81:02.0', '0000:82:02.0'],
                         source='hotplug')
        # The agent re-publishes without the second PF's VFs.
        fresh = fakes.sriov_host('h1')
        fresh.devices = [d for d in fresh.devices
                         if not d.address.startswith('0000:82:02')]
        self.store.publish(fresh)
        report = self.store.get('h1')
        kept = report.device('0000:81:02.0')
        self.assertEqual(('claimed', 'c1', 'hotplug'),
                         (kept.status, kept.owner, kept.source))
        gone = report.device('0000:82:02.0')
        self.assertEqual(('unavailable', 'c1'), (gone.status, gone.owner))
        # Still kept on the next publish, until released.
        self.store.publish(fresh)
        self.assertIsNotNone(self.store.get('h1').device('0000:82:02.0'))
        self.store.release('h1', 'c1')
        self.store.publish(fresh)
        self.assertIsNone(self.store.get('h1').device('0000:82:02.0'))

    def test_corrupt_file_is_replaced_by_publish(self) -> None:
        with open(os.path.join(self.path, 'h1.json'), 'w') as f:
            f.write('garbage')
        self.store.publish(fakes.sriov_host('h1'))
        self.assertEqual(10, len(self.store.get('h1').devices))

    def test_remove(self) -> None:
        self.store.publish(fakes.sriov_host('h1'))
        self.store.remove('h1')
        self.assertEqual({}, self.store.generations())
        self.assertRaises(exception.HostReportNotFound, self.store.remove,
                          'h1')
        # A host that comes back continues above its old generation.
        self.assertEqual(2, self.store.publish(fakes.sriov_host('h1')))

    def test_unwritable_directory_is_store_unavailable(self) -> None:
        blocker = os.path.join(self.path, 'not-a-dir')
        with open(blocker, 'w') as f:
            f.write('x')
        self.useFixture(fixtures.MonkeyPatch(
            'passthrough_plugin.store.file.FileReportStore.__init__',
            lambda s, c: setattr(s, 'path', blocker)))
        store = file_store.FileReportStore(self.conf)
        self.assertRaises(exception.StoreUnavailable, store.publish,
                          fakes.sriov_host('h1'))

    def test_stuck_lock_holder_times_out(self) -> None:
        import fcntl

        self.store.publish(fakes.sriov_host('h1'))
        self.conf.set_override('lock_timeout', 0.2, 'file_store')
        fd = os.open(os.path.join(self.path, '.lock'), os.O_RDWR)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX)  # another holder (flock is per fd)
        exc = self.assertRaises(exception.StoreUnavailable, self.store.claim,
                                'h1', 'c1', ['0000:81:02.0'])
        self.assertIn('lock_timeout', exc.message)
        # Readers never take the lock.
        self.assertEqual(1, self.store.get('h1').generation)
        fcntl.flock(fd, fcntl.LOCK_UN)
        self.store.claim('h1', 'c1', ['0000:81:02.0'])

    def test_loader_builds_the_configured_store(self) -> None:
        store = loader.load_store(self.conf)
        self.assertIsInstance(store, file_store.FileReportStore)
        self.assertEqual(self.path, store.path)

    def test_loader_names_unknown_driver(self) -> None:
        self.conf.set_override('driver', 'nosuch', group='report_store')
        exc = self.assertRaises(exception.InvalidConfig, loader.load_store,
                                self.conf)
        self.assertIn("[report_store] driver='nosuch'", exc.message)
        self.assertIn('file', exc.message)


RACER = textwrap.dedent('''
    import sys
    from oslo_config import cfg
    from passthrough_plugin import conf as conf_pkg
    from passthrough_plugin import exception
    from passthrough_plugin.store import file as file_store

    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    conf([])
    conf.set_override('path', sys.argv[1], group='file_store')
    store = file_store.FileReportStore(conf)
    me = sys.argv[2]
    won = []
    sys.stdin.readline()  # start together
    for _ in range(40):
        report = store.get('h1')
        free = [d.address for d in report.devices
                if d.status == 'available' and d.dev_type == 'type-VF']
        if not free:
            break
        # Everyone goes for the same device: the lock must serialise.
        try:
            store.claim('h1', '%s-%d' % (me, len(won)), [free[0]])
            won.append(free[0])
        except exception.ClaimFailed:
            pass
    print(' '.join(won))
''')


class ClaimRaceTest(testtools.TestCase):
    """Several processes claim from one host at once: never twice."""

    def test_processes_never_share_a_device(self) -> None:
        path = self.useFixture(fixtures.TempDir()).path
        conf = fakes.config(self, path)
        store = file_store.FileReportStore(conf)
        store.publish(fakes.sriov_host('h1', pfs=1, vfs=12))
        env = dict(os.environ, PYTHONPATH=os.getcwd())
        procs = [subprocess.Popen(
            [sys.executable, '-c', RACER, path, 'p%d' % n], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for n in range(3)]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write('go\n')
            proc.stdin.flush()
        won: list[str] = []
        for proc in procs:
            out, _err = proc.communicate(timeout=120)
            self.assertEqual(0, proc.returncode)
            won.extend(out.split())
        self.assertEqual(len(won), len(set(won)), won)
        self.assertEqual(12, len(won))
        final = store.get('h1')
        claimed = [d for d in final.devices if d.status == 'claimed']
        self.assertEqual(12, len(claimed))
        self.assertEqual(12, len({d.owner for d in claimed}))
        index = json.load(open(os.path.join(path, '.index.json')))
        self.assertEqual(final.generation, index['h1'][0])
        self.assertEqual(13, final.generation)


class ReportFormatTest(testtools.TestCase):

    def test_stored_file_is_a_v1_report(self) -> None:
        path = self.useFixture(fixtures.TempDir()).path
        store = file_store.FileReportStore(fakes.config(self, path))
        store.publish(fakes.sriov_host('h1'))
        with open(os.path.join(path, 'h1.json')) as f:
            data = json.load(f)
        report_mod.validate(data)
        self.assertEqual(1, data['generation'])
