#!/usr/bin/env python3
"""Reads a tox log: passed/failed/skipped per suite, and fails on skips.

A suite is one stestr command of one tox environment (``py3``,
``functional#1`` ...). Each stestr test line reads
``{worker} test.id [0.1s] ... ok|FAILED|SKIPPED: reason``. A skipped test
fails the check unless a line of the allow-list (``tools/ci-skip-allowlist``:
``<regex on the test id> | <reviewed reason>``) matches its id; a suite can
vanish silently by skipping, never by this check.

Usage: ci_summary.py TOX_LOG [--allow-list FILE]; exit 0 only when no test
failed and every skip is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys

# tox 4: "functional: commands[1]> stestr ..." (commands_pre too).
_COMMAND = re.compile(
    r'^(?P<env>[\w.-]+): commands(?P<pre>_pre)?\[(?P<i>\d+)\]> ')
_TEST = re.compile(
    r'^\{\d+\} (?P<id>\S+?)(?: \[[^\]]*\])? \.\.\. '
    r'(?P<status>ok|FAILED|SKIPPED|xfail|uxsuccess)(?:: (?P<reason>.*))?$')
_END_OF_TESTS = re.compile(r'^={4,}$')
# tox 4's closing report: "  pep8: FAIL code 1 (0.41=setup[...]...)".
_ENV_FAILED = re.compile(r'^\s+(?P<env>[\w.-]+): FAIL code (?P<code>\d+)')
DEFAULT_ALLOW_LIST = 'tools/ci-skip-allowlist'
# How much of a failed test's output the closing lines repeat: CI shows
# only the end of the log, so a failure must be readable there.
FAILURE_LINES = 60


@dataclasses.dataclass
class Suite:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # (test id, the first lines stestr printed under it: its traceback).
    failures: list[tuple[str, list[str]]] = dataclasses.field(
        default_factory=list)

    def line(self) -> str:
        return '%s: %d passed, %d failed, %d skipped' % (
            self.name, self.passed, self.failed, len(self.skipped))


@dataclasses.dataclass
class Allowed:
    pattern: re.Pattern[str]
    reason: str


def read_allow_list(lines: list[str], source: str) -> list[Allowed]:
    """``regex | reason`` lines; blank lines and ``#`` comments ignored.

    :raises ValueError: a line without a reason or with a bad regex.
    """
    allowed = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith('#'):
            continue
        pattern, sep, reason = text.partition('|')
        if not sep or not reason.strip() or not pattern.strip():
            raise ValueError(
                '%s line %d: expected "<test id regex> | <reason>", got %r'
                % (source, number, text[:80]))
        try:
            allowed.append(Allowed(re.compile(pattern.strip()),
                                   reason.strip()))
        except re.error as exc:
            raise ValueError('%s line %d: bad regex %r: %s' % (
                source, number, pattern.strip()[:80], exc)) from None
    return allowed


def parse(lines: list[str]) -> list[Suite]:
    """The suites of a tox log, in the order they ran."""
    suites: list[Suite] = []
    current: Suite | None = None
    counts: dict[str, int] = {}
    detail: list[str] | None = None  # lines under the last failed test
    for raw in lines:
        line = raw.rstrip('\n')
        command = _COMMAND.match(line)
        if command or _END_OF_TESTS.match(line):
            detail = None
        if command:
            current = None
            if not command.group('pre'):
                env = command.group('env')
                counts[env] = counts.get(env, 0) + 1
                name = (env if counts[env] == 1
                        else '%s#%d' % (env, counts[env]))
                current = Suite(name)
                suites.append(current)
            continue
        test = _TEST.match(line)
        if test is None or current is None:
            if detail is not None and len(detail) < FAILURE_LINES:
                detail.append(line)
            continue
        detail = None
        status = test.group('status')
        if status in ('ok', 'xfail'):
            current.passed += 1
        elif status == 'SKIPPED':
            current.skipped.append((test.group('id'),
                                    test.group('reason') or ''))
        else:
            current.failed += 1
            detail = []
            current.failures.append((test.group('id'), detail))
    return [s for s in suites if s.passed or s.failed or s.skipped]


def failed_envs(lines: list[str]) -> list[str]:
    """The tox environments that failed, from tox's closing report (a
    lint or type check fails CI without failing any test)."""
    return ['%s (exit %s)' % (m.group('env'), m.group('code'))
            for m in map(_ENV_FAILED.match, lines) if m]


def check(suites: list[Suite], allowed: list[Allowed]) -> list[str]:
    """One line per skip that no allow-list entry covers."""
    problems = []
    for suite in suites:
        for test_id, reason in suite.skipped:
            if not any(a.pattern.search(test_id) for a in allowed):
                problems.append('%s: %s skipped (%s) and is not on the '
                                'allow-list' % (suite.name, test_id, reason))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('log')
    parser.add_argument('--allow-list', default=DEFAULT_ALLOW_LIST)
    args = parser.parse_args(argv)
    try:
        with open(args.log, encoding='utf-8', errors='replace') as f:
            lines = f.readlines()
        suites = parse(lines)
        envs = failed_envs(lines)
        with open(args.allow_list, encoding='utf-8') as f:
            allowed = read_allow_list(f.readlines(), args.allow_list)
    except (OSError, ValueError) as exc:
        print('ci_summary: %s' % exc, file=sys.stderr)
        return 2
    problems = check(suites, allowed)
    for suite in suites:
        print(suite.line())
    for problem in problems:
        print('SKIP NOT ALLOWED: %s' % problem)
    for suite in suites:
        for test_id, detail in suite.failures:
            print('FAILED %s: %s' % (suite.name, test_id))
            for line in detail:
                print('    | %s' % line)
    total = Suite('total')
    for suite in suites:
        total.passed += suite.passed
        total.failed += suite.failed
        total.skipped += suite.skipped
    if not suites:
        print('ci_summary: no test ran in %s' % args.log)
        return 1
    for suite in suites:
        for test_id, _detail in suite.failures:
            print('FAILED %s: %s' % (suite.name, test_id))
    for env in envs:
        print('FAILED tox environment %s' % env)
    # The closing line CI reads: alone on its line.
    print('%d passed, %d failed, %d skipped' % (
        total.passed, total.failed, len(total.skipped)))
    return 1 if total.failed or problems or envs else 0


if __name__ == '__main__':
    sys.exit(main())
