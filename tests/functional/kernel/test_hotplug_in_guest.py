"""Host-side hotplug on a real kernel: QEMU's device_add and device_del.

The guest runs the agent's scan loop (``Agent.tick``, then the uevent
sleep, as ``run`` does) while this process, on QEMU's QMP socket, hot-adds
an e1000e into a free PCIe root port and later removes it. The agent must
publish the new device without a restart, woken by the kernel's uevent,
and when the ledger shows the device held, its ``device_del`` must close
the interval with ``device_removed``. Guest and host take turns through
marker files in the shared out dir.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import sys
import threading
import time
from typing import Any

import fixtures
import testtools
from testtools import content

from tests.functional.kernel import harness

WAIT = 240.0  # seconds each side waits for the other (TCG is slow)

GUEST_DRIVER = r'''
import json, os, sys, time
from oslo_config import cfg
from passthrough_plugin import conf as conf_mod
from passthrough_plugin.agent import service
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.agent import uevents
from passthrough_plugin.lifecycle import ledger as ledger_mod

OUT = sys.argv[1]
WAIT = float(sys.argv[2])
INSTANCE = '6f1c2a9e-3d4b-4c1e-9a2f-0e5d7b8c9a10'
results = {}
CONF = '/tmp/pt-hotplug.conf'
with open(CONF, 'w') as f:
    f.write("""[agent]
