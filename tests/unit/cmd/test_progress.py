"""Progress lines on a terminal, nothing on a pipe (cmd.common.Progress)."""

from __future__ import annotations

import datetime
import json
import os
import pty
import select
import subprocess
import threading
from typing import TextIO

import fixtures
import testtools

from passthrough_plugin.agent import sriov
from passthrough_plugin.cmd import common
from passthrough_plugin.lifecycle import billing
from passthrough_plugin.lifecycle import records
from tests.unit.agent import test_cmd as agent_cmd_tests
from tests.unit.agent.fixtures import E1000, IGB_PF
from tests.unit.cmd import test_logging

ERASE = '\r\x1b[K'


class Terminal(fixtures.Fixture):
    """A pseudo-terminal: ``stream`` writes to its slave side, ``read()``
    returns what reached the master side."""

    def _setUp(self) -> None:
        self.master, slave = pty.openpty()
        self.addCleanup(os.close, self.master)
        self.stream: TextIO = os.fdopen(slave, 'w', encoding='utf-8')
        self.addCleanup(self.stream.close)

    def read(self) -> str:
        self.stream.flush()
        data = b''
        while True:
            # Only what is already there: a bounded wait per chunk.
            ready, _w, _x = select.select([self.master], [], [], 1.0)
            if not ready:
                return data.decode()
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side is closed
                return data.decode()
            if not chunk:
                return data.decode()
            data += chunk


class Pipe(fixtures.Fixture):
    """A pipe: ``stream`` writes to it, ``read()`` closes it and returns
    everything written."""

    def _setUp(self) -> None:
        self.read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, self.read_fd)
        self.stream: TextIO = os.fdopen(write_fd, 'w', encoding='utf-8')

    def read(self) -> str:
        self.stream.close()
        with os.fdopen(os.dup(self.read_fd), 'rb') as f:
            return f.read().decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ProgressTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.EnvironmentVariable('TERM', 'xterm'))

    def test_draws_on_a_terminal_and_erases_the_line(self) -> None:
        term = self.useFixture(Terminal())
        with common.Progress('binding', term.stream, interval=0) as bar:
            for n in range(1, 4):
                bar(n, 3)
        shown = term.read()
        self.assertEqual(
            ERASE + 'binding: 1/3 (33%)' + ERASE + 'binding: 2/3 (66%)' +
            ERASE + 'binding: 3/3 (100%)' + ERASE, shown)

    def test_count_without_total(self) -> None:
        term = self.useFixture(Terminal())
        with common.Progress('rows', term.stream, interval=0) as bar:
            bar(7)
        self.assertEqual(ERASE + 'rows: 7' + ERASE, term.read())

    def test_nothing_on_a_pipe(self) -> None:
        pipe = self.useFixture(Pipe())
        bar = common.Progress('binding', pipe.stream, interval=0)
        self.assertFalse(bar.enabled)
        for n in range(1, 4):
            bar(n, 3)
        bar.close()
        self.assertEqual('', pipe.read())

    def test_nothing_on_a_dumb_terminal(self) -> None:
        self.useFixture(fixtures.EnvironmentVariable('TERM', 'dumb'))
        term = self.useFixture(Terminal())
        with common.Progress('x', term.stream, interval=0) as bar:
            bar(1, 1)
        self.assertEqual('', term.read())

    def test_redraws_at_most_every_interval_and_always_the_end(self) -> None:
        term = self.useFixture(Terminal())
        clock = FakeClock()
        with common.Progress('p', term.stream, interval=1.0,
                             clock=clock) as bar:
            bar(1, 10)          # first: drawn
            clock.now = 0.5
            bar(2, 10)          # too soon: skipped
            clock.now = 1.5
            bar(3, 10)          # drawn
            bar(10, 10)         # the end: drawn although too soon
        self.assertEqual(ERASE + 'p: 1/10 (10%)' + ERASE + 'p: 3/10 (30%)' +
                         ERASE + 'p: 10/10 (100%)' + ERASE, term.read())


