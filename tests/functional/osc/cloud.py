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
import uuid
from pathlib import Path
from typing import Any

from passthrough_plugin.osc import settings
from passthrough_plugin.scheduler import engine as engine_mod

REPO = Path(__file__).resolve().parents[3]
MINICLOUD = REPO / 'tools' / 'cloud' / 'minicloud.py'
REUSE = bool(os.environ.get('PASSTHROUGH_OSC_CLOUD_BASE'))
BASE = Path(os.environ.get('PASSTHROUGH_OSC_CLOUD_BASE') or Path(
    os.environ.get('TMPDIR', '/tmp')) / 'passthrough-osc-cloud')
PORT_OFFSET = os.environ.get('PASSTHROUGH_OSC_CLOUD_PORT_OFFSET', '300')
START_TIMEOUT = 3600  # a first install on a loaded 2-core machine
BOOT_TIMEOUT = 600  # a server to turn ACTIVE

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


class NovaResources:
    """A test's view of the cloud's nova: its compute hosts, the first VF
    alias of its nova.conf, and flavors and servers made by the test and
    deleted after it. Mixed into a TestCase (its addCleanup and asserts),
    ``setup_nova`` called from setUp."""

    # Names of the flavors and servers the test makes start with this.
    prefix = 'test'
    conn: Any
    nova_conf: str
    hosts: list[str]
    vf: str

    def setup_nova(self, conn: Any) -> None:
        self.conn = conn
        self.addCleanup(conn.close)
        self.nova_conf = str(BASE / 'etc' / 'nova' / 'nova.conf')
        self.hosts = sorted({s.host for s in conn.compute.services(
            binary='nova-compute')})
        self.assertNotEqual([], self.hosts)
        aliases = engine_mod.Engine(settings.load(self.nova_conf)).aliases
        self.vf = sorted(name for name, alias in aliases.items()
                         if alias.dev_type == 'type-VF')[0]

    def name(self) -> str:
        return '%s-%s' % (self.prefix, uuid.uuid4().hex[:8])

    def flavor(self, specs: dict[str, str]) -> Any:
        """A flavor of this test in nova, deleted afterwards."""
        made = self.conn.compute.create_flavor(
            name=self.name(), ram=128, vcpus=1, disk=0)
        self.addCleanup(self.conn.compute.delete_flavor, made,
                        ignore_missing=True)
        if specs:
            self.conn.compute.create_flavor_extra_specs(made, specs)
        return made

    def boot(self, flavor: Any, name: str | None = None) -> Any:
        """A server of this test, ACTIVE, deleted afterwards."""
        image = next(iter(self.conn.image.images()))
        server = self.conn.compute.create_server(
            name=name or self.name(), flavor_id=flavor.id,
            image_id=image.id, networks='none')
        self.addCleanup(self.conn.compute.delete_server, server,
                        ignore_missing=True)
        return self.conn.compute.wait_for_server(server, wait=BOOT_TIMEOUT)
