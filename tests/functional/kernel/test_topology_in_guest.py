"""topology, VF settings and netlink safety on a real kernel (QEMU guest).

One boot: igb VFs get ``[sriov] vf_settings`` through configure-vfs (the
real CAP_NET_ADMIN privsep daemon, rtnetlink) and again through ``run``;
the kernel's own answer is read back. ``topology`` draws the guest's real
PCIe tree (root ports, the pcie-pci-bridge, IOMMU groups, igb and NVMe PFs
with their VFs). The netdev safety checks read dummy, bond, VLAN, bridge
and veth links in a namespace, and a real e1000e port enslaved to a bond.
"""

from __future__ import annotations

import json
from typing import Any

import testtools
from testtools import content

from tests.functional.kernel import harness

GUEST_DRIVER = r'''
import contextlib, io, json, os, select, socket, subprocess, sys, time
from oslo_config import cfg
from passthrough_plugin.agent import netlink, safety
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.cmd import agent

OUT = sys.argv[1]
DEV = '/sys/bus/pci/devices'
results = {'steps': {}, 'sh': []}


def attr(a, name):
    try:
        with open('%s/%s/%s' % (DEV, a, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def find(vendor, device):
    return sorted(a for a in os.listdir(DEV)
                  if attr(a, 'vendor') == vendor
                  and attr(a, 'device') == device)


def netdev(a):
    return sorted(os.listdir('%s/%s/net' % (DEV, a)))[0]


IGB = find('0x8086', '0x10c9')[0]
NVME = sorted(a for a in os.listdir(DEV) if attr(a, 'class') == '0x010802')[0]
E1000 = find('0x8086', '0x100e')
E1000E = find('0x8086', '0x10d3')
IGB_IF, E1000E_IF = netdev(IGB), netdev(E1000E[0])
results.update(igb=IGB, nvme=NVME, e1000=E1000, e1000e=E1000E,
               igb_if=IGB_IF, e1000e_if=E1000E_IF,
               e1000_group=os.path.basename(os.readlink(
                   '%s/%s/iommu_group' % (DEV, E1000[0]))))
CONF = '/tmp/pt-agent.conf'
SETTINGS = {'pf': IGB_IF, 'all': {'spoofchk': False},
            'vfs': {'0': {'mac': '52:54:00:aa:bb:01', 'vlan': 100,
                          'qos': 2},
                    '1': {'mac': '52:54:00:aa:bb:02', 'trust': True,
                          'spoofchk': True}}}


def write_conf(extra=''):
    with open(CONF, 'w') as f:
        f.write("""[agent]
host = kernel-guest
state_path = /tmp/pt-state/agent-state.json
[file_store]
path = %s/reports
[lifecycle]
connection = sqlite:////tmp/pt-ledger.sqlite
[pci]
device_spec = {"vendor_id": "8086", "product_id": "10c9"}
device_spec = {"product_id": "10ca", "physical_network": "physnet1"}
device_spec = {"address": "%s", "resource_class": "CUSTOM_NVME"}
device_spec = {"vendor_id": "8086", "product_id": "10d3"}
%s""" % (OUT, NVME, extra))


def settings_conf(settings, count=None):
    return '[sriov]\n%svf_settings = %s\n' % (
        '' if count is None else 'vf_count = %s=%d\n' % (IGB_IF, count),
        json.dumps(settings))


def step(name, *argv):
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = agent.main([argv[0], '--config-file', CONF] + list(argv[1:]),
                            conf=cfg.ConfigOpts())
        except BaseException as exc:  # recorded, the test fails on it
            rc = 'raised %r' % (exc,)
    results['steps'][name] = {'rc': rc, 'out': out.getvalue(),
                              'err': err.getvalue(),
                              'seconds': round(time.monotonic() - t0, 2)}
    print('step %s rc=%s %.1fs' % (name, rc, time.monotonic() - t0),
          flush=True)


def sh(*cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    results['sh'].append([list(cmd), done.returncode, done.stderr.strip()])
    return done.returncode


LINK_WAIT = 120.0  # guest seconds for a link to come up


def wait_speed(ifname, speed, timeout):
    # The driver's watchdog takes the speed, then turns the carrier on:
    # the RTM_NEWLINK that says so is the event waited for (bounded), and
    # sysfs is read again after each link event.
    base = '/sys/class/net/%s/' % ifname
    t0 = time.monotonic()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                       socket.NETLINK_ROUTE) as events:
        # Subscribed (RTMGRP_LINK) before the first read: none is missed.
        events.bind((0, 1))
        while True:
            got = {}
            for name in ('carrier', 'speed'):
                try:
                    with open(base + name) as f:
                        got[name] = f.read().strip()
                except OSError as exc:  # EINVAL while the carrier is down
                    got[name] = 'unreadable (%s)' % exc.strerror
            got['seconds'] = round(time.monotonic() - t0, 2)
            left = timeout - got['seconds']
            if (got['carrier'], got['speed']) == ('1', speed) or left <= 0:
                return got
            if select.select([events], [], [], left)[0]:
                events.recv(65536)


def readback(key):
    with netlink.session() as ipr:
        vfs = netlink.read_vfs(ipr, netlink.link_index(ipr, IGB_IF))
    results[key] = {str(vf): {k: list(v) if isinstance(v, tuple) else v
                              for k, v in fields.items()}
                    for vf, fields in vfs.items()}


# igb limits a VF's rate only with its link up at 1000 Mb/s.
sh('ip', 'link', 'set', IGB_IF, 'up')
write_conf(settings_conf(SETTINGS))
step('vfs-settings', 'configure-vfs', IGB, '2', '--format', 'json')
readback('readback')
write_conf(settings_conf({'pf': IGB_IF, 'vfs': {'0': {
    'link_state': 'disable'}}}))
step('vf-link-state', 'configure-vfs', IGB, '2')
write_conf(settings_conf({'pf': IGB_IF, 'vfs': {'0': {
    'max_tx_rate': 100}}}))
# igb takes a rate only at link speed 1000 (else EINVAL), and the link
# comes up asynchronously: after "ip link set up", and again after the
# PF reset that setting sriov_numvfs makes (QEMU's autonegotiation takes
# 500 ms of guest time, then the driver's watchdog reads the speed).
# Wait for that event, bounded, before asking for a rate.
results['igb-speed'] = wait_speed(IGB_IF, '1000', LINK_WAIT)
step('vf-rate', 'configure-vfs', IGB, '2')
readback('readback-rate')
# As after a reboot: no VFs; run brings back the count and the settings.
write_conf()
step('vfs-zero', 'configure-vfs', IGB, '0')
write_conf(settings_conf(SETTINGS, count=2))
step('run-once', 'run', '--once')
readback('readback-after-run')
write_conf()
step('vfs-nvme', 'configure-vfs', NVME, '2')
step('bind-vf', 'bind', find('0x8086', '0x10ca')[1])
step('topology-json', 'topology', '--format', 'json')
step('topology-text', 'topology')
step('topology-dot', 'topology', '--format', 'dot')

# Safety through rtnetlink: software links in a namespace ...
for m in ('dummy', 'bonding', '8021q', 'bridge', 'veth'):
    sh('modprobe', m)
N = ['ip', '-n', 'ptn']
sh('ip', 'netns', 'add', 'ptn')
sh(*N, 'link', 'add', 'd0', 'type', 'dummy')
sh(*N, 'link', 'add', 'bond0', 'type', 'bond')
sh(*N, 'link', 'set', 'd0', 'master', 'bond0')
sh(*N, 'link', 'add', 'link', 'bond0', 'name', 'bond0.5', 'type', 'vlan',
   'id', '5')
sh(*N, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1')
sh(*N, 'link', 'add', 'br0', 'type', 'bridge')
sh(*N, 'link', 'set', 'v0', 'master', 'br0')
for name in ('d0', 'bond0', 'bond0.5', 'v0', 'v1', 'br0'):
    sh(*N, 'link', 'set', name, 'up')
sh(*N, 'addr', 'add', '10.5.0.1/24', 'dev', 'bond0.5')
sh(*N, 'route', 'add', '10.6.0.0/16', 'dev', 'br0')
net = netlink.read_state('ptn')
usage = safety.HostUsage(sysfs_mod.Sysfs(), net=net)
results['netns'] = {
    'kinds': {n: lk.kind for n, lk in net.links.items()},
    'uppers': {n: net.uppers(n) for n in net.links},
    'chains': {n: usage.netdev_chains(n) for n in ('d0', 'v0', 'v1')}}
# ... and a real PCI port of the guest enslaved to a bond: bind refuses it.
sh('ip', 'link', 'add', 'bond1', 'type', 'bond')
sh('ip', 'link', 'set', E1000E_IF, 'down')
sh('ip', 'link', 'set', E1000E_IF, 'master', 'bond1')
sh('ip', 'link', 'set', 'bond1', 'up')
sh('ip', 'addr', 'add', '10.7.0.1/24', 'dev', 'bond1')
step('bind-bonded', 'bind', *E1000E)
sh('ip', 'link', 'set', E1000E_IF, 'nomaster')
sh('ip', 'addr', 'flush', 'dev', 'bond1')
step('bind-released', 'bind', *E1000E)
step('unbind-released', 'unbind', *E1000E)
with open(os.path.join(OUT, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1, sort_keys=True)
print('guest driver done', flush=True)
'''

