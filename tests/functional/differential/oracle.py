"""nova 34 answering for the differential tests, in its own process.

Run by :mod:`tests.functional.differential.base` in a private mount
namespace where ``/sys/bus/pci/devices`` and ``/sys/class/net`` are a
fake tree the oracle writes per case, so nova's own sysfs lookups (is this
address a PF? which device is this netdev?) answer about the generated
host: no nova function is patched. One JSON request per line on stdin,
one JSON answer per line on stdout.

Every fact comes from nova: whitelist matching from ``Whitelist``; the
devices a compute tracks, its pools and their order from
``PciDevTracker.update_devices_from_hypervisor_resources`` and
``PciDeviceStats``; devices in use at a compute start from nova's own
``PciDevice.claim`` followed by a tracker built as ``PciDevTracker``'s
constructor builds it (the database read replaced by the device objects
the previous tracker held); claims from ``claim_instance`` (tried first on
a deep copy of the pools, because a failed ``consume_requests`` leaves
dependants out of the pools); releases from ``free_instance``; the
scheduler's answer from ``PciDeviceStats.support_requests`` on the pools
as the compute serialises them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from typing import Any

ROOT = os.environ.get('DIFF_FAKE_SYS', '')


_WRITTEN: list[Any] = [None]


def write_sysfs(pfs: dict[str, dict[str, Any]]) -> None:
    """The fake /sys/bus/pci/devices and /sys/class/net of one case."""
    if _WRITTEN[0] == pfs:
        return
    _WRITTEN[0] = pfs
    devices = os.path.join(ROOT, 'devices')
    net = os.path.join(ROOT, 'net')
    for top in (devices, net):
        for name in os.listdir(top):
            path = os.path.join(top, name)
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            else:
                shutil.rmtree(path)
    for address, pf in pfs.items():
        base = os.path.join(devices, address)
        os.makedirs(base)
        for name, value in (('sriov_totalvfs', '8'),
                            ('vendor', '0x' + pf['vendor']),
                            ('product', '0x' + pf['product']),
                            ('sriov_vf_device', pf['vf_product'])):
            with open(os.path.join(base, name), 'w') as f:
                f.write(value + '\n')
        if pf.get('ifname'):
            ifdir = os.path.join(base, 'net', pf['ifname'])
            os.makedirs(ifdir)
            os.symlink('../../../' + address, os.path.join(ifdir, 'device'))
            os.symlink('/sys/bus/pci/devices/%s/net/%s' % (
                address, pf['ifname']), os.path.join(net, pf['ifname']))


class Nova:
    """nova's modules, imported once."""

    def __init__(self) -> None:
        import nova.conf
        from nova import context
        from nova import exception
        from nova import objects
        from nova.pci import manager
        from nova.pci import request
        from nova.pci import stats
        from nova.pci import whitelist
        objects.register_all()
        self.conf = nova.conf.CONF
        self.conf([], project='nova', default_config_files=[])
        self.ctx = context.get_admin_context()
        self.exception = exception
        self.objects = objects
        self.manager = manager
        self.request = request
        self.stats = stats
        self.whitelist = whitelist

    def match(self, case: dict[str, Any]) -> dict[str, Any]:
        write_sysfs(case['pfs'])
        try:
            wl = self.whitelist.Whitelist(case['specs'])
        except Exception as exc:  # nova's refusal is the fact compared
            return {'error': '%s: %s' % (type(exc).__name__, exc)}
        out = []
        for dev in case['devices']:
            try:
                spec = wl.device_assignable(dict(dev))
            except Exception as exc:
                out.append({'error': '%s: %s' % (type(exc).__name__, exc)})
                continue
            if spec is None:
                out.append(None)
            else:
                out.append({'index': wl.specs.index(spec),
                            'tags': spec.get_tags()})
        return {'devices': out}

    def alias(self, case: dict[str, Any]) -> dict[str, Any]:
        """nova's reading of [pci] alias and a flavor's alias request."""
        self.conf.set_override('alias', case['aliases'], group='pci')
        self.request.get_alias_from_config.cache_clear()
        try:
            reqs = self.request._translate_alias_to_requests(
                case['asked'], case.get('policy'))
        except Exception as exc:
            return {'error': '%s: %s' % (type(exc).__name__, exc)}
        return {'requests': [{'count': r.count, 'spec': r.spec,
                              'numa_policy': r.numa_policy}
                             for r in reqs]}

    def flavor(self, case: dict[str, Any]) -> dict[str, Any]:
        """nova's reading of [pci] alias, then of a flavor's extra specs:
        nova-api's validators (microversion 2.86 and later), then what
        nova-compute makes of them (NUMA policy, alias requests)."""
        from nova.api.validation.extra_specs import validators
        from nova.virt import hardware
        if not validators.VALIDATORS:
            validators.load_validators()
        self.conf.set_override('alias', case['aliases'], group='pci')
        self.request.get_alias_from_config.cache_clear()
        try:
            self.request.get_alias_from_config()
        except Exception as exc:
            return {'alias_error': '%s: %s' % (type(exc).__name__, exc)}
        extra = case['extra']
        api = {}
        for key, value in extra.items():
            try:
                validators.validate(key, value)
            except Exception as exc:
                api[key] = '%s: %s' % (type(exc).__name__, exc)
        try:
            policy = hardware.get_pci_numa_policy_constraint(
                self.objects.Flavor(extra_specs=extra),
                self.objects.ImageMeta.from_dict({}))
            reqs = self.request._translate_alias_to_requests(
                extra['pci_passthrough:alias'], policy)
        except Exception as exc:
            return {'api': api,
                    'error': '%s: %s' % (type(exc).__name__, exc)}
        return {'api': api,
                'requests': [{'count': r.count, 'spec': r.spec,
                              'numa_policy': r.numa_policy} for r in reqs]}

    # -- a compute's history ------------------------------------------------

    def _tracker(self, wl: Any, numa: Any, devs: list[Any]) -> Any:
        """A tracker as PciDevTracker.__init__ builds one from the DB."""
        tracker = self.manager.PciDevTracker.__new__(
            self.manager.PciDevTracker)
        tracker.stale = {}
        tracker.to_be_removed_when_freed = {}
        tracker.node_id = 1
        tracker.dev_filter = wl
        tracker.stats = self.stats.PciDeviceStats(numa, dev_filter=wl)
        tracker._context = self.ctx
        tracker.pci_devs = self.objects.PciDeviceList(objects=devs)
        tracker._build_device_tree(tracker.pci_devs)
        tracker._initial_instance_usage()
        return tracker

    def _fork(self, tracker: Any) -> Any:
        """A copy of a tracker: its devices, pools and usage.

        nova's objects copy their fields only, so the copy's PF/VF links
        are rebuilt by nova's own _build_device_tree.
        """
        trial = copy.copy(tracker)
        (trial.pci_devs, trial.stats, trial.claims,
         trial.allocations) = copy.deepcopy(
            (tracker.pci_devs, tracker.stats, tracker.claims,
             tracker.allocations))
        trial._build_device_tree(trial.pci_devs)
        return trial

    def _reload(self, devs: Any) -> list[Any]:
        """The devices as the database gives them back, by nova's loader."""
        out = []
        for number, dev in enumerate(devs):
            row = {key: getattr(dev, key) if dev.obj_attr_is_set(key)
                   else None for key in dev.fields}
            row['id'] = number + 1
            row['uuid'] = '00000000-0000-0000-0000-%012d' % (number + 1)
            row['extra_info'] = json.dumps(dev.extra_info)
            out.append(self.objects.PciDevice._from_db_object(
                self.ctx, self.objects.PciDevice(), row))
        return out

    @staticmethod
    def _pools(stats: Any) -> list[list[str]]:
        return [[d.address for d in pool['devices']] for pool in stats.pools]

    @staticmethod
    def _merged(stats: Any) -> bool:
        """Whether a pool holds a device whose own pool key differs.

        nova's _find_pool compares only the device's keys with .get(), so
        a null tag equals a missing key: a device of a spec with a null tag
        can join a pool of another spec with as many keys (a documented
        difference; the core pools by the exact key).
        """
        for pool in stats.pools:
            keys = {k: v for k, v in pool.items()
                    if k not in ('count', 'devices')
                    and k not in stats.ignored_pool_tags}
            for dev in pool['devices']:
                if stats._create_pool_keys_from_dev(dev) != keys:
                    return True
        return False

    def scenario(self, case: dict[str, Any]) -> dict[str, Any]:
        objects = self.objects
        write_sysfs(case['pfs'])
        self.conf.set_override('device_spec', case['specs'], group='pci')
        self.conf.set_override('alias', case['aliases'], group='pci')
        self.request.get_alias_from_config.cache_clear()
        wl = self.whitelist.Whitelist(case['specs'])
        numa = objects.NUMATopology(cells=[
            objects.NUMACell(id=i, socket=s, cpuset=set(), pcpuset=set(),
                             memory=0, mempages=[], siblings=[],
                             pinned_cpus=set())
            for i, s in enumerate(case['sockets'])])
        first = self._tracker(wl, numa, [])
        first.update_devices_from_hypervisor_resources(
            json.dumps(case['devices']))
        by_address = {d.address: d for d in first.pci_devs}
        started: dict[str, list[str]] = {}
        for uuid, addresses in case['start']:
            for address in addresses:
                dev = by_address.get(address)
                if dev is None:
                    continue
                try:
                    dev.claim(uuid)
                except (self.exception.PciDeviceInvalidStatus,
                        self.exception.PciDeviceVFInvalidStatus):
                    continue
                started.setdefault(uuid, []).append(address)
        tracker = self._tracker(wl, numa, self._reload(first.pci_devs))
        merged = self._merged(tracker.stats)
        steps = []
        for op in case['ops']:
            if 'release' in op:
                tracker.free_instance(self.ctx, {'uuid': op['release']})
                steps.append({'pools': self._pools(tracker.stats),
                              'merged': self._merged(tracker.stats)})
                continue
            claim = op['claim']
            reqs = self.request._translate_alias_to_requests(
                claim['asked'], claim['policy'])
            cells = None if claim['cells'] is None else [
                objects.InstanceNUMACell(id=i, cpuset=set(), pcpuset=set(),
                                         memory=0) for i in claim['cells']]
            view = self.stats.PciDeviceStats(
                numa, stats=tracker.stats.to_device_pools_obj(),
                dev_filter=wl)
            support = view.support_requests(reqs, None, cells)
            # A failed claim leaves dependants out of nova's pools (nova
            # expects the scheduler to have prevented it): claim on a
            # copy, keep it only when the claim succeeds.
            trial = self._fork(tracker)
            got = None
            try:
                if not trial.pci_devs:
                    # nova-compute skips the claim on a host that tracks
                    # no device; the scheduler's answer is the check there.
                    raise self.exception.PciDeviceRequestFailed(
                        requests=reqs)
                devs = trial.claim_instance(
                    self.ctx, objects.InstancePCIRequests(
                        requests=reqs, instance_uuid=claim['uuid']),
                    None if cells is None else
                    objects.InstanceNUMATopology(cells=cells))
            except self.exception.PciDeviceRequestFailed:
                pass
            else:
                tracker = trial
                got = [[d.address for d in devs
                        if d.request_id == r.request_id] for r in reqs]
            steps.append({'support': support, 'claim': got,
                          'pools': self._pools(tracker.stats),
                          'merged': self._merged(tracker.stats)})
        return {'started': started, 'steps': steps, 'merged': merged}


def main() -> None:
    # stdout carries the protocol only: whatever nova prints goes to stderr
    protocol = sys.stdout
    sys.stdout = sys.stderr
    nova = Nova()
    protocol.write(json.dumps({'ready': True}) + '\n')
    protocol.flush()
    for line in sys.stdin:
        case = json.loads(line)
        try:
            answer = getattr(nova, case['cmd'])(case)
        except Exception as exc:
            import traceback
            answer = {'crash': traceback.format_exc(), 'type':
                      type(exc).__name__}
        protocol.write(json.dumps(answer) + '\n')
        protocol.flush()


if __name__ == '__main__':
    main()