host = kernel-guest
state_path = /tmp/pt-state/agent-state.json
[file_store]
path = /tmp/pt-reports
[pci]
device_spec = {"vendor_id": "8086", "product_id": "10d3"}
[lifecycle]
connection = sqlite:////tmp/pt-ledger.sqlite
""")
conf = cfg.ConfigOpts()
conf_mod.register_all(conf)
conf([], project='passthrough-plugin', default_config_files=[CONF])
agent = service.Agent(conf, sysfs_mod.Sysfs('/sys', '/proc'))
ledger = ledger_mod.Ledger.from_conf(conf)


def published():
    return {d.address for d in agent.store.get('kernel-guest').devices}


def mark(name):
    open(os.path.join(OUT, name), 'w').close()
    print('guest: %s' % name, flush=True)


# What run sleeps on: it returns early only on a PCI uevent.
sleep = uevents.UeventSleeper.open()
results['uevents'] = sleep is not None
agent.tick()
before = published()
results['before'] = sorted(before)
# Sleep first, then scan: the socket queues the kernel's events from the
# moment it is open, so a device_add that lands before the sleep begins
# still wakes it, and a wake counted here is one the host caused.
sleep.drain()
mark('ready-add')
t0 = time.monotonic()
new = set()
while time.monotonic() - t0 < WAIT:
    sleep(WAIT)
    agent.tick()
    new = published() - before
    if new:
        break
results['added'] = sorted(new)
results['woken-by-add'] = sleep.woken
results['add-seconds'] = round(time.monotonic() - t0, 1)
if new:
    address = sorted(new)[0]
    with ledger.begin() as txn:
        txn.add_instance(INSTANCE, 'c0ffee00c0ffee00c0ffee00c0ffee00',
                         'kernel-guest', {}, ledger.now())
        hotplug_id = txn.add_hotplug(INSTANCE, 'nic', ledger.now())
        txn.start(txn.instance(INSTANCE), 'kernel-guest', address,
                  resource_class='CUSTOM_PCI_8086_10D3', source='hotplug',
                  at=ledger.now(), alias='nic', hotplug_id=hotplug_id)
    sleep.drain()  # the add's trailing events (driver bind...)
    woken_before_del = sleep.woken
    mark('ready-del')
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT:
        sleep(WAIT)
        agent.tick()
        if address not in published():
            break
    results['woken-by-del'] = sleep.woken - woken_before_del
    results['del-seconds'] = round(time.monotonic() - t0, 1)
    results['after'] = sorted(published())
    results['intervals'] = [
        {'address': i.host_address, 'end_reason': i.end_reason,
         'active': i.active} for i in ledger.intervals(instance=INSTANCE)]
    results['hotplugs'] = len(ledger.hotplugs(INSTANCE))
    results['events'] = [e.action for e in ledger.events(INSTANCE)]
with open(os.path.join(OUT, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1, sort_keys=True)
print('guest driver done', flush=True)
'''

GUEST_SCRIPT = r'''
set -u
export PYTHONPATH="$PT_REPO"
cd /tmp
cat > /tmp/pt-hotplug.py <<'PYEOF'
%s
PYEOF
"$PT_PYTHON" /tmp/pt-hotplug.py "$PT_OUT" %d > "$PT_OUT/driver.log" 2>&1
rc=$?
tail -40 "$PT_OUT/driver.log"
exit $rc
''' % (GUEST_DRIVER, int(WAIT))


class Qmp:
    """A QMP client on QEMU's monitor socket (JSON lines)."""

    def __init__(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise AssertionError(
                        'QEMU opened no QMP socket at %s within %.0f s'
                        % (path, timeout)) from None
                time.sleep(0.2)
        self.file = self.sock.makefile('rw', encoding='utf-8')
        self.events: list[dict[str, Any]] = []
        self._read()  # the greeting
        self.execute('qmp_capabilities')

    def _read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise AssertionError('QEMU closed the QMP socket')
        data: dict[str, Any] = json.loads(line)
        return data

    def execute(self, command: str, **arguments: Any) -> Any:
        self.file.write(json.dumps({'execute': command,
                                    'arguments': arguments}) + '\n')
        self.file.flush()
        while True:
            reply = self._read()
            if 'event' in reply:
                self.events.append(reply)
                continue
            if 'error' in reply:
                raise AssertionError('QMP %s failed: %s' % (command,
                                                            reply['error']))
            return reply.get('return')

    def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event['event'] == name:
                    return event
            if time.monotonic() > deadline:
                raise AssertionError('no QMP event %s within %.0f s'
                                     % (name, timeout))
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(self._read())

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _wait_file(path: pathlib.Path, timeout: float,
               done: threading.Event) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if done.is_set() or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class HostSideHotplugInGuestTest(testtools.TestCase):

    def test_device_add_and_device_del(self) -> None:
        tmp = self.useFixture(fixtures.TempDir()).path
        qmp_path = os.path.join(tmp, 'qmp.sock')
        out = pathlib.Path(tmp) / 'out'
        out.mkdir()
        guest = self.useFixture(harness.KernelGuest(
            python=sys.executable, extra_qemu_args=[
                '-device', 'pcie-root-port,id=hp1,chassis=9,slot=9',
                '-qmp', 'unix:%s,server=on,wait=off' % qmp_path]))
        done = threading.Event()
        host: dict[str, Any] = {}

        def operate() -> None:
            try:
                # Connect only now: a boot that panicked early was
                # retried by a new QEMU on a new socket.
                if not _wait_file(out / 'ready-add', 1500, done):
                    host['error'] = 'the guest never asked for the add'
                    return
                qmp = Qmp(qmp_path, WAIT)
                try:
                    qmp.execute('device_add', driver='e1000e', bus='hp1',
                                id='hot1', romfile='')
                    host['added'] = True
                    if not _wait_file(out / 'ready-del', WAIT + 60, done):
                        host['error'] = 'the guest never asked for the del'
                        return
                    qmp.execute('device_del', id='hot1')
                    host['deleted'] = qmp.wait_event('DEVICE_DELETED',
                                                     WAIT)['data']
                finally:
                    qmp.close()
            except (AssertionError, OSError, ValueError) as exc:
                host['error'] = repr(exc)

        thread = threading.Thread(target=operate, daemon=True)
        thread.start()
        try:
            result = guest.run(GUEST_SCRIPT, timeout=1800, out_dir=out)
        finally:
            done.set()
            thread.join(WAIT)
        self.addDetail('guest', content.text_content(
            'guest rc %s in %.1f s\n%s' % (result.rc, result.seconds,
                                           result.output)))
        self.addDetail('host', content.text_content(json.dumps(host)))
        self.assertNotIn('error', host)
        self.assertEqual(0, result.rc)
        results = json.loads((out / 'results.json').read_text())
        self.addDetail('results', content.text_content(
            json.dumps(results, indent=1)))
        # Visible with pytest -s / stestr's captured output.
        print('hotplug-in-guest: guest rc %s in %.1f s; device_add seen '
              'by the agent after %s s, device_del after %s s' % (
                  result.rc, result.seconds, results.get('add-seconds'),
                  results.get('del-seconds')))
        # run's sleep ended on the kernel's uevents, not on its timeout.
        self.assertTrue(results['uevents'])
        self.assertGreaterEqual(results['woken-by-add'], 1)
        self.assertGreaterEqual(results['woken-by-del'], 1)
        added, = results['added']
        self.assertNotIn(added, results['before'])
        self.assertNotIn(added, results['after'])
        self.assertEqual('hot1', host['deleted'].get('device'))
        self.assertEqual([{'address': added, 'end_reason': 'device_removed',
                           'active': False}], results['intervals'])
        self.assertEqual(0, results['hotplugs'])
        self.assertIn('device_removed', results['events'])