class LibraryHookTest(testtools.TestCase):
    """The long library calls tell their callback how far they are."""

    def test_billing_sums_with_progress(self) -> None:
        start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        intervals = [records.Interval(
            id=n, instance='i%d' % n, project='p', host='h',
            host_address='0000:01:00.%d' % (n % 8), guest_address=None,
            resource_class='CUSTOM_X', alias=None, source='flavor',
            hotplug_id=None, start=start,
            end=start + datetime.timedelta(hours=1), end_reason='deleted')
            for n in range(2500)]
        seen: list[tuple[int, int]] = []
        lines = billing.aggregate(
            intervals, start, start + datetime.timedelta(days=1),
            lambda done, total: seen.append((done, total)))
        self.assertEqual([(1000, 2500), (2000, 2500), (2500, 2500)], seen)
        self.assertEqual(2500, len(lines))

    def test_vfs_wait_reports_the_vfs_found(self) -> None:
        host = self.useFixture(agent_cmd_tests.agent_fixtures.FakeHost())
        seen: list[tuple[int, int]] = []
        sriov.configure_vfs(host.fs, IGB_PF, 2,
                            progress=lambda d, t: seen.append((d, t)))
        self.assertEqual((2, 2), seen[-1])


class CommandsTest(agent_cmd_tests.CmdTestBase):
    """passthrough-agent configure-vfs and bind draw on a terminal only."""

    def run_on(self, stderr: Terminal | Pipe, *argv: str) -> str:
        self.useFixture(fixtures.EnvironmentVariable('TERM', 'xterm'))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr.stream))
        out = self.useFixture(fixtures.StringStream('stdout')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        command, rest = argv[0], list(argv[1:])
        rc = agent_cmd_tests.cmd.main(
            [command, '--config-file', self.config,
             '--sysfs-root', str(self.host.tree.sys),
             '--proc-root', str(self.host.tree.proc),
             '--state-path', self.host.state_path] + rest,
            conf=agent_cmd_tests.cfg.ConfigOpts(), kernel=self.host.kernel)
        self.assertEqual(0, rc)
        return stderr.read()

    def test_configure_vfs_on_a_terminal(self) -> None:
        shown = self.run_on(self.useFixture(Terminal()), 'configure-vfs',
                            IGB_PF, '2')
        self.assertIn('waiting for the VFs: 2/2 (100%)', shown)
        self.assertTrue(shown.endswith(ERASE), repr(shown))

    def test_configure_vfs_on_a_pipe(self) -> None:
        self.assertEqual('', self.run_on(self.useFixture(Pipe()),
                                         'configure-vfs', IGB_PF, '2'))

    def test_bind_a_group_on_a_terminal(self) -> None:
        shown = self.run_on(self.useFixture(Terminal()), 'bind', *E1000)
        self.assertIn('binding: 1/2 (50%)', shown)
        self.assertIn('binding: 2/2 (100%)', shown)

    def test_bind_on_a_pipe(self) -> None:
        self.assertEqual('', self.run_on(self.useFixture(Pipe()), 'bind',
                                         *E1000))


class PublishScriptTest(testtools.TestCase):
    """passthrough-scheduler publish, the installed script: progress on a
    terminal stderr, nothing on a pipe; stdout the same either way."""

    HOSTS = 40

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        seed = os.path.join(self.tmp, 'seed')
        subprocess.run([test_logging.script('passthrough-scheduler'),
                        '--store-path', seed, 'examples'],
                       capture_output=True, check=True, timeout=300)
        with open(os.path.join(seed, 'compute-1.json')) as f:
            report = json.load(f)
        self.reports = []
        for n in range(self.HOSTS):
            report['host'] = 'host-%02d' % n
            path = os.path.join(self.tmp, 'host-%02d.json' % n)
            with open(path, 'w') as f:
                json.dump(report, f)
            self.reports.append(path)

    def argv(self, store: str) -> list[str]:
        return [test_logging.script('passthrough-scheduler'), '--store-path',
                os.path.join(self.tmp, store), 'publish', *self.reports]

    def test_terminal_then_pipe(self) -> None:
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        proc = subprocess.Popen(self.argv('a'), stdout=subprocess.PIPE,
                                stderr=slave, env=dict(os.environ,
                                                       TERM='xterm'))
        os.close(slave)
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO once the child has exited
                    return
                if not chunk:
                    return
                chunks.append(chunk)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        out, _ = proc.communicate(timeout=300)
        reader.join(timeout=30)
        self.assertFalse(reader.is_alive(), 'the terminal never closed')
        self.assertEqual(0, proc.returncode)
        shown = b''.join(chunks).decode()
        self.assertIn('publishing: %d/%d (100%%)' % (self.HOSTS, self.HOSTS),
                      shown)
        self.assertTrue(shown.endswith(ERASE), repr(shown[-80:]))
        self.assertEqual(self.HOSTS, out.decode().count(': generation 1'))

        piped = subprocess.run(
            self.argv('b'), capture_output=True,
            env=dict(os.environ, TERM='xterm'), timeout=300, check=False)
        self.assertEqual((0, b''), (piped.returncode, piped.stderr))
        self.assertEqual(out, piped.stdout)
