"""Prints doc/lifecycle.rst's walkthrough of hotplug through domain rewrites
and moves, and of ``openstack pci server attach|detach``, for real.

``python -m tests.functional.nova.hotplug_follow_walkthrough``: two fake
compute hosts (sysfs trees, nova's fakelibvirt) share a file store and an
SQLite ledger; each runs the agent's event thread as ``run`` starts it;
``openstack`` runs in-process; the real clock.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import sys
from collections.abc import Sequence

from passthrough_plugin.agent import hotplug_follow
from passthrough_plugin.cmd import billing
from tests.functional.nova import hotplug_fixtures as hf
from tests.functional.osc import base

WAIT = 60.0


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def run(env: hf.HotplugHost, argv: Sequence[str]) -> None:
    """Print ``$ command`` and what it printed (stdout, then stderr)."""
    print('$ %s' % ' '.join(argv))
    if argv[0] == 'openstack':
        result = base.run_osc(['--passthrough-config-file', env.config]
                              + list(argv[1:]))
        rc, text = result.code, result.out + result.err
    else:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(out):
            rc = billing.main(['--config-file', env.config]
                              + list(argv[1:]))
        text = out.getvalue()
    sys.stdout.write(text)
    if rc:
        print('(exit %d)' % rc)
    print()


def settle(follower: hotplug_follow.Follower, count: int) -> None:
    if not follower.wait_handled(count, WAIT):
        raise SystemExit('%s handled %d events, expected %d' % (
            follower.host, follower.handled, count))


class Lines(logging.Handler):
    """The agents' log lines about hot-plugged devices, as they come."""

    def emit(self, record: logging.LogRecord) -> None:
        print('  %s %s' % (record.levelname, record.getMessage()))


def main() -> None:
    plane = hf.ControlPlane()
    plane.setUp()
    plane.clock = now  # type: ignore[assignment]
    src = hf.HotplugHost(hf.HOST, plane)
    dst = hf.HotplugHost(hf.DEST, plane, guests=())
    log = logging.getLogger('passthrough_plugin.agent.hotplug_follow')
    log.setLevel(logging.INFO)
    try:
        src.setUp()
        dst.setUp()
        with src.ledger.begin() as txn:
            txn.add_instance(hf.INSTANCE, hf.PROJECT, hf.HOST, {}, now())
        followers = {}
        for env in (src, dst):
            follower = hotplug_follow.Follower(env.hotplugger(), 0.2)
            follower.start()
            followers[env.name] = follower
        run(src, ['openstack', 'pci', 'server', 'attach', hf.INSTANCE,
                  '--alias', 'gpu'])
        log.addHandler(Lines())
        print('# nova hard-reboots the server on %s (its domain is defined '
              'again, without the GPU); the agent logs:' % hf.HOST)
        src.nova_define()
        settle(followers[hf.HOST], 3)
        print('# the guest has it again:\n  %s\n' % src.hostdev_xml()[0])
        print('# nova cold-migrates the server to %s (powered off on %s, '
              'defined and started on %s, confirmed); the agents log:' % (
                  hf.DEST, hf.HOST, hf.DEST))
        src.nova_destroy(undefine=False)
        settle(followers[hf.HOST], 4)
        dst.nova_define()
        settle(followers[hf.DEST], 2)
        src.nova_destroy()
        settle(followers[hf.HOST], 5)
        print('# the guest on %s:\n  %s\n' % (hf.DEST,
                                               dst.hostdev_xml()[0]))
        log.handlers.clear()
        run(src, ['passthrough-billing', 'history', '--instance',
                  hf.INSTANCE])
        run(src, ['openstack', 'pci', 'server', 'detach', hf.INSTANCE])
        for follower in followers.values():
            follower.stop()
    finally:
        for env in (dst, src):
            env.cleanUp()
        plane.cleanUp()


if __name__ == '__main__':
    main()
