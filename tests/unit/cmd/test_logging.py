"""Console scripts log nothing on an ordinary call, everything on --debug."""

from __future__ import annotations

import logging as std_logging
import os
import re
import subprocess
import sys

import fixtures
import testtools

from passthrough_plugin.cmd import billing as billing_cmd
from passthrough_plugin.demo import hosts as hosts_mod

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
# oslo.log's line: "2026-11-29 18:58:35.306 10965 INFO alembic... [-] ..."
LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \d+ '
                      r'(DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+)', re.M)


def script(name: str) -> str:
    """The installed console script (setup.cfg [entry_points])."""
    return os.path.join(os.path.dirname(sys.executable), name)


class ConsoleScriptLoggingTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.calls = 0

    def run_script(self, name: str, *argv: str
                   ) -> subprocess.CompletedProcess[str]:
        path = script(name)
        self.assertTrue(os.access(path, os.X_OK),
                        '%s is not installed next to %s' % (
                            name, sys.executable))
        env = dict(os.environ)
        env.pop('PASSTHROUGH_DEBUG', None)
        result = subprocess.run([path, *argv], cwd=TOP, env=env,
                                capture_output=True, text=True,
                                timeout=300, check=False)
        self.assertEqual(0, result.returncode,
                         '%s %s: %s' % (name, ' '.join(argv), result.stderr))
        return result

    def fresh(self, what: str) -> str:
        """A new path in the temp dir (a fresh ledger runs alembic)."""
        self.calls += 1
        return os.path.join(self.tmp, '%s-%d' % (what, self.calls))

    def assert_quiet_then_verbose(self, name: str, argv: list[str],
                                  debug_argv: list[str],
                                  library: str | None = None) -> None:
        quiet = self.run_script(name, *argv)
        self.assertEqual('', quiet.stderr,
                         '%s logged on an ordinary call' % name)
        self.assertNotEqual('', quiet.stdout)
        loud = self.run_script(name, *debug_argv)
        found = LOG_LINE.findall(loud.stderr)
        self.assertNotEqual([], found, '%s --debug logged nothing: %r' % (
            name, loud.stderr[:500]))
        if library is not None:
            self.assertIn(('INFO', 'alembic.runtime.migration'), found,
                          'no INFO from %s with --debug' % library)

    def test_billing(self) -> None:
        def argv(debug: bool) -> list[str]:
            return (['--ledger', 'sqlite:///%s' % self.fresh('ledger.db')] +
                    (['--debug'] if debug else []) +
                    ['report', '--from', '2026-01-01', '--to', '2026-02-01'])
        self.assert_quiet_then_verbose('passthrough-billing', argv(False),
                                       argv(True), library='alembic')

    def test_billing_debug_after_the_subcommand(self) -> None:
        loud = self.run_script(
            'passthrough-billing', '--ledger',
            'sqlite:///%s' % self.fresh('ledger.db'), 'report', '--from',
            '2026-01-01', '--to', '2026-02-01', '--debug')
        self.assertIn(('INFO', 'alembic.runtime.migration'),
                      LOG_LINE.findall(loud.stderr))

    def test_scheduler(self) -> None:
        def argv(debug: bool) -> list[str]:
            return (['--store-path', self.fresh('store')] +
                    (['--debug'] if debug else []) + ['examples'])
        self.assert_quiet_then_verbose('passthrough-scheduler', argv(False),
                                       argv(True))

    def test_agent(self) -> None:
        root = self.fresh('host')
        tree = hosts_mod.build(root, hosts_mod.EXAMPLES[0])
        config = os.path.join(self.tmp, 'agent.conf')
        with open(config, 'w') as f:
            f.write('[agent]\nhost = compute-1\n')
        argv = ['discover', '--config-file', config, '--sysfs-root',
                str(tree.sys), '--proc-root', str(tree.proc)]
        self.assert_quiet_then_verbose('passthrough-agent', argv,
                                       argv + ['--debug'])

    def test_demo(self) -> None:
        def argv(debug: bool) -> list[str]:
            return (['--workdir', self.fresh('demo')] +
                    (['--debug'] if debug else []))
        self.assert_quiet_then_verbose('passthrough-demo', argv(False),
                                       argv(True))


class InProcessTest(testtools.TestCase):
    """main() runs many times in one process (tests, the demo): it leaves
    the logging set-up as it found it."""

    def test_logging_state_is_put_back(self) -> None:
        root = std_logging.getLogger()
        handlers, level = list(root.handlers), root.level
        alembic_level = std_logging.getLogger('alembic').level
        excepthook = sys.excepthook
        self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', self.useFixture(
                fixtures.StringStream('stdout')).stream))
        self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', self.useFixture(
                fixtures.StringStream('stderr')).stream))
        ledger = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'l.db')
        self.assertEqual(0, billing_cmd.main([
            '--ledger', 'sqlite:///%s' % ledger, '--debug', 'report',
            '--from', '2026-01-01', '--to', '2026-02-01']))
        self.assertEqual((handlers, level, alembic_level, excepthook),
                         (list(root.handlers), root.level,
                          std_logging.getLogger('alembic').level,
                          sys.excepthook))
