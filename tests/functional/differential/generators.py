"""Random hosts, device specs and aliases that nova 34 and the core share."""

from __future__ import annotations

import json
import random
from typing import Any

VENDORS = ('8086', '15b3')
PF_PRODUCTS = ('1572', '1017')
VF_PRODUCTS = ('154c', '1018')
PCI_PRODUCTS = ('0442', '15b3')


class Host:
    """PFs with VFs (some PFs with a netdev), plain PCI devices, sockets."""

    def __init__(self, rng: random.Random, max_vfs: int = 5,
                 serials: bool = False, ifnames: float = 0.5) -> None:
        self.devices: list[dict[str, Any]] = []
        self.pfs: dict[str, dict[str, Any]] = {}
        for p in range(rng.randint(0, 3)):
            vendor = rng.choice(VENDORS)
            node = rng.choice((0, 1, None))
            pf = '0000:%02x:00.0' % (0x81 + p)
            product = rng.choice(PF_PRODUCTS)
            vf_product = rng.choice(VF_PRODUCTS)
            ifname = 'ens%d' % p if rng.random() < ifnames else None
            self.pfs[pf] = {'vendor': vendor, 'product': product,
                            'vf_product': vf_product, 'ifname': ifname}
            self.devices.append(self._dev(pf, vendor, product, 'type-PF',
                                          node, None))
            for v in range(rng.randint(0, max_vfs)):
                dev = self._dev('0000:%02x:%02x.%x' % (0x81 + p, 2 + v // 8,
                                                       v % 8),
                                vendor, vf_product, 'type-VF', node, pf)
                if ifname:
                    dev['parent_ifname'] = ifname
                if serials:
                    dev['capabilities'] = {'vpd': {'card_serial_number': (
                        rng.choice((None, '', 'MT2113X00001')))}}
                self.devices.append(dev)
        for i in range(rng.randint(0, 3)):
            self.devices.append(self._dev(
                '0000:%02x:00.%x' % (0x3b + i, rng.randint(0, 1)),
                rng.choice(VENDORS), rng.choice(PCI_PRODUCTS), 'type-PCI',
                rng.choice((0, 1, None)), None))
        self.devices.sort(key=lambda d: d['address'])
        self.sockets = rng.choice(((0, 1), (0, 0), (None, None)))

    @staticmethod
    def _dev(address: str, vendor: str, product: str, dev_type: str,
             node: int | None, parent: str | None) -> dict[str, Any]:
        return {'address': address, 'vendor_id': vendor,
                'product_id': product, 'dev_type': dev_type,
                'numa_node': node, 'parent_addr': parent,
                'label': 'label_%s_%s' % (vendor, product),
                'dev_id': 'pci_' + address.replace(':', '_').replace('.', '_')}


def address_spec(rng: random.Random, host: Host,
                 regex_case: bool = False) -> Any:
    """Glob and regex address specs, PF addresses (covering their VFs)."""
    roll = rng.random()
    if roll < 0.3 and host.devices:
        return rng.choice(host.devices)['address']
    if roll < 0.6:
        fields = [rng.choice(('', '*', '0000')),
                  rng.choice(('', '*', '81', '82', '3b')),
                  rng.choice(('', '*', '00', '02')),
                  rng.choice(('', '*', '0', '1'))]
        text = '%s:%s:%s.%s' % tuple(fields)
        return rng.choice((text, text.lstrip(':'),
                           ':%s:%s.' % (fields[1], fields[2])))
    spec = {}
    if rng.random() < 0.6:
        choices = ['8[0-9a-f]', '8[12]', '3[0-9a-f]', '81']
        if regex_case:
            # nova's regexes are case-sensitive and anchored at the start
            # only; the core's are neither (documented, switchable).
            choices += ['8[0-9A-F]', '3B', '8', '3']
        spec['bus'] = rng.choice(choices)
    if rng.random() < 0.5:
        spec['slot'] = rng.choice(('0[0-2]', '00', '0[2-9]'))
    if rng.random() < 0.5:
        spec['function'] = rng.choice(('[0-3]', '[0-7]', '1'))
    if rng.random() < 0.3:
        spec['domain'] = '0000'
    return spec


def device_specs(rng: random.Random, host: Host, *, regex_case: bool = False,
                 devnames: bool = False, remote: bool = False,
                 null_tags: bool = True) -> list[str]:
    values = []
    for _ in range(rng.randint(1, 3)):
        spec: dict[str, Any] = {}
        if rng.random() < 0.5:
            spec['vendor_id'] = rng.choice(VENDORS + ('*',))
        if rng.random() < 0.4:
            spec['product_id'] = rng.choice(
                VF_PRODUCTS + PF_PRODUCTS + PCI_PRODUCTS + ('*',))
        names = [p['ifname'] for p in host.pfs.values() if p['ifname']]
        if devnames and names and rng.random() < 0.4:
            spec['devname'] = rng.choice(names + ['ens9'])
        elif rng.random() < 0.5:
            spec['address'] = address_spec(rng, host, regex_case)
        if rng.random() < 0.3:
            spec['physical_network'] = rng.choice(
                ('physnet1', 'physnet2') + ((None,) if null_tags else ()))
        if rng.random() < 0.2:
            spec['live_migratable'] = rng.choice(('true', 'false', 'yes'))
        if rng.random() < 0.15:
            spec['trusted'] = rng.choice(('true', 'false'))
        if remote and rng.random() < 0.5:
            spec['remote_managed'] = 'true'
            # a single address asks nova's sysfs whether it is a PF
            if isinstance(spec.get('address'), str) and spec[
                    'address'].count(':') == 2 and '*' not in spec['address']:
                spec['address'] = '*:%s' % spec['address'].split(':', 1)[1]
        values.append(json.dumps(spec))
    return values


def aliases(rng: random.Random, host: Host) -> list[str]:
    out = []
    for n in range(rng.randint(1, 3)):
        dev_type = rng.choice((None, 'type-PCI', 'type-PF', 'type-VF'))
        if host.devices and rng.random() < 0.7:
            dev = rng.choice(host.devices)
            entry = {'name': 'a%d' % n, 'vendor_id': dev['vendor_id'],
                     'product_id': dev['product_id']}
            if rng.random() < 0.7:
                entry['device_type'] = dev['dev_type']
            if rng.random() < 0.5:
                entry['numa_policy'] = rng.choice(
                    ('legacy', 'required', 'preferred', 'socket'))
            out.append(json.dumps(entry))
            continue
        policy = rng.choice((None, 'legacy', 'required', 'preferred',
                             'socket'))
        products = {None: VF_PRODUCTS + PCI_PRODUCTS,
                    'type-PCI': PCI_PRODUCTS, 'type-PF': PF_PRODUCTS,
                    'type-VF': VF_PRODUCTS}[dev_type]
        # nova raises KeyError('dev_type') on same-name entries without
        # device_type (a documented difference): one entry then.
        for _ in range(rng.randint(1, 2) if dev_type else 1):
            entry2: dict[str, str] = {
                'name': 'a%d' % n, 'vendor_id': rng.choice(VENDORS),
                'product_id': rng.choice(products)}
            if dev_type:
                entry2['device_type'] = dev_type
            if policy:
                entry2['numa_policy'] = policy
            out.append(json.dumps(entry2))
    return out
