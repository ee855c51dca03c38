"""The nova oracle process, random seeds and the difference ledger."""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import testtools
import testtools.content

# nova ships its own fake sysfs nowhere: the oracle runs in a private mount
# namespace (root, util-linux unshare) over a tree it writes per case.
_SCRIPT = ('mount --bind "$DIFF_FAKE_SYS/devices" /sys/bus/pci/devices && '
           'mount --bind "$DIFF_FAKE_SYS/net" /sys/class/net && '
           'exec "$0" -m tests.functional.differential.oracle')


class Oracle:
    """One nova oracle process; ask() sends a case, returns nova's facts."""

    def __init__(self) -> None:
        # tmpfs when there is one: the tree is rewritten for every case
        self.tmp = tempfile.mkdtemp(
            prefix='diff-sys-',
            dir='/dev/shm' if os.path.isdir('/dev/shm') else None)
        for sub in ('devices', 'net'):
            os.mkdir(os.path.join(self.tmp, sub))
        env = dict(os.environ, DIFF_FAKE_SYS=self.tmp)
        # nova logs to stderr; kept for the failure message
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
             _SCRIPT, sys.executable],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.dirname(os.path.abspath(__file__))))))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != json.dumps({'ready': True}):
            errors = self.errors()
            self.close()
            raise AssertionError(
                'the nova oracle did not start (needs root, unshare and '
                'nova in this environment); first line: %r; stderr: %s' % (
                    line, errors))

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-2000:].decode(errors='replace')

    def ask(self, case: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(case) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError('the nova oracle exited (rc %s): %s' % (
                self.proc.poll(), self.errors()))
        answer: dict[str, Any] = json.loads(line)
        if 'crash' in answer:
            raise AssertionError('nova oracle crashed on %s:\n%s' % (
                json.dumps(case), answer['crash']))
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.stderr.close()
        shutil.rmtree(self.tmp)


def seed(name: str) -> int:
    """A random seed per run (DIFF_SEED replays one), printed on failure."""
    value = os.environ.get('DIFF_SEED')
    return int(value) if value else random.SystemRandom().randrange(2**32)


_ORACLE: list[Oracle] = []


def oracle() -> Oracle:
    """One oracle per test process (starting nova costs seconds)."""
    if not _ORACLE:
        _ORACLE.append(Oracle())
        atexit.register(_ORACLE[0].close)
    return _ORACLE[0]


class DifferentialTestCase(testtools.TestCase):
    """The process's oracle; the seed is attached to every failure."""

    oracle: Oracle

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.oracle = oracle()

    def rng(self) -> random.Random:
        value = seed(self.id())
        self.addDetail('seed', testtools.content.text_content(
            'replay with DIFF_SEED=%d' % value))
        self.seed = value
        return random.Random(value)

    def where(self, case: int, what: Any) -> str:
        return 'DIFF_SEED=%d case %d: %s' % (self.seed, case, what)