GUEST_SCRIPT = r'''
set -u
export PYTHONPATH="$PT_REPO"
cd /tmp
cat > /tmp/pt-driver.py <<'PYEOF'
%s
PYEOF
"$PT_PYTHON" /tmp/pt-driver.py "$PT_OUT" > "$PT_OUT/driver.log" 2>&1
rc=$?
tail -40 "$PT_OUT/driver.log"
exit $rc
''' % GUEST_DRIVER
# Software links the safety checks are tested on (not in the base image).
NET_MODULES = ('dummy', 'bonding', '8021q', 'bridge', 'veth')

def _boot(test: testtools.TestCase) -> dict[str, Any]:
    guest = test.useFixture(harness.KernelGuest(
        python=harness.venv_python(), keep_runs=False,
        extra_modules=NET_MODULES))
    result = guest.run(GUEST_SCRIPT, timeout=1500)
    results: dict[str, Any] = harness.results_json(result)
    # Visible with stestr's captured output: the real tree.
    print('topology-in-guest: guest rc %s in %.1f s\n%s' % (
        result.rc, result.seconds,
        results['steps'].get('topology-text', {}).get('out')))
    return {'rc': result.rc, 'output': result.output, 'results': results}


_RUN = harness.SharedRun(_boot)


class TopologyInGuestTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.state = _RUN.state(self)
        self.results: dict[str, Any] = self.state['results']
        self.addDetail('guest', content.text_content(
            'guest rc %s\n%s' % (self.state['rc'], self.state['output'])))
        self.addDetail('sh', content.text_content(json.dumps(
            self.results['sh'], indent=1)))

    def step(self, name: str, rc: int = 0) -> dict[str, Any]:
        step: dict[str, Any] = self.results['steps'][name]
        self.addDetail(name, content.text_content(json.dumps(step,
                                                             indent=1)))
        self.assertEqual(rc, step['rc'], step['err'])
        return step

    def test_guest_ran_every_step(self) -> None:
        self.assertEqual(0, self.state['rc'], self.state['output'])
        self.assertIn('unbind-released', self.results['steps'])

    def test_vf_settings_applied_and_read_back(self) -> None:
        data = json.loads(self.step('vfs-settings')['out'])
        igb = self.results['igb']
        self.assertEqual(2, len(data[igb]))
        expected = {
            '0': {'mac': '52:54:00:aa:bb:01', 'vlan': [100, 2],
                  'spoofchk': False},
            '1': {'mac': '52:54:00:aa:bb:02', 'spoofchk': True,
                  'trust': True}}
        for key in ('readback', 'readback-after-run'):
            got = self.results[key]
            for vf, fields in expected.items():
                self.assertEqual(fields, {k: got[vf][k] for k in fields},
                                 (key, got))
        # configure-vfs prints what the kernel reports after the change.
        self.assertEqual('52:54:00:aa:bb:01',
                         data['vf_settings'][igb]['0']['mac'])

    def test_run_reapplies_settings_after_the_count(self) -> None:
        self.step('vfs-zero')
        self.step('run-once')
        self.assertEqual(2, len(self.results['readback-after-run']))

    def test_a_setting_the_driver_lacks_is_one_line(self) -> None:
        step = self.step('vf-link-state', rc=1)
        self.assertEqual(1, len(step['err'].strip().splitlines()),
                         step['err'])
        self.assertIn('%s VF 0: setting link_state=disable failed (the PF '
                      'driver does not offer this setting' %
                      self.results['igb_if'], step['err'])

    def test_rate_limit(self) -> None:
        link = self.results['igb-speed']
        self.assertEqual(('1', '1000'), (link['carrier'], link['speed']),
                         '%s did not come up at 1000 Mb/s within 120 s of '
                         'guest time: %s' % (self.results['igb_if'], link))
        self.step('vf-rate')
        self.assertEqual([0, 100], self.results['readback-rate']['0']['rate'])

    def find(self, node: dict[str, Any], name: str,
             path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
        here = path + (node['name'],)
        if node['name'] == name:
            return here
        for child in node['children']:
            found = self.find(child, name, here)
            if found:
                return found
        return None

    def path(self, data: dict[str, Any], name: str) -> tuple[str, ...]:
        for root in data['numa_nodes']:
            found = self.find(root, name)
            if found:
                return found
        self.fail('%s not drawn' % name)

    def node(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        stack = list(data['numa_nodes'])
        while stack:
            node = stack.pop()
            if node['name'] == name:
                return node  # type: ignore[no-any-return]
            stack.extend(node['children'])
        self.fail('%s not drawn' % name)

    def test_topology_draws_the_real_tree(self) -> None:
        data = json.loads(self.step('topology-json')['out'])
        igb, nvme = self.results['igb'], self.results['nvme']
        vfs = sorted(c['name'] for c in self.node(data, igb)['children'])
        self.assertEqual(2, len(vfs))
        # bus -> root port -> IOMMU group -> PF -> VF
        path = self.path(data, vfs[0])
        self.assertEqual('pci0000:00', path[1])
        port = self.node(data, path[2])
        self.assertEqual(('bridge', 'root port', 'pcieport'),
                         (port['kind'], port['role'], port['driver']))
        self.assertEqual('IOMMU group %d' % self.node(data, igb)[
            'iommu_group'], path[3])
        self.assertEqual((igb, vfs[0]), path[4:])
        vf0, vf1 = (self.node(data, v) for v in vfs)
        self.assertEqual(('VF', 'igbvf', 'assignable'),
                         (vf0['role'], vf0['driver'], vf0['assignable']))
        self.assertEqual('vfio-pci', vf1['driver'])
        self.assertIn('the agent (bound with vfio-pci; igbvf restores it)',
                      vf1['held_by'])
        pf = self.node(data, igb)
        self.assertEqual('not assignable', pf['assignable'])
        self.assertIn('it is an SR-IOV PF with 2 VFs enabled; set its VF '
                      'count to 0 first', pf['why'])
        self.assertEqual(2, len(self.node(data, nvme)['children']))
        # The e1000s sit behind the pcie-pci-bridge, behind a root port,
        # in one group with it.
        e1000 = self.path(data, self.results['e1000'][0])
        bridge = self.node(data, e1000[3])
        self.assertEqual(('bridge', '1b36', '000e'),
                         (bridge['role'], bridge['vendor_id'],
                          bridge['product_id']))
        self.assertEqual('root port', self.node(data, e1000[2])['role'])
        self.assertEqual('IOMMU group %d' % bridge['iommu_group'], e1000[4])
        self.assertTrue(data['iommu']['enabled'])

    def test_topology_text_and_dot(self) -> None:
        text = self.step('topology-text')['out']
        self.assertTrue(text.startswith('kernel-guest: IOMMU on, interrupt '
                                        'remapping on;'), text)
        igb = self.results['igb']
        self.assertIn('%s PF 8086:10c9' % igb, text)
        self.assertIn('IOMMU group %s: not viable: no member is listed '
                      'in [pci] device_spec' % self.results['e1000_group'],
                      text)
        dot = self.step('topology-dot')['out']
        self.assertTrue(dot.startswith('digraph topology {'))
        self.assertIn(igb, dot)

    def test_netlink_reads_bond_vlan_dummy_bridge_veth(self) -> None:
        net = self.results['netns']
        self.assertEqual(('dummy', 'bond', 'vlan', 'bridge', 'veth'),
                         tuple(net['kinds'][n] for n in (
                             'd0', 'bond0', 'bond0.5', 'br0', 'v0')))
        self.assertEqual(['bond0'], net['uppers']['d0'])
        self.assertEqual(['bond0.5'], net['uppers']['bond0'])
        self.assertEqual(['d0 -> bond0 -> bond0.5 -> 10.5.0.0/24 route',
                          'd0 -> bond0 -> bond0.5 -> address 10.5.0.1/24'],
                         net['chains']['d0'])
        self.assertEqual(['v0 -> br0 -> 10.6.0.0/16 route'],
                         net['chains']['v0'])
        self.assertEqual([], net['chains']['v1'])

    def test_bind_refuses_a_bonded_port_and_takes_it_when_released(
            self) -> None:
        step = self.step('bind-bonded', rc=1)
        self.assertIn('%s -> bond1 -> 10.7.0.0/24 route' %
                      self.results['e1000e_if'], step['err'])
        self.step('bind-released')
        self.step('unbind-released')
