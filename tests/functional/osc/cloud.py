"""A tools/cloud mini cloud for the OSC tests, started once per worker.

The first test of the worker starts a cloud from nothing in
``${TMPDIR:-/tmp}/passthrough-osc-cloud`` (``minicloud.py all``, with
``--port-offset`` ``$PASSTHROUGH_OSC_CLOUD_PORT_OFFSET``, default 300, so
it never meets the tempest run's cloud); the worker stops it when it
exits. ``$PASSTHROUGH_OSC_CLOUD_ARGS`` adds minicloud.py options (e.g.
``--venv DIR`` to share a services venv). With
``$PASSTHROUGH_OSC_CLOUD_BASE`` set, a cloud already running there is used
and left running (a developer's loop). .stestr.conf keeps the tests of
this cloud in one worker.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MINICLOUD = REPO / 'tools' / 'cloud' / 'minicloud.py'
REUSE = bool(os.environ.get('PASSTHROUGH_OSC_CLOUD_BASE'))
BASE = Path(os.environ.get('PASSTHROUGH_OSC_CLOUD_BASE') or Path(
    os.environ.get('TMPDIR', '/tmp')) / 'passthrough-osc-cloud')
PORT_OFFSET = os.environ.get('PASSTHROUGH_OSC_CLOUD_PORT_OFFSET', '300')
START_TIMEOUT = 3600  # a first install on a loaded 2-core machine

_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


class CloudError(Exception):
    """The mini cloud could not be started: the tests fail, never skip."""


def _offset() -> int:
    state = BASE / 'minicloud.json'
    if state.exists():
        return int(json.loads(state.read_text()).get('port_offset', 0))
    return int(PORT_OFFSET)


def running() -> bool:
    """A started cloud at BASE whose Keystone answers."""
    if not (BASE / 'admin-openrc').exists():
        return False
    try:
        with urllib.request.urlopen(
                'http://127.0.0.1:%d/v3' % (5000 + _offset()), timeout=5):
            return True
    except OSError:
        return False


def _minicloud(*args: str, timeout: int) -> None:
    log = BASE.parent / (BASE.name + '-minicloud.log')
    with open(log, 'a', encoding='utf-8') as out:
        proc = subprocess.run(
            [sys.executable, str(MINICLOUD), *args, '--base', str(BASE)],
            stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
            check=False)
    if proc.returncode != 0:
        tail = log.read_text(encoding='utf-8', errors='replace')[-3000:]
        raise CloudError('minicloud.py %s exited %d; its log %s ends:\n%s'
                         % (' '.join(args), proc.returncode, log, tail))


def _stop() -> None:
    _minicloud('stop', timeout=300)


def openrc() -> dict[str, str]:
    """The ``OS_*`` variables of the cloud's admin (``admin-openrc``)."""
    env: dict[str, str] = {}
    for line in (BASE / 'admin-openrc').read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] != ['export']:
            continue
        for word in words[1:]:
            key, _sep, value = word.partition('=')
            if key.startswith('OS_'):
                env[key] = value
    return env


def ensure() -> Path:
    """The base directory of a running cloud; started on first call.

    :raises CloudError: with the end of minicloud.py's log.
    """
    with _LOCK:
        error = _STATE.get('error')
        if isinstance(error, CloudError):
            raise error
        if 'base' in _STATE:
            return BASE
        try:
            if not (REUSE and running()):
                # Leftovers of an interrupted run would hold the ports.
                _stop()
                extra = shlex.split(
                    os.environ.get('PASSTHROUGH_OSC_CLOUD_ARGS', ''))
                atexit.register(_stop)
                _minicloud('all', '--clear-hooks', '--plugin', '--repo',
                           str(REPO), '--port-offset', PORT_OFFSET, *extra,
                           timeout=START_TIMEOUT)
                if not running():
                    raise CloudError('minicloud.py all succeeded but '
                                     'Keystone at %s does not answer' % BASE)
        except CloudError as exc:
            _STATE['error'] = exc
            raise
        _STATE['base'] = BASE
        return BASE
