"""The file store under hostile and careless input (issue 12, item 5)."""

from __future__ import annotations

import json
import os
import stat

import fixtures
import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import limits
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.store import file as file_store
from tests.unit.scheduler import fakes


def snapshot(path: str) -> dict[str, bytes]:
    """Every file of the store directory and its bytes (links: target)."""
    out = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.islink(full):
            out[name] = os.readlink(full).encode()
        else:
            with open(full, 'rb') as handle:
                out[name] = handle.read()
    return out


class HostileInputTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.conf = fakes.config(self, self.path)
        self.store = file_store.FileReportStore(self.conf)
        self.store.publish(fakes.sriov_host('h1'))
        self.store.publish(fakes.sriov_host('h2'))

    def assert_refused_unchanged(self, exc_type: type[Exception],
                                 call: object, *args: object) -> str:
        before = snapshot(self.path)
        exc = self.assertRaises(exc_type, call, *args)
        self.assertEqual(before, snapshot(self.path))
        message = str(exc)
        self.assertNotIn('\n', message)
        self.assertLess(len(message), 400, message)
        return message

    def test_bad_consumers_are_refused_and_change_nothing(self) -> None:
        devices = ['0000:81:02.0']
        for consumer, says in (('', 'must not be empty'),
                               ('vm\n1', 'is not a UUID or a token'),
                               ('x' * 10000, '10000 characters long'),
                               (' vm', 'is not a UUID or a token'),
                               ('vm\x00', 'is not a UUID or a token')):
            message = self.assert_refused_unchanged(
                exception.Invalid, self.store.claim, 'h1', consumer, devices)
            self.assertIn(says, message)
            self.assert_refused_unchanged(
                exception.Invalid, self.store.release, 'h1', consumer)
        # The ordinary ones still work: a UUID and a token.
        self.store.claim('h1', '4a3c1b36-66c5-4a44-9a0b-5fe3bd8f0c2e',
                         devices)
        self.store.claim('h1', 'demo-vm1', ['0000:81:02.1'])
        self.assertEqual(['0000:81:02.1'],
                         self.store.release('h1', 'demo-vm1'))

    def test_host_names_with_newlines_are_refused(self) -> None:
        report = fakes.sriov_host('evil\n')
        message = self.assert_refused_unchanged(
            exception.Invalid, self.store.publish, report)
        self.assertIn("'evil\\n'", message)
        self.assert_refused_unchanged(exception.Invalid, self.store.claim,
                                      'h1\n', 'vm1', ['0000:81:02.0'])
        self.assert_refused_unchanged(exception.Invalid, self.store.get,
                                      'h1\n')

    def test_a_file_with_a_bad_host_name_is_skipped(self) -> None:
        with open(os.path.join(self.path, 'evil\n.json'), 'w') as handle:
            handle.write('{}')
        self.assertEqual({'h1', 'h2'}, set(self.store.generations()))

    def test_huge_integer_is_refused_at_publish(self) -> None:
        report = fakes.sriov_host('h3')
        report.devices[0].numa_node = 10 ** 5001
        message = self.assert_refused_unchanged(
            exception.InvalidHostReport, self.store.publish, report)
        self.assertIn('$.devices[0].numa_node', message)
        self.assertIn('integer out of range', message)
        report.devices[0].numa_node = 10 ** 6
        message = self.assert_refused_unchanged(
            exception.InvalidHostReport, self.store.publish, report)
        self.assertIn('is greater than the maximum of %d'
                      % limits.MAX_NUMA_NODE, message)

    def test_huge_values_on_disk_fail_that_host_only(self) -> None:
        text = fakes.sriov_host('h2').to_json().replace(
            '"numa_node": 0', '"numa_node": %s', 1)
        for value in ('9' * 5001, '9' * 4000, '1e999', '"%s"' % ('x' * 10**5)):
            with open(os.path.join(self.path, 'h2.json'), 'w') as handle:
                handle.write(text % value)
            exc = self.assertRaises(exception.InvalidHostReport,
                                    self.store.get, 'h2')
            self.assertLess(len(exc.message), 600, exc.message)
            # A fresh engine each time: the file keeps its inode.
            engine = engine_mod.Engine(self.conf)
            request = engine.request({'pci_passthrough:alias': 'vf:1'})
            engine.refresh()
            answers = {a.host: a for a in engine.explain(request, None,
                                                         exact=True)}
            self.assertTrue(answers['h1'].ok)
            self.assertEqual('bad_report', answers['h2'].reason, value[:9])

    def test_symlinked_lock_is_not_followed(self) -> None:
        target = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'victim')
        with open(target, 'w') as handle:
            handle.write('precious')
        os.unlink(os.path.join(self.path, '.lock'))
        os.symlink(target, os.path.join(self.path, '.lock'))
        message = self.assert_refused_unchanged(
            exception.StoreUnavailable, self.store.publish,
            fakes.sriov_host('h3'))
        self.assertIn('is a symlink', message)
        with open(target) as handle:
            self.assertEqual('precious', handle.read())

    def test_symlinked_report_is_not_read(self) -> None:
        os.rename(os.path.join(self.path, 'h2.json'),
                  os.path.join(self.path, 'elsewhere'))
        os.symlink('elsewhere', os.path.join(self.path, 'h2.json'))
        exc = self.assertRaises(exception.InvalidHostReport,
                                self.store.get, 'h2')
        self.assertIn('symlink', exc.message)

    def test_directory_mode_ignores_the_umask(self) -> None:
        old = os.umask(0)
        self.addCleanup(os.umask, old)
        path = os.path.join(self.path, 'new', 'store')
        self.conf.set_override('path', path, group='file_store')
        store = file_store.FileReportStore(self.conf)
        store.publish(fakes.sriov_host('h1'))
        self.assertEqual(file_store.DIR_MODE,
                         stat.S_IMODE(os.stat(path).st_mode))
        os.chmod(path, 0o777)
        self.path = path
        message = self.assert_refused_unchanged(
            exception.StoreUnavailable, store.publish,
            fakes.sriov_host('h1'))
        self.assertIn('writable by every user', message)

    def test_stale_temp_files_are_cleaned_up(self) -> None:
        # What a claimer killed between mkstemp and rename leaves behind.
        for name in ('.tmp-abc123', '.tmp-zz'):
            with open(os.path.join(self.path, name), 'w') as handle:
                handle.write(json.dumps({'half': 'written'}))
        self.store.claim('h1', 'vm1', ['0000:81:02.0'])
        self.assertEqual([], [n for n in os.listdir(self.path)
                              if n.startswith('.tmp-')])

    def test_oversized_report_file_fails_that_host(self) -> None:
        with open(os.path.join(self.path, 'h2.json'), 'wb') as handle:
            handle.truncate(limits.MAX_REPORT_BYTES + 1)
        exc = self.assertRaises(exception.InvalidHostReport,
                                self.store.get, 'h2')
        self.assertIn('at most %d' % limits.MAX_REPORT_BYTES, exc.message)

    def test_publish_command_is_all_or_nothing(self) -> None:
        import io

        from passthrough_plugin.cmd import scheduler as scheduler_cmd

        good = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'h3.json')
        with open(good, 'w', encoding='utf-8') as handle:
            handle.write(fakes.sriov_host('h3').to_json())
        before = snapshot(self.path)
        err = io.StringIO()
        code = scheduler_cmd.main(
            ['--store-path', self.path, 'publish', good, good + '.missing'],
            out=io.StringIO(), err=err)
        self.assertEqual(2, code)
        self.assertIn('h3.json.missing: No such file', err.getvalue())
        self.assertEqual(before, snapshot(self.path))
