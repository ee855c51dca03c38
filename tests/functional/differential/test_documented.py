"""Every difference doc/nova-differences.rst documents still holds.

One generator per difference; each case asks nova 34 and the core and
checks that they differ exactly as documented (and in nothing else).
"""

from __future__ import annotations

import collections
import json
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import request as request_mod
from tests.functional.differential import base
from tests.functional.differential import generators as gen
from tests.functional.differential import test_history
from tests.functional.differential import test_matching

CASES = 150


def sriov_host(rng: Any, ifname: bool = True) -> gen.Host:
    while True:
        host = gen.Host(rng, serials=True)
        pfs = [a for a, p in host.pfs.items()
               if any(d['parent_addr'] == a for d in host.devices)
               and (p['ifname'] or not ifname)]
        if pfs:
            host.pf = rng.choice(pfs)  # type: ignore[attr-defined]
            return host


def scan(host: gen.Host) -> discovery.Scan:
    """The agent's view of a generated host."""
    devices = {}
    for dev in host.devices:
        pf = host.pfs.get(dev['address'])
        devices[dev['address']] = discovery.PciInfo(
            dev['address'], dev['vendor_id'], dev['product_id'], '020000',
            physfn=dev['parent_addr'], total_vfs=8 if pf else 0,
            netdevs=(pf['ifname'],) if pf and pf['ifname'] else (),
            vf_product=pf['vf_product'] if pf else None)
    return discovery.Scan(devices, {})


