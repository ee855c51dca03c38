"""The plugin's tempest tests against a real local cloud (tools/cloud).

Runs when ``PASSTHROUGH_TEMPEST=1`` (install, set up and start the mini
cloud, run tempest, stop it) or when a mini cloud is already running at
``$MINICLOUD_BASE`` (run tempest against it and leave it up).
``$PASSTHROUGH_TEMPEST_ARGS`` adds minicloud.py options (e.g.
``--nova-conf-extra FILE --service agent=...``) to its own cloud. The tempest
output is kept in ``$PASSTHROUGH_TEMPEST_LOGS`` (default: ``tempest-logs/``
in the working directory), with the cloud's service logs beside it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import testtools

REPO = Path(__file__).resolve().parents[2]
MINICLOUD = REPO / 'tools' / 'cloud' / 'minicloud.py'
BASE = Path(os.environ.get('MINICLOUD_BASE') or Path(
    os.environ.get('TMPDIR', '/tmp')) / 'passthrough-cloud')
REGEX = 'passthrough_tempest_plugin'


def _cloud_running() -> bool:
    """A started mini cloud at BASE whose Keystone answers."""
    if not (BASE / 'tempest' / 'etc' / 'tempest.conf').exists():
        return False
    state = BASE / 'minicloud.json'
    offset = 0
    if state.exists():
        offset = int(json.loads(state.read_text()).get('port_offset', 0))
    try:
        with urllib.request.urlopen(
                f'http://127.0.0.1:{5000 + offset}/v3', timeout=3):
            return True
    except OSError:
        return False


class TempestCloudTest(testtools.TestCase):
    """tempest run --regex passthrough_tempest_plugin passes."""

    def setUp(self) -> None:
        super().setUp()
        self.own_cloud = os.environ.get('PASSTHROUGH_TEMPEST') == '1'
        if not self.own_cloud and not _cloud_running():
            self.skipTest('set PASSTHROUGH_TEMPEST=1 to start a mini cloud '
                          '(tools/cloud/minicloud.py), or start one first')
        self.logs = Path(os.environ.get('PASSTHROUGH_TEMPEST_LOGS')
                         or Path.cwd() / 'tempest-logs')
        self.logs.mkdir(parents=True, exist_ok=True)

    def _minicloud(self, *args: str, timeout: int = 1800) -> str:
        proc = subprocess.run(
            [sys.executable, str(MINICLOUD), *args, '--base', str(BASE)],
            capture_output=True, text=True, timeout=timeout, check=False)
        with open(self.logs / 'minicloud.log', 'a') as fh:
            fh.write('$ minicloud.py {}\n{}{}'.format(
                ' '.join(args), proc.stdout, proc.stderr))
        self.assertEqual(0, proc.returncode, 'minicloud.py {} failed:\n{}'
                         .format(' '.join(args), proc.stderr[-3000:]))
        return proc.stdout

    def _keep_cloud_logs(self) -> None:
        shutil.copytree(BASE / 'logs', self.logs / 'cloud',
                        dirs_exist_ok=True)
        tempest_log = BASE / 'tempest' / 'logs' / 'tempest.log'
        if tempest_log.exists():
            shutil.copy(tempest_log, self.logs / 'tempest.log')

    def test_plugin_tests_pass(self) -> None:
        extra = shlex.split(os.environ.get('PASSTHROUGH_TEMPEST_ARGS', ''))
        # The plugin-enabled cloud unless asked otherwise: every test of
        # the plugin then runs, none may skip.
        plugin = '--no-plugin' not in extra
        if self.own_cloud:
            # This run's log only, not an earlier run's too.
            (self.logs / 'minicloud.log').unlink(missing_ok=True)
            # Leftovers of an interrupted run would hold the ports.
            self._minicloud('stop', timeout=300)
            self.addCleanup(self._minicloud, 'stop', timeout=300)
            self.addCleanup(self._keep_cloud_logs)
            # Only the hooks given here: none saved by a developer's runs.
            self._minicloud('all', '--clear-hooks', '--repo', str(REPO),
                            *(['--plugin'] if plugin else []), *extra)
            self._minicloud('smoke', timeout=600)
        else:
            plugin = _saved_plugin()
        tempest = str(_saved_venv() / 'bin' / 'tempest')
        plugins = subprocess.run([tempest, 'list-plugins'],
                                 capture_output=True, text=True, check=False)
        (self.logs / 'tempest-list-plugins.log').write_text(
            plugins.stdout + plugins.stderr)
        self.assertEqual(0, plugins.returncode, plugins.stderr[-2000:])
        self.assertIn('passthrough_tempest_plugin.plugin', plugins.stdout)
        shutil.copy(BASE / 'tempest' / 'etc' / 'tempest.conf',
                    self.logs / 'tempest.conf')
        # --serial: the device-change test takes a device away from the
        # host for a few seconds; other tests must not look meanwhile.
        proc = subprocess.run(
            [tempest, 'run', '--serial', '--regex', REGEX],
            cwd=BASE / 'tempest', capture_output=True, text=True,
            timeout=1800, check=False)
        out = self.logs / 'tempest-run.log'
        out.write_text(proc.stdout + proc.stderr)
        passed = re.search(r'- Passed: (\d+)', proc.stdout)
        self.assertEqual(0, proc.returncode,
                         f'tempest run failed; see {out}')
        self.assertIsNotNone(passed, f'no tempest totals; see {out}')
        assert passed is not None
        self.assertGreaterEqual(int(passed.group(1)), 1)
        self.assertIn('- Failed: 0', proc.stdout)
        if plugin:
            # Against the plugin-enabled cloud nothing may skip: a skip
            # would hide a harness that lost its agent or its hooks.
            self.assertIn('- Skipped: 0', proc.stdout,
                          f'tests skipped; see {out}')
            # Placement (3), the inventory (3), the host following (1),
            # PCI servers (3), devices' providers and the map (3).
            self.assertGreaterEqual(int(passed.group(1)), 13)


def _saved_venv() -> Path:
    """The cloud's venv: $BASE/venv unless started with --venv."""
    state = BASE / 'minicloud.json'
    if state.exists():
        venv = json.loads(state.read_text()).get('venv')
        if venv:
            return Path(venv)
    return BASE / 'venv'


def _saved_plugin() -> bool:
    state = BASE / 'minicloud.json'
    if not state.exists():
        return False
    return bool(json.loads(state.read_text()).get('plugin', False))
