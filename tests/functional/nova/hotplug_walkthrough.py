"""Prints the hotplug walkthrough of doc/lifecycle.rst, for real.

``python -m tests.functional.nova.hotplug_walkthrough``: the commands run
in-process against the test fixture's host (fake sysfs, file store, SQLite
ledger, nova's fakelibvirt behind libvirt's API) with the real clock.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Sequence

from oslo_config import cfg

from passthrough_plugin.cmd import agent as agent_cmd
from passthrough_plugin.cmd import agent_hotplug
from passthrough_plugin.cmd import billing
from tests.functional.nova import hotplug_fixtures as hf

def run(env: hf.HotplugHost, argv: Sequence[str]) -> None:
    """Print ``$ command`` and what it printed (stdout, then stderr)."""
    print('$ %s' % ' '.join(argv))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if argv[0] == 'passthrough-agent':
            host = env.host
            rest = [argv[1], '--config-file', env.config,
                    '--sysfs-root', str(host.tree.sys),
                    '--proc-root', str(host.tree.proc),
                    '--state-path', host.state_path] + list(argv[2:])
            rc = agent_cmd.main(rest, conf=cfg.ConfigOpts(),
                                kernel=host.kernel)
        else:
            rc = billing.main(['--config-file', env.config]
                              + list(argv[1:]))
    sys.stdout.write(out.getvalue() + err.getvalue())
    if rc:
        print('(exit %d)' % rc)
    print()


def main() -> None:
    env = hf.HotplugHost()
    env.setUp()
    try:
        faulty = hf.FaultyConnection(env.connection, env.faults)
        agent_hotplug.CONNECT = lambda uri: faulty
        today = time.strftime('%Y-%m-%d', time.gmtime())
        tomorrow = time.strftime('%Y-%m-%d', time.gmtime(time.time()
                                                          + 86400))
        run(env, ['passthrough-agent', 'discover'])
        run(env, ['passthrough-agent', 'attach', '--instance', hf.INSTANCE,
                  '--alias', 'gpu', '--project', hf.PROJECT])
        run(env, ['passthrough-agent', 'attach', '--instance', hf.INSTANCE,
                  '--alias', 'gpu'])
        run(env, ['passthrough-agent', 'attach', '--instance', hf.OTHER,
                  '--alias', 'gpu:2', '--project', hf.PROJECT])
        # QEMU refuses the next device_add: every step before it is undone.
        env.faults.fail_attach_at = 2
        run(env, ['passthrough-agent', 'attach', '--instance', hf.OTHER,
                  '--alias', 'gpu', '--project', hf.PROJECT])
        run(env, ['passthrough-agent', 'discover'])
        run(env, ['passthrough-agent', 'map', '--host-address', '5e:00.0'])
        time.sleep(7)
        run(env, ['passthrough-agent', 'detach', '--instance', hf.INSTANCE])
        run(env, ['passthrough-agent', 'discover'])
        run(env, ['passthrough-billing', 'report', '--from', today, '--to',
                  tomorrow])
        run(env, ['passthrough-billing', 'history', '--instance',
                  hf.INSTANCE])
    finally:
        env.cleanUp()


if __name__ == '__main__':
    main()
