"""Differential tests: the core against the real nova 34 on random cases.

Within nova's feature set (no shared IOMMU groups, no plugin keys, no
requests that mix PFs with other devices, which nova's scheduler counts
without the PF/VF dependency), the core's device_spec matching and fit
decisions must equal ``nova.pci.devspec`` / ``nova.pci.whitelist`` and
``nova.pci.stats.PciDeviceStats.support_requests`` on the same input.
"""

from __future__ import annotations

import json
import random
from typing import Any

import fixtures
import testtools

from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.pci import summary as summary_mod

try:
    import nova.conf
    from nova import objects
    from nova.pci import request as nova_request
    from nova.pci import stats as nova_stats
    from nova.pci import whitelist as nova_whitelist
    HAVE_NOVA = True
except ImportError:  # pragma: no cover - the functional env has nova
    HAVE_NOVA = False

VENDORS = ('8086', '10de')
PF_PRODUCTS = ('1572', '10c9')
VF_PRODUCTS = ('154c', '10ca')
PCI_PRODUCTS = ('0442', '15b3')
SPEC_CASES = 3000
FIT_CASES = 3000


class RandomHost:
    """A random host: PFs with VFs, plain PCI devices, NUMA nodes, usage."""

    def __init__(self, rng: random.Random) -> None:
        self.devices: list[dict[str, Any]] = []
        for p in range(rng.randint(0, 3)):
            vendor = rng.choice(VENDORS)
            node = rng.choice((0, 1, None))
            pf = '0000:%02x:00.0' % (1 + p)
            self.devices.append(dict(
                address=pf, vendor_id=vendor, dev_type='type-PF',
                product_id=rng.choice(PF_PRODUCTS), numa_node=node,
                parent_addr=None, used=False))
            for v in range(rng.randint(0, 6)):
                self.devices.append(dict(
                    address='0000:%02x:%02x.%x' % (1 + p, 2 + v // 8, v % 8),
                    vendor_id=vendor, dev_type='type-VF',
                    product_id=rng.choice(VF_PRODUCTS), numa_node=node,
                    parent_addr=pf, used=rng.random() < 0.15))
        for i in range(rng.randint(0, 3)):
            self.devices.append(dict(
                address='0000:%02x:00.%x' % (0x10 + i, rng.randint(0, 1)),
                vendor_id=rng.choice(VENDORS), dev_type='type-PCI',
                product_id=rng.choice(PCI_PRODUCTS),
                numa_node=rng.choice((0, 1, None)), parent_addr=None,
                used=rng.random() < 0.15))
        self.sockets = rng.choice(((0, 1), (0, 0), (None, None)))

    def is_pf(self, address: str) -> bool:
        return any(d['address'] == address and d['dev_type'] == 'type-PF'
                   for d in self.devices)

    def nova_free(self, dev: dict[str, Any], tracked: set[str]) -> bool:
        """What nova's compute node keeps in its pools (independent rule).

        nova tracks only whitelisted devices (``tracked``): a busy device
        it does not track does not make its PF or VFs unavailable.
        """
        if dev['used']:
            return False
        if dev['dev_type'] == 'type-PF':
            return not any(d['used'] for d in self.devices
                           if d['parent_addr'] == dev['address']
                           and d['address'] in tracked)
        if dev['parent_addr'] and dev['parent_addr'] in tracked:
            return not any(d['used'] for d in self.devices
                           if d['address'] == dev['parent_addr'])
        return True


def random_address_spec(rng: random.Random, host: RandomHost) -> Any:
    """Glob and regex address specs that nova and we read the same way."""
    roll = rng.random()
    if roll < 0.25 and host.devices:
        # A fully specified address, often a PF's (covers its VFs).
        return rng.choice(host.devices)['address']
    if roll < 0.6:
        fields = [rng.choice(('', '*', '0000')),
                  rng.choice(('', '*', '01', '02', '10')),
                  rng.choice(('', '*', '00', '02')),
                  rng.choice(('', '*', '0', '1'))]
        text = '%s:%s:%s.%s' % tuple(fields)
        return rng.choice((text, text.lstrip(':'), ':%s:%s.' % (
            fields[1], fields[2])))
    # Regexes of full field width behave the same anchored or not.
    spec = {}
    if rng.random() < 0.5:
        spec['bus'] = rng.choice(('0[0-9a-f]', '0[12]', '1[0-9]', '01'))
    if rng.random() < 0.5:
        spec['slot'] = rng.choice(('0[0-2]', '00', '0[2-9]'))
    if rng.random() < 0.5:
        spec['function'] = rng.choice(('[0-3]', '[0-7]', '1'))
    if rng.random() < 0.3:
        spec['domain'] = '0000'
    return spec


def random_device_specs(rng: random.Random,
                        host: RandomHost) -> list[str]:
    values = []
    for _ in range(rng.randint(1, 3)):
        spec: dict[str, Any] = {}
        if rng.random() < 0.5:
            spec['vendor_id'] = rng.choice(VENDORS + ('*',))
        if rng.random() < 0.4:
            spec['product_id'] = rng.choice(
                VF_PRODUCTS + PF_PRODUCTS + PCI_PRODUCTS + ('*',))
        if rng.random() < 0.5:
            spec['address'] = random_address_spec(rng, host)
        if rng.random() < 0.3:
            spec['physical_network'] = rng.choice(('physnet1', 'physnet2'))
        if rng.random() < 0.2:
            spec['live_migratable'] = rng.choice(('true', 'false', 'yes'))
        if rng.random() < 0.15:
            spec['trusted'] = rng.choice(('true', 'false'))
        if rng.random() < 0.15:
            spec['managed'] = rng.choice(('yes', 'no'))
        values.append(json.dumps(spec))
    return values


def random_aliases(rng: random.Random, host: RandomHost) -> list[str]:
    out = []
    for n in range(rng.randint(1, 3)):
        dev_type = rng.choice((None, 'type-PCI', 'type-PF', 'type-VF'))
        if host.devices and rng.random() < 0.7:
            # Mostly ask for something the host has, so both answers occur.
            dev = rng.choice(host.devices)
            entry = {'name': 'a%d' % n, 'vendor_id': dev['vendor_id'],
                     'product_id': dev['product_id']}
            if rng.random() < 0.7:
                entry['device_type'] = dev['dev_type']
            if rng.random() < 0.5:
                entry['numa_policy'] = rng.choice(alias_mod.NUMA_POLICIES)
            out.append(json.dumps(entry))
            continue
        policy = rng.choice((None, 'legacy', 'required', 'preferred',
                             'socket'))
        products = {None: VF_PRODUCTS + PCI_PRODUCTS,
                    'type-PCI': PCI_PRODUCTS, 'type-PF': PF_PRODUCTS,
                    'type-VF': VF_PRODUCTS}[dev_type]
        # nova raises KeyError('dev_type') on same-name entries without
        # device_type (the defect we fix): such aliases get one entry here.
        for _ in range(rng.randint(1, 2) if dev_type else 1):
            entry: dict[str, str] = {
                'name': 'a%d' % n, 'vendor_id': rng.choice(VENDORS),
                'product_id': rng.choice(products)}
            if dev_type:
                entry['device_type'] = dev_type
            if policy:
                entry['numa_policy'] = policy
            if rng.random() < 0.15:
                entry['live_migratable'] = rng.choice(('true', 'false'))
            out.append(json.dumps(entry))
    return out


@testtools.skipUnless(HAVE_NOVA, 'nova is not installed')
class DifferentialTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        objects.register_all()
        self.conf = nova.conf.CONF
        self.host: RandomHost | None = None
        # nova asks sysfs whether a fully specified address is a PF; answer
        # from the generated host instead.
        self.useFixture(fixtures.MockPatch(
            'nova.pci.utils.is_physical_function',
            side_effect=lambda d, b, s, f: self.host is not None
            and self.host.is_pf('%s:%s:%s.%s' % (d, b, s, f))))
        self.addCleanup(self.conf.clear_override, 'alias', group='pci')
        self.addCleanup(nova_request.get_alias_from_config.cache_clear)

    def _ours_match(self, specs: device_spec.DeviceSpecList,
                    dev: dict[str, Any]) -> int | None:
        parent = dev['parent_addr']
        spec = specs.match(addr.PciAddress.parse(dev['address']),
                           int(dev['vendor_id'], 16),
                           int(dev['product_id'], 16),
                           addr.PciAddress.parse(parent) if parent else None)
        return None if spec is None else specs.specs.index(spec)

    def test_device_spec_matching_equals_nova(self) -> None:
        rng = random.Random(20261127)
        compared = 0
        for case in range(SPEC_CASES):
            self.host = RandomHost(rng)
            values = random_device_specs(rng, self.host)
            ours = device_spec.DeviceSpecList.from_config(values)
            theirs = nova_whitelist.Whitelist(values)
            for dev in self.host.devices:
                nova_spec = theirs.device_assignable(dict(dev))
                expected = (None if nova_spec is None
                            else theirs.specs.index(nova_spec))
                got = self._ours_match(ours, dev)
                self.assertEqual(
                    expected, got, 'case %d: device %s specs %s' % (
                        case, dev, values))
                if got is not None:
                    self.assertEqual(
                        {k: str(v) for k, v in nova_spec.get_tags().items()},
                        ours.specs[got].tags, 'case %d tags' % case)
                compared += 1
        self.assertGreater(compared, SPEC_CASES)

    def _report(self, host: RandomHost,
                specs: device_spec.DeviceSpecList) -> report_mod.HostReport:
        devices = []
        for dev in host.devices:
            parent = dev['parent_addr']
            spec = specs.match(addr.PciAddress.parse(dev['address']),
                               int(dev['vendor_id'], 16),
                               int(dev['product_id'], 16),
                               addr.PciAddress.parse(parent)
                               if parent else None)
            if spec is None:
                continue
            devices.append(report_mod.Device(
                dev['address'], dev['vendor_id'], dev['product_id'],
                dev['dev_type'], parent_address=parent,
                numa_node=dev['numa_node'], tags=dict(spec.tags),
                status='allocated' if dev['used'] else 'available',
                owner='other' if dev['used'] else None))
        cells = [report_mod.NumaCell(i, host.sockets[i]) for i in (0, 1)]
        return report_mod.HostReport('h', 1, devices, cells)

    def _nova_stats(self, host: RandomHost, values: list[str]) -> Any:
        topology = objects.NUMATopology(cells=[
            objects.NUMACell(id=i, socket=host.sockets[i], cpuset=set(),
                             pcpuset=set(), memory=0, mempages=[],
                             siblings=[], pinned_cpus=set())
            for i in (0, 1)])
        whitelist = nova_whitelist.Whitelist(values)
        stats = nova_stats.PciDeviceStats(topology, dev_filter=whitelist)
        tracked = {d['address'] for d in host.devices
                   if whitelist.device_assignable(dict(d))}
        for dev in host.devices:
            if not host.nova_free(dev, tracked):
                continue
            stats.add_device(objects.PciDevice.create(None, {
                'compute_node_id': 1, 'address': dev['address'],
                'vendor_id': dev['vendor_id'],
                'product_id': dev['product_id'],
                'dev_type': dev['dev_type'], 'numa_node': dev['numa_node'],
                'parent_addr': dev['parent_addr'], 'label': 'label',
                'dev_id': 'pci_' + dev['address']}))
        return stats

    def test_fit_decisions_equal_nova_support_requests(self) -> None:
        rng = random.Random(4242)
        compared = skipped = fits = 0
        for case in range(FIT_CASES):
            self.host = host = RandomHost(rng)
            values = random_device_specs(rng, host)
            alias_values = random_aliases(rng, host)
            names = sorted({json.loads(v)['name'] for v in alias_values})
            asked = ','.join('%s:%d' % (rng.choice(names),
                                        rng.choice((1, 1, 2, 3)))
                             for _ in range(rng.randint(1, 2)))
            policy = rng.choice((None,) * 3 + alias_mod.NUMA_POLICIES)
            cells = rng.choice((None, None, [0], [1], [0, 1]))

            aliases = alias_mod.parse_aliases(alias_values)
            extra = {'pci_passthrough:alias': asked}
            if policy:
                extra['hw:pci_numa_affinity_policy'] = policy
            requests = request_mod.RequestSet.from_extra_specs(extra,
                                                               aliases)
            if any(r.wants_pf for r in requests.requests) and len(
                    requests.requests) > 1:
                skipped += 1  # nova ignores the PF/VF dependency here
                continue
            specs = device_spec.DeviceSpecList.from_config(values)
            host_pools = pools_mod.HostPools(self._report(host, specs))
            ours = summary_mod.Summary(host_pools).fits(requests, cells)
            ours_devices = host_pools.fits(requests, cells)
            full = host_pools.fit(requests, cells)

            self.conf.set_override('alias', alias_values, group='pci')
            nova_request.get_alias_from_config.cache_clear()
            nova_requests = nova_request._translate_alias_to_requests(
                asked, policy)
            nova_cells = None if cells is None else [
                objects.InstanceNUMACell(id=i, cpuset=set(), pcpuset=set(),
                                         memory=0) for i in cells]
            theirs = self._nova_stats(host, values).support_requests(
                nova_requests, None, nova_cells)
            context = ('case %d: devices=%s specs=%s aliases=%s asked=%s '
                       'policy=%s cells=%s sockets=%s' % (
                           case, host.devices, values, alias_values, asked,
                           policy, cells, host.sockets))
            self.assertEqual(theirs, ours, context)
            self.assertEqual(ours, ours_devices, context)
            self.assertEqual(ours, full.ok, context)
            compared += 1
            fits += bool(ours)
        # Enough cases, and both answers well represented.
        self.assertGreater(compared, FIT_CASES * 0.8)
        self.assertGreater(fits, compared * 0.1)
        self.assertGreater(compared - fits, compared * 0.1)
