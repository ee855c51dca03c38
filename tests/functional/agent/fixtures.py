"""The real oslo.privsep daemon, started for a test on a fake sysfs root."""

from __future__ import annotations

import os
import sys

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from passthrough_plugin.agent import privsep
from passthrough_plugin.conf import agent as agent_conf

HELPER = os.path.join(os.path.dirname(sys.executable), 'privsep-helper')


class PrivsepDaemon(fixtures.Fixture):
    """Starts the agent's privileged daemon for real (this runs as root).

    ``fork``: forked from this process, as the agent does when run as root;
    otherwise ``privsep-helper`` is executed with ``--config-file`` (how
    sudo starts it for an unprivileged agent), and only that file tells
    the daemon its root: this process's ``[agent] sysfs_root`` stays /sys.
    """

    def __init__(self, sysfs_root: str, fork: bool = True) -> None:
        super().__init__()
        self.sysfs_root = sysfs_root
        self.fork = fork
        self.config_path = ''
        self._forked = 0

    def _setUp(self) -> None:
        if os.geteuid() != 0:
            raise AssertionError('the privsep daemon tests need root (the '
                                 'daemon is started for real)')
        conf = self.useFixture(config_fixture.Config(cfg.CONF))
        agent_conf.register_opts(cfg.CONF)
        privsep.sysfs_admin.set_client_mode(True)
        self.addCleanup(privsep.sysfs_admin.stop)
        if self.fork:
            conf.config(group='agent', sysfs_root=self.sysfs_root)
            # The daemon is the child this start forks: this process may
            # have other children still running (the PostgreSQL server of
            # an earlier test, a Placement server, the nova oracle).
            before = _children(os.getpid())
            privsep.sysfs_admin.start(privsep.priv_context.Method.FORK)
            forked = _children(os.getpid()) - before
            if len(forked) != 1:
                raise AssertionError(
                    'starting the privsep daemon forked %d processes (%s), '
                    'expected one' % (len(forked), sorted(forked)))
            self._forked = int(forked.pop())
            return
        directory = self.useFixture(fixtures.TempDir()).path
        path = self.config_path = os.path.join(directory,
                                               'privileged.conf')
        with open(path, 'w') as out:
            out.write('[agent]\nsysfs_root = %s\n' % self.sysfs_root)
        conf.config(group='passthrough_agent_privileged',
                    helper_command='%s --config-file %s' % (HELPER, path))
        privsep.sysfs_admin.start(privsep.priv_context.Method.ROOTWRAP)

    def pid(self) -> int:
        """The daemon's process id: the child the start forked (fork), or
        the helper that was given our config file (it forks away from its
        parent)."""
        if self.fork:
            if str(self._forked) not in _children(os.getpid()):
                raise AssertionError('the forked privsep daemon (pid %d) is '
                                     'gone' % self._forked)
            return self._forked
        me = str(os.getpid())
        for entry in os.listdir('/proc'):
            if entry.isdigit() and entry != me and \
                    self.config_path in _cmdline(entry):
                return int(entry)
        raise AssertionError('no privsep daemon process found (fork=%s)'
                             % self.fork)

    def status(self) -> dict[str, str]:
        return _status(str(self.pid()))


def _children(pid: int) -> set[str]:
    """The process ids whose parent is ``pid``."""
    me = str(pid)
    return {entry for entry in os.listdir('/proc')
            if entry.isdigit() and _status(entry).get('PPid') == me}


def _status(pid: str) -> dict[str, str]:
    try:
        with open('/proc/%s/status' % pid) as src:
            return dict(line.rstrip('\n').split(':\t', 1)
                        for line in src if ':\t' in line)
    except OSError:
        return {}


def _cmdline(pid: str) -> str:
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as src:
            return src.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''
