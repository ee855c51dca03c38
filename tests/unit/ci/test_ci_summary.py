""".ci/run's closing check: per-suite counts, and skips fail CI."""

from __future__ import annotations

import os
import subprocess
import sys

import fixtures
import testtools

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
TOOL = os.path.join(TOP, 'tools', 'ci_summary.py')

# What tox 4 and stestr print, cut down: two environments, three suites.
SAMPLE = """\
py3: install_deps> python -I -m pip install -r requirements.txt
py3: commands[0]> stestr --test-path=./tests/unit run
{0} tests.unit.pci.test_address.AddressTest.test_parse [0.001s] ... ok
{1} tests.unit.pci.test_address.AddressTest.test_glob [0.002s] ... ok
{1} tests.unit.pci.test_pools.PoolTest.test_fit [0.010s] ... ok
py3: commands[1]> stestr slowest
functional: commands_pre[0]> bash tools/install-system-deps.sh
functional: commands[0]> stestr --test-path=./tests/functional run
{0} tests.functional.test_differential_nova.FitTest.test_random ... %(skip)s
{1} tests.functional.placement.test_publish.PublishTest.test_one [3.1s] ... ok
functional: commands[1]> env PASSTHROUGH_NOVA_TESTS=1 stestr run nova
{0} tests.functional.nova.test_scheduler.PackTest.test_picks [5.0s] ... ok
{1} tests.functional.nova.test_scheduler.SpreadTest.test_picks ... %(fail)s
"""


class CiSummaryTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def _run(self, log: str, allow: str = '') -> tuple[int, str]:
        log_path = os.path.join(self.dir, 'tox.log')
        allow_path = os.path.join(self.dir, 'allow')
        with open(log_path, 'w') as f:
            f.write(log)
        with open(allow_path, 'w') as f:
            f.write(allow)
        proc = subprocess.run(
            [sys.executable, TOOL, log_path, '--allow-list', allow_path],
            capture_output=True, text=True, timeout=60, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    def test_clean_run_passes_with_counts_per_suite(self) -> None:
        rc, out = self._run(SAMPLE % {'skip': 'ok', 'fail': 'ok'})
        self.assertEqual(0, rc, out)
        self.assertEqual([
            'py3: 3 passed, 0 failed, 0 skipped',
            'functional: 2 passed, 0 failed, 0 skipped',
            'functional#2: 2 passed, 0 failed, 0 skipped',
            '7 passed, 0 failed, 0 skipped'], out.splitlines())

    def test_a_skip_fails_ci_and_names_the_test(self) -> None:
        rc, out = self._run(SAMPLE % {
            'skip': 'SKIPPED: nova is not installed', 'fail': 'ok'})
        self.assertEqual(1, rc, out)
        self.assertIn('functional: 1 passed, 0 failed, 1 skipped', out)
        self.assertIn(
            'SKIP NOT ALLOWED: functional: tests.functional.'
            'test_differential_nova.FitTest.test_random skipped (nova is not '
            'installed) and is not on the allow-list', out)
        self.assertEqual('6 passed, 0 failed, 1 skipped',
                         out.splitlines()[-1])

    def test_an_allowed_skip_passes(self) -> None:
        rc, out = self._run(
            SAMPLE % {'skip': 'SKIPPED: no GPU', 'fail': 'ok'},
            allow='# reviewed\n'
                  r'test_differential_nova\.FitTest | needs a GPU' '\n')
        self.assertEqual(0, rc, out)
        self.assertNotIn('NOT ALLOWED', out)

    def test_a_failure_fails(self) -> None:
        rc, out = self._run(SAMPLE % {'skip': 'ok', 'fail': 'FAILED'})
        self.assertEqual(1, rc, out)
        self.assertIn('functional#2: 1 passed, 1 failed, 0 skipped', out)

    def test_the_closing_lines_name_the_failure_and_its_traceback(
            self) -> None:
        # CI shows only the end of the log: the failure must be there.
        traceback = ('\nCaptured traceback:\n~~~~~~~~~~~~~~~~~~~\n'
                     '    Traceback (most recent call last):\n'
                     '    AssertionError: 0 not greater than 0\n'
                     + ''.join('    noise %d\n' % i for i in range(200)))
        log = SAMPLE % {'skip': 'ok', 'fail': 'FAILED' + traceback}
        log += '\n======\nTotals\n======\n - Failed: 1\n'
        rc, out = self._run(log)
        self.assertEqual(1, rc, out)
        lines = out.splitlines()
        test_id = 'tests.functional.nova.test_scheduler.SpreadTest.test_picks'
        self.assertEqual(['FAILED functional#2: ' + test_id,
                          '6 passed, 1 failed, 0 skipped'], lines[-2:])
        start = lines.index('FAILED functional#2: ' + test_id)
        self.assertIn(
            '    |     AssertionError: 0 not greater than 0', lines[start:])
        # A bounded excerpt, never the Totals that follow it.
        self.assertLess(len(lines), 80)
        self.assertNotIn('    | Totals', lines)

    def test_a_failed_lint_env_is_named_at_the_end(self) -> None:
        # Every test passed, but tox failed on ruff: the end says which.
        log = SAMPLE % {'skip': 'ok', 'fail': 'ok'} + (
            '  pep8: FAIL code 1 (0.41=setup[0.2]+cmd[0.21] seconds)\n'
            '  py3: OK (207.27=setup[56.55]+cmd[149.47,1.24] seconds)\n'
            '  evaluation failed :( (2520.63 seconds)\n')
        rc, out = self._run(log)
        self.assertEqual(1, rc, out)
        self.assertEqual(['FAILED tox environment pep8 (exit 1)',
                          '7 passed, 0 failed, 0 skipped'],
                         out.splitlines()[-2:])

    def test_no_test_at_all_fails(self) -> None:
        rc, out = self._run(
            'pep8: commands[0]> ruff check\nAll checks passed!\n')
        self.assertEqual(1, rc, out)
        self.assertIn('no test ran', out)

    def test_allow_list_line_without_reason_is_an_error(self) -> None:
        rc, out = self._run(SAMPLE % {'skip': 'ok', 'fail': 'ok'},
                            allow='test_differential_nova\n')
        self.assertEqual(2, rc, out)
        self.assertIn('line 1: expected "<test id regex> | <reason>"', out)

    def test_ci_run_uses_this_check_and_the_repo_allow_list(self) -> None:
        with open(os.path.join(TOP, '.ci', 'run')) as f:
            script = f.read()
        self.assertIn('tools/ci_summary.py "$LOG" --allow-list '
                      'tools/ci-skip-allowlist', script)
        rc = subprocess.run(
            [sys.executable, TOOL, os.devnull, '--allow-list',
             os.path.join(TOP, 'tools', 'ci-skip-allowlist')],
            capture_output=True, text=True, timeout=60, check=False)
        # The repo's allow-list parses (the empty log then fails: no tests).
        self.assertEqual(1, rc.returncode, rc.stdout + rc.stderr)
        self.assertIn('no test ran', rc.stdout)
