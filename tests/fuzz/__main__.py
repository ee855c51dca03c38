"""``tox -e fuzz``: 100,000 hostile inputs; figures printed last.

``python -m tests.fuzz [SCALE [TARGET...]]``: SCALE (default 1.0)
multiplies every target's number of cases, TARGETs (default: all) pick
some; ``FUZZ_SEED`` fixes the seed (default: random,
printed); ``FUZZ_KEEP=1`` keeps the work directory. Exit 1 on any
traceback, state change by a refused input or refusal message that is not
one short line.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sys
import tempfile
import time
import warnings

from tests.fuzz import cli_targets
from tests.fuzz import harness
from tests.fuzz import strategies as fz_st
from tests.fuzz import targets

# Cases per target at scale 1: 100,000 in all.
GOALS = {
    'device_spec': 20000, 'alias': 15000, 'extra_specs': 20000,
    'host_report_json': 10000, 'host_report_publish': 8000,
    'host_report_on_disk': 4000, 'domain_xml': 10000,
    'cli_scheduler': 5000, 'cli_billing': 4000, 'cli_agent': 3000,
    'cli_demo': 1000,
}


def main(argv: list[str]) -> int:
    here = os.getcwd()
    workdir = tempfile.mkdtemp(
        prefix='passthrough-fuzz-',
        dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
    try:
        return fuzz(argv, workdir)
    finally:
        os.chdir(here)
        if not os.environ.get('FUZZ_KEEP'):
            shutil.rmtree(workdir, ignore_errors=True)


def fuzz(argv: list[str], workdir: str) -> int:
    scale = float(argv[0]) if argv else 1.0
    seed = int(os.environ.get('FUZZ_SEED') or random.randrange(2 ** 32))
    warnings.simplefilter('ignore')
    # The commands' own logging would drown the figures.
    logging.disable(logging.CRITICAL)
    os.chdir(workdir)
    print('fuzz: seed %d, scale %s, in %s' % (seed, scale, workdir),
          flush=True)
    reports = targets.ReportTargets(workdir)
    cli = cli_targets.CliTargets(workdir)
    plan = [
        ('device_spec', fz_st.device_specs, targets.check_device_spec),
        ('alias', fz_st.aliases, targets.check_alias),
        ('extra_specs', fz_st.extra_specs, targets.check_extra_specs),
        ('host_report_json', reports.mutations(), reports.check_parse),
        ('host_report_publish', reports.mutations(),
         reports.check_publish),
        ('host_report_on_disk', reports.mutations(), reports.check_read),
        ('domain_xml', fz_st.domain_xml(), targets.check_domain_xml),
        ('cli_scheduler', cli.scheduler_argv(), cli.check_scheduler),
        ('cli_billing', cli.billing_argv(), cli.check_billing),
        ('cli_agent', cli.agent_argv(), cli.check_agent),
        ('cli_demo', cli.demo_argv(), cli.check_demo),
    ]
    chosen = set(argv[1:]) or set(GOALS)
    unknown = chosen - set(GOALS)
    if unknown:
        print('fuzz: no such target %s; targets: %s' % (
            ', '.join(sorted(unknown)), ', '.join(GOALS)))
        return 2
    tallies = []
    start = time.monotonic()
    for index, (name, strategy, check) in enumerate(plan):
        if name not in chosen:
            continue
        tally = harness.Tally(name, max(1, int(GOALS[name] * scale)))
        harness.run(tally, strategy, check, seed + 1000 * index)
        tallies.append(tally)
        print('fuzz: %-20s %7d cases in %6.1f s%s' % (
            name, tally.cases, tally.seconds,
            '  FINDINGS' if tally.failed else ''), flush=True)
    elapsed = time.monotonic() - start
    for tally in tallies:
        for finding in tally.findings[:harness.MAX_FINDINGS_SHOWN]:
            print('finding in %s: %s' % (tally.name, finding))
    # The figures, last.
    print()
    print('%-20s %8s %8s %8s %6s %6s %6s %8s' % (
        'target', 'cases', 'accepted', 'refused', 'tb', 'state', 'msg',
        'cases/s'))
    for t in tallies:
        print('%-20s %8d %8d %8d %6d %6d %6d %8.0f' % (
            t.name, t.cases, t.accepted, t.refused, t.tracebacks,
            t.state_changes, t.bad_messages, t.cases / max(t.seconds,
                                                          1e-9)))
    total = sum(t.cases for t in tallies)
    goal = sum(t.goal for t in tallies)
    tracebacks = sum(t.tracebacks for t in tallies)
    states = sum(t.state_changes for t in tallies)
    messages = sum(t.bad_messages for t in tallies)
    print('%-20s %8d %8d %8d %6d %6d %6d %8.0f' % (
        'TOTAL', total, sum(t.accepted for t in tallies),
        sum(t.refused for t in tallies), tracebacks, states, messages,
        total / max(elapsed, 1e-9)))
    ok = total >= goal and not (tracebacks or states or messages)
    print('fuzz: %d cases (goal %d) in %.0f s, seed %d: %d tracebacks, %d '
          'state changes by refused input, %d bad messages -> %s' % (
              total, goal, elapsed, seed, tracebacks, states, messages,
              'PASS' if ok else 'FAIL'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
