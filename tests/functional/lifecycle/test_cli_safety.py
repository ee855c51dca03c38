"""Every console script, as a real process: Ctrl-C, closed pipes, bad files.

Ctrl-C is sent once the process is provably blocked reading its config
file: the config is a FIFO, and opening its write end without blocking
succeeds only once the command has it open for reading.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import fixtures
import testtools

BIN = os.path.dirname(sys.executable)
READY_TIMEOUT = 120
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
DEMO_CONFIG = os.path.join(ROOT, 'etc', 'passthrough-demo.conf')
# Runs argv with stdout on a pipe nobody reads, from a process of its own:
# in the test process a child forked by another thread in the window between
# os.pipe() and closing the read end would keep that end open, and the
# command's writes would then succeed.
CLOSED_PIPE = (
    'import os, subprocess, sys\n'
    'read, write = os.pipe()\n'
    'os.close(read)\n'
    'sys.exit(subprocess.run(sys.argv[1:], stdout=write).returncode)\n')


def script(name: str) -> str:
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        raise AssertionError('console script %s is not installed next to '
                             '%s (pip install -e .)' % (name, sys.executable))
    return path


class TestConsoleScripts(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.ledger = 'sqlite:///%s/ledger.sqlite' % self.tmp
        self.store = os.path.join(self.tmp, 'store')
        self.env = dict(os.environ, PYTHONWARNINGS='ignore')
        # A test runner started in the background of a shell ignores
        # SIGINT, and an ignored signal stays ignored across exec: Python
        # then installs no KeyboardInterrupt handler in the commands and the
        # Ctrl-C test hangs. Children of a handled signal get the default.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        self.addCleanup(signal.signal, signal.SIGINT, previous)

    def fifo(self) -> str:
        path = os.path.join(self.tmp, 'config-fifo')
        if not os.path.exists(path):
            os.mkfifo(path)
        return path

    def commands(self, fifo: str) -> list[tuple[str, list[str]]]:
        """Each console script, blocked reading ``fifo``."""
        config = fifo
        return [
            ('passthrough-scheduler', [
                '--config-file', config, '--store-path', self.store,
                'explain', '--extra-spec', 'pci_passthrough:alias=vf:1']),
            # publish: blocked reading the report file, past the config.
            ('passthrough-scheduler', [
                '--store-path', self.store, 'publish', fifo]),
            ('passthrough-billing', [
                '--config-file', config, '--ledger', self.ledger, 'report',
                '--from', '2026-11-01', '--to', '2026-11-02']),
            ('passthrough-agent', [
                'discover', '--config-file', config,
                '--sysfs-root', self.tmp, '--proc-root', self.tmp]),
            ('passthrough-demo', ['--config-file', config,
                                  '--workdir', self.tmp]),
        ]

    def interrupt(self, name: str, args: list[str]) -> None:
        fifo = self.fifo()
        process = subprocess.Popen(
            [script(name), *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.env, cwd=self.tmp)
        self.addCleanup(process.kill)
        deadline = time.monotonic() + READY_TIMEOUT
        writer = None
        while writer is None:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                self.assertIsNone(process.poll(), '%s exited before '
                                  'opening its config file' % name)
                self.assertLess(time.monotonic(), deadline, '%s did not '
                                'open its config file (a FIFO) within %d s'
                                % (name, READY_TIMEOUT))
                time.sleep(0.01)
        try:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=READY_TIMEOUT)
        finally:
            os.close(writer)
        self.assertEqual((130, '%s: interrupted\n' % name, b''),
                         (process.returncode, err.decode(), out), name)

    def test_ctrl_c_is_one_line_and_exit_130(self) -> None:
        for name, args in self.commands(self.fifo()):
            self.interrupt(name, args)

    def test_closed_pipe_exits_quietly(self) -> None:
        config = os.path.join(self.tmp, 'empty.conf')
        with open(config, 'w', encoding='utf-8'):
            pass
        runs = {
            'passthrough-scheduler': ['--store-path', self.store,
                                      'examples'],
            'passthrough-billing': ['--config-file', config, '--ledger',
                                    self.ledger, 'report', '--from',
                                    '2026-11-01', '--to', '2026-11-02'],
            'passthrough-agent': ['discover', '--format', 'json',
                                  '--config-file', config,
                                  '--sysfs-root', self.tmp,
                                  '--proc-root', self.tmp],
            'passthrough-demo': ['--config-file', DEMO_CONFIG,
                                 '--workdir', self.tmp],
        }
        # Both ways stdout can be buffered: an operator's shell leaves it
        # block-buffered, where the demo's first write reached the pipe
        # only in the scheduler main it runs, whose own guard swallowed
        # the error (exit 0); this process may have PYTHONUNBUFFERED set,
        # where the demo's first write failed at once (exit 141).
        for unbuffered in ('', '1'):
            for name, args in runs.items():
                what = '%s PYTHONUNBUFFERED=%s' % (name, unbuffered)
                done = self.into_closed_pipe(script(name), *args,
                                             unbuffered=unbuffered)
                self.assertEqual(b'', done.stderr, what)
                self.assertEqual(141, done.returncode, what)
        # --help: argparse itself swallows the pipe error; still quiet.
        for name in runs:
            done = self.into_closed_pipe(script(name), '--help')
            self.assertIn(done.returncode, (0, 141), name)
            self.assertEqual(b'', done.stderr, name)

    def into_closed_pipe(self, *argv: str, unbuffered: str = ''
                         ) -> subprocess.CompletedProcess[bytes]:
        env = dict(self.env)
        env.pop('PYTHONUNBUFFERED', None)
        if unbuffered:
            env['PYTHONUNBUFFERED'] = unbuffered
        return subprocess.run(
            [sys.executable, '-c', CLOSED_PIPE, *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            cwd=self.tmp, timeout=READY_TIMEOUT, check=False)

    def run_script(self, name: str, *args: str
                   ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script(name), *args], capture_output=True, text=True,
            env=self.env, cwd=self.tmp, timeout=READY_TIMEOUT, check=False)

    def one_line(self, done: subprocess.CompletedProcess[str], code: int,
                 *needles: str) -> None:
        lines = done.stderr.splitlines()
        self.assertEqual(1, len(lines), done.stderr)
        self.assertEqual(code, done.returncode, done.stderr)
        self.assertNotIn('Traceback', done.stderr)
        for needle in needles:
            self.assertIn(needle, lines[0])

    def test_bad_files_are_one_line_naming_them(self) -> None:
        latin1 = os.path.join(self.tmp, 'latin1.xml')
        with open(latin1, 'wb') as out:
            out.write('<domain><name>caf\xe9</name></domain>'.encode(
                'latin-1'))
        binary = os.path.join(self.tmp, 'binary.bin')
        with open(binary, 'wb') as out:
            out.write(bytes(range(256)) * 64)
        config = os.path.join(self.tmp, 'ledger.conf')
        with open(config, 'w', encoding='utf-8') as out:
            out.write('[lifecycle]\nconnection = %s\n' % self.ledger)
        for path in (latin1, binary):
            done = self.run_script('passthrough-agent', 'map',
                                   '--config-file', config,
                                   '--domain-xml', path)
            self.one_line(done, 2, path, 'not well-formed')
            done = self.run_script('passthrough-scheduler', '--store-path',
                                   self.store, 'publish', path)
            self.one_line(done, 2, path, 'not valid JSON')
            done = self.run_script('passthrough-billing', '--ledger',
                                   'sqlite:///%s' % path, 'report',
                                   '--from', '2026-11-01', '--to',
                                   '2026-11-02')
            self.one_line(done, 1, path, 'cannot be opened')
        done = self.run_script('passthrough-demo', '--config-file', binary,
                               '--workdir', self.tmp)
        self.one_line(done, 2, binary)
