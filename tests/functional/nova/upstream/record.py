"""Writes baseline.json from a baseline run's subunit stream on stdin.

    PASSTHROUGH_NOVA_TESTS=1 PASSTHROUGH_NOVA_UPSTREAM=baseline \\
        stestr --test-path=./tests/functional run \\
        '^tests\\.functional\\.nova\\.upstream\\.'
    stestr last --subunit | python -m tests.functional.nova.upstream.record

(``tox -e nova-upstream-baseline`` does both.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import subunit
import testtools

from tests.functional.nova.upstream import harness

OWN = 'tests.functional.nova.upstream.test_harness.'


def _last_line(details: dict[str, Any], *names: str) -> str:
    for name in names:
        if name in details:
            lines = [line.strip() for line in
                     details[name].as_text().splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
    return 'no reason given'


def record(stream: Any) -> dict[str, Any]:
    from nova import version

    found: list[dict[str, Any]] = []
    result = testtools.StreamToDict(found.append)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(stream).run(result)
    result.stopTestRun()
    tests = [t for t in found if not t['id'].startswith(OWN)]
    skipped = {t['id']: _last_line(t['details'], 'reason')
               for t in tests if t['status'] == 'skip'}
    failing = {t['id']: _last_line(t['details'], 'traceback')
               for t in tests if t['status'] not in ('success', 'skip')}
    return {
        'nova': version.version_string(),
        'why': 'nova\'s own PCI functional tests, run by this harness '
               'without the plugin (PASSTHROUGH_NOVA_UPSTREAM=baseline): '
               'with the plugin every test must pass that passes here; '
               'only the tests skipped here may skip there.',
        'tests': len(tests),
        'passed': sum(t['status'] == 'success' for t in tests),
        'skipped': skipped,
        'failing': failing,
    }


def main() -> int:
    data = record(sys.stdin.buffer)
    with open(harness.BASELINE, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')
    print('%s: %d tests, %d passed, %d skipped, %d failing' % (
        harness.BASELINE, data['tests'], data['passed'],
        len(data['skipped']), len(data['failing'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