class DocumentedTest(base.DifferentialTestCase):

    def _ours_fits(self, host: gen.Host, specs: list[str],
                   aliases: list[str], asked: str) -> bool:
        spec_list = device_spec.DeviceSpecList.from_config(specs)
        rs = request_mod.RequestSet.from_extra_specs(
            {'pci_passthrough:alias': asked},
            alias_mod.parse_aliases(aliases))
        hp = pools_mod.HostPools.from_report(
            test_history.report(host, spec_list, {}))
        return hp.fit(rs).ok

    def _nova_claims(self, host: gen.Host, specs: list[str],
                     aliases: list[str], asked: str) -> Any:
        answer = self.oracle.ask({
            'cmd': 'scenario', 'pfs': host.pfs, 'specs': specs,
            'aliases': aliases, 'devices': host.devices,
            'sockets': list(host.sockets), 'start': [],
            'ops': [{'claim': {'asked': asked, 'uuid': 'i', 'policy': None,
                               'cells': None}}]})
        return answer['steps'][0]

    def test_same_name_aliases_without_device_type(self) -> None:
        rng = self.rng()
        for case in range(CASES):
            entries = [json.dumps({'name': 'a', 'vendor_id': v,
                                   'product_id': rng.choice(
                                       gen.PCI_PRODUCTS)})
                       for v in gen.VENDORS]
            nova = self.oracle.ask({'cmd': 'alias', 'aliases': entries,
                                    'asked': 'a:1'})
            where = self.where(case, entries)
            self.assertIn('dev_type', nova.get('error', ''), where)
            ours = alias_mod.parse_aliases(entries)
            self.assertEqual(2, len(ours['a'].specs), where)

    def test_list_form_aliases(self) -> None:
        rng = self.rng()
        for case in range(CASES):
            entries = [json.dumps([
                {'name': 'a%d' % n, 'vendor_id': rng.choice(gen.VENDORS),
                 'product_id': rng.choice(gen.PCI_PRODUCTS)}
                for n in range(rng.randint(1, 3))])]
            nova = self.oracle.ask({'cmd': 'alias', 'aliases': entries,
                                    'asked': 'a0:1'})
            where = self.where(case, entries)
            self.assertIn('error', nova, where)
            self.assertIn('a0', alias_mod.parse_aliases(entries), where)

    def _alias_of(self, rng: Any, host: gen.Host, **extra: str
                  ) -> tuple[list[str], list[str]] | None:
        pci = [d for d in host.devices if d['dev_type'] == 'type-PCI']
        if not pci:
            return None
        dev = rng.choice(pci)
        alias = dict({'name': 'a', 'vendor_id': dev['vendor_id'],
                      'product_id': dev['product_id']}, **extra)
        return ['{}'], [json.dumps(alias)]

    def _classic_mode_case(self, key: str, value: str) -> int:
        rng = self.rng()
        checked = 0
        for case in range(CASES):
            host = gen.Host(rng)
            made = self._alias_of(rng, host, **{key: value})
            if made is None:
                continue
            specs, aliases = made
            where = self.where(case, (host.devices, aliases))
            self._check_classic(
                key, self._nova_claims(host, specs, aliases, 'a:1'),
                self._ours_fits(host, specs, aliases, 'a:1'), where)
            checked += 1
        self.assertGreater(checked, CASES // 4)
        return checked

    def _check_classic(self, key: str, nova: dict[str, Any], ours: bool,
                       where: str) -> None:
        if key == 'capability_type':
            # nova keeps capability_type in the request: no pool has it
            self.assertIsNone(nova['claim'], where)
            self.assertFalse(nova['support'], where)
            self.assertTrue(ours, where)
        else:
            # nova ignores resource_class/traits without PCI in Placement
            self.assertIsNotNone(nova['claim'], where)
            self.assertFalse(ours, where)

    def test_alias_capability_type(self) -> None:
        self._classic_mode_case('capability_type', 'pci')

    def test_alias_resource_class_in_classic_mode(self) -> None:
        self._classic_mode_case('resource_class', 'CUSTOM_NOT_THIS_ONE')

    def test_remote_managed_vfs_by_pf_address(self) -> None:
        # nova 34 refuses every single-address remote_managed spec (its
        # sysfs lookup formats a glob spec object as the address)
        rng = self.rng()
        for case in range(CASES):
            host = sriov_host(rng, ifname=False)
            pf = host.pfs[host.pf]  # type: ignore[attr-defined]
            specs = [json.dumps({
                'address': host.pf, 'remote_managed': 'true',  # type: ignore
                'vendor_id': pf['vendor'], 'product_id': pf['vf_product']})]
            nova = self.oracle.ask({'cmd': 'match', 'pfs': host.pfs,
                                    'specs': specs, 'devices': host.devices})
            where = self.where(case, specs)
            self.assertIn('PciDeviceNotFoundById', nova.get('error', ''),
                          where)
            ours = device_spec.DeviceSpecList.from_config(specs)
            matched = [test_matching.ours(ours, host, d)
                       for d in host.devices]
            with_serial = [d['address'] for d, m in
                           zip(host.devices, matched, strict=True) if m]
            self.assertEqual(
                [d['address'] for d in host.devices
                 if d['parent_addr'] == host.pf  # type: ignore[attr-defined]
                 and d['capabilities']['vpd']['card_serial_number']],
                with_serial, where)

    def test_remote_managed_naming_a_pf(self) -> None:
        """nova refuses a remote_managed spec naming a PF (by devname)
        unless its ids are the VFs', and one naming a missing interface:
        so does the agent (discovery.check_remote_managed), with nova's
        reason."""
        rng = self.rng()
        seen = collections.Counter()
        for case in range(CASES):
            host = sriov_host(rng)
            pf = host.pfs[host.pf]  # type: ignore[attr-defined]
            product = rng.choice((pf['product'], None, pf['vf_product'],
                                  '0442'))
            spec: dict[str, Any] = {'devname': pf['ifname'],
                                    'remote_managed': 'true'}
            if rng.random() < 0.15:
                spec['devname'] = 'ens9'
            if product is not None:
                spec['product_id'] = product
            specs = [json.dumps(spec)]
            nova = self.oracle.ask({'cmd': 'match', 'pfs': host.pfs,
                                    'specs': specs, 'devices': host.devices})
            where = self.where(case, specs)
            try:
                discovery.check_remote_managed(
                    device_spec.DeviceSpecList.from_config(specs),
                    scan(host))
            except exception.InvalidDeviceSpec as exc:
                kind = nova.get('error', 'accepted').split(':')[0]
                self.assertIn(kind, (
                    'PciDeviceInvalidPFRemoteManaged',
                    'PciDeviceRemoteManagedNotPresent',
                    'PciConfigInvalidSpec'), where)
                self.assertIn('nova refuses it too', exc.message, where)
                if kind != 'PciConfigInvalidSpec':
                    self.assertIn(kind, exc.message, where)
                seen[kind] += 1
            else:
                self.assertNotIn('error', nova, where)
                self.assertEqual(pf['vf_product'], product, where)
                seen['vfs'] += 1
        self.assertEqual(4, len(seen), seen)

    def test_devname_blank_and_padded(self) -> None:
        rng = self.rng()
        for case in range(CASES):
            host = sriov_host(rng)
            name = host.pfs[host.pf]['ifname']  # type: ignore[attr-defined]
            padded = [json.dumps({'devname': ' ' + name})]
            nova = self.oracle.ask({'cmd': 'match', 'pfs': host.pfs,
                                    'specs': padded,
                                    'devices': host.devices})
            where = self.where(case, padded)
            # nova looks up " ens0" and finds nothing; the name is stripped
            self.assertEqual([None] * len(host.devices), nova['devices'],
                             where)
            ours = device_spec.DeviceSpecList.from_config(padded)
            self.assertIn(host.pf, [  # type: ignore[attr-defined]
                d['address'] for d in host.devices
                if test_matching.ours(ours, host, d)], where)
            blank = [json.dumps({'devname': ''})]
            nova = self.oracle.ask({'cmd': 'match', 'pfs': host.pfs,
                                    'specs': blank,
                                    'devices': host.devices})
            # nova matches every device; an empty name is refused here
            self.assertNotIn(None, nova['devices'], where)
            self.assertRaises(exception.InvalidDeviceSpec,
                              device_spec.DeviceSpecList.from_config, blank)

    def test_null_tag_joins_another_specs_pool(self) -> None:
        """nova's pool lookup: a null tag equals a missing key.

        Spec A tags one VF ``live_migratable``; spec B gives the PF's
        other VFs ``"physical_network": null``. When A's VF is pooled
        first, nova puts B's VFs in A's pool (as many keys, and the keys
        of B's devices all equal there) and hands them out as live
        migratable; the core pools by the exact key and does not. When B's
        VFs are pooled first, nova keeps them apart too: both agree.
        """
        rng = self.rng()
        merged = apart = 0
        for case in range(CASES):
            host = sriov_host(rng, ifname=False)
            pf = host.pf  # type: ignore[attr-defined]
            vfs = [d for d in host.devices if d['parent_addr'] == pf]
            if len(vfs) < 2:
                continue
            first = rng.random() < 0.5
            tagged = vfs[0] if first else vfs[-1]
            specs = [json.dumps({'address': tagged['address'],
                                 'live_migratable': 'true'}),
                     json.dumps({'address': pf,
                                 'physical_network': None})]
            aliases = [json.dumps({
                'name': 'lm', 'vendor_id': tagged['vendor_id'],
                'product_id': tagged['product_id'],
                'device_type': 'type-VF', 'live_migratable': 'true'})]
            asked = 'lm:%d' % rng.randint(2, len(vfs))
            where = self.where(case, (host.devices, specs, asked))
            answer = self.oracle.ask({
                'cmd': 'scenario', 'pfs': host.pfs, 'specs': specs,
                'aliases': aliases, 'devices': host.devices,
                'sockets': list(host.sockets), 'start': [],
                'ops': [{'claim': {'asked': asked, 'uuid': 'i',
                                   'policy': None, 'cells': None}}]})
            claim = answer['steps'][0]['claim']
            # one device is live migratable: the core refuses
            self.assertFalse(self._ours_fits(host, specs, aliases, asked),
                             where)
            if first:
                # nova's pools merged; it hands out B's VFs (the device
                # that joined last goes first) as live migratable
                self.assertTrue(answer['merged'], where)
                self.assertIsNotNone(claim, where)
                self.assertTrue(set(claim[0]) - {tagged['address']}, where)
                merged += 1
            else:
                self.assertFalse(answer['merged'], where)
                self.assertIsNone(claim, where)
                apart += 1
        self.assertGreater(merged, CASES // 8)
        self.assertGreater(apart, CASES // 8)
