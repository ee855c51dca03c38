"""Run ``openstack`` in-process, as OSC's own functional tests call it."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import sys
from typing import Any

import fixtures
import testtools


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_osc(argv: list[str]) -> Result:
    """``openstack <argv>`` in this process; stdout and stderr captured.

    OSC configures the root logger on every run (its error lines go
    there): the handlers it adds are removed again, so one run's stream
    never receives another run's lines.
    """
    from openstackclient import shell

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = shell.OpenStackShell().run(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    finally:
        sys.stdout, sys.stderr = saved
        root.handlers[:] = handlers
        root.setLevel(level)
    return Result(code, out.getvalue(), err.getvalue())


class OscTestCase(testtools.TestCase):
    """No OS_* variable of the caller's shell leaks into a test."""

    def setUp(self) -> None:
        super().setUp()
        for name in list(os.environ):
            if name.startswith('OS_') or name in (
                    'PASSTHROUGH_CONFIG_FILE', 'OS_CLOUD'):
                self.useFixture(fixtures.EnvironmentVariable(name))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        # clouds.yaml of the caller must not be found either.
        self.useFixture(fixtures.EnvironmentVariable('HOME', self.tmp))
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', os.path.join(self.tmp, 'clouds.yaml')))

    def write_config(self, text: str, name: str = 'plugin.conf') -> str:
        path = os.path.join(self.tmp, name)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
        return path

    def osc(self, *argv: str, code: int = 0) -> Result:
        """Run ``openstack``; fail with its stderr unless it exits ``code``."""
        result = run_osc(list(argv))
        self.assertEqual(code, result.code, 'openstack %s exited %d:\n%s%s'
                         % (' '.join(argv), result.code, result.err,
                            result.out))
        return result
