"""HostReport schema v1: lossless round trips and located errors."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import synthetic
from tests.unit.pci import fakes
from tests.unit.pci.fakes import case

PF = '0000:81:00.0'


def full_report() -> report_mod.HostReport:
    """A report using every field of the schema."""
    devices = [
        fakes.pf(PF, numa=1, group=20, tags={'physical_network': 'p1'}),
        fakes.vf('0000:81:02.0', PF, numa=1, group=21, status='allocated',
                 owner='inst-1', source='hotplug', traits=('CUSTOM_FAST',)),
        fakes.vf('0000:81:02.1', PF, numa=1, group=22, status='claimed',
                 owner='inst-2', source='flavor'),
        fakes.dev('0000:3b:00.0', numa=None, group=None,
                  status='unavailable', rc='CUSTOM_GPU',
                  traits=('HW_GPU_API_VULKAN', 'CUSTOM_A')),
        fakes.dev('0000:3c:00.0', numa=0, group=30, status='unclaimable'),
    ]
    devices[0].driver = 'i40e'
    devices[0].devname = 'ens1f0'
    devices[0].class_code = '020000'
    devices[1].driver = 'vfio-pci'
    rep = fakes.report(*devices, host='compute-7', generation=42,
                       cells=((0, 0), (1, None)),
                       foreign={30: ('0000:3c:00.1',)})
    rep.iommu.interrupt_remapping = False
    return rep


def canonical() -> dict[str, Any]:
    return full_report().to_dict()


class RoundTripTest(testtools.TestCase):

    def test_dict_round_trip(self) -> None:
        data = canonical()
        loaded = report_mod.HostReport.from_dict(copy.deepcopy(data))
        self.assertEqual(data, loaded.to_dict())
        self.assertEqual(full_report(), loaded)

    def test_synthetic_hosts_are_valid_reports(self) -> None:
        # The benchmarks' hosts: 16 and 32 PFs need a second and third
        # PCI domain (a bus is at most 0xff).
        for pfs in (4, 16, 32):
            rep = synthetic.sriov_host('h', pfs, 64, 2)
            self.assertEqual(rep, report_mod.HostReport.from_json(
                rep.to_json()))
            self.assertEqual(pfs * 65, len(rep.devices))

    def test_json_round_trip(self) -> None:
        rep = full_report()
        text = rep.to_json()
        self.assertEqual(rep, report_mod.HostReport.from_json(text))
        self.assertEqual(rep, report_mod.HostReport.from_json(
            text.encode('utf-8')))
        self.assertEqual(json.loads(text), json.loads(
            report_mod.HostReport.from_json(rep.to_json(indent=2)).to_json()))

    def test_to_dict_shape(self) -> None:
        data = canonical()
        self.assertEqual(1, data['version'])
        self.assertEqual([{'id': 0, 'socket': 0}, {'id': 1, 'socket': None}],
                         data['numa_cells'])
        self.assertEqual({'enabled': True, 'interrupt_remapping': False,
                          'foreign_members': {'30': ['0000:3c:00.1']}},
                         data['iommu'])
        dev = data['devices'][1]
        self.assertEqual({
            'address': '0000:81:02.0', 'vendor_id': '8086',
            'product_id': '154c', 'class': '000000', 'dev_type': 'type-VF',
            'parent_address': PF, 'numa_node': 1, 'iommu_group': 21,
            'driver': 'vfio-pci', 'devname': None, 'tags': {},
            'resource_class': 'CUSTOM_PCI_8086_154C',
            'traits': ['CUSTOM_FAST'], 'status': 'allocated',
            'owner': 'inst-1', 'source': 'hotplug'}, dev)

    def test_minimal_report_defaults(self) -> None:
        rep = report_mod.HostReport.from_dict({
            'version': 1, 'host': 'h', 'generation': 0, 'devices': [
                {'address': '0000:00:01.0', 'vendor_id': '10de',
                 'product_id': '1eb8', 'dev_type': 'type-PCI'}]})
        dev = rep.devices[0]
        self.assertEqual(('available', None, None, 'CUSTOM_PCI_10DE_1EB8',
                          '000000', (), {}),
                         (dev.status, dev.owner, dev.source,
                          dev.resource_class, dev.class_code, dev.traits,
                          dev.tags))
        self.assertTrue(rep.iommu.enabled)
        self.assertEqual({}, rep.iommu.foreign_members)
        self.assertEqual([], rep.numa_cells)
        self.assertIsNone(rep.reported_at)
        # once loaded, the report is canonical and round-trips exactly
        data = rep.to_dict()
        self.assertEqual(data,
                         report_mod.HostReport.from_dict(data).to_dict())

    def test_device_lookup(self) -> None:
        rep = full_report()
        self.assertEqual('type-PF', rep.device(PF).dev_type)
        self.assertIsNone(rep.device('0000:99:00.0'))

    def test_reported_at_default(self) -> None:
        rep = report_mod.HostReport('h')
        self.assertIsNotNone(rep.reported_at)
        self.assertTrue(rep.reported_at.endswith('+00:00'))


def mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or with ``value is DELETE`` delete) a dotted path in the dict."""
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split('.')
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() and isinstance(
                node, list) else node[part]
        key: Any = int(last) if last.isdigit() and isinstance(
            node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return apply


DELETE = object()


class SchemaErrorTest(testtools.TestCase):

    # (name, mutation, JSON path reported, text in the reason)
    TABLE = [
        ('version', mutate('version', 2), '$.version', '1 was expected'),
        ('no host', mutate('host', DELETE), '$',
         "'host' is a required property"),
        ('empty host', mutate('host', ''), '$.host', ''),
        ('negative generation', mutate('generation', -1), '$.generation',
         'less than the minimum'),
        ('string generation', mutate('generation', '1'), '$.generation',
         "is not of type 'integer'"),
        ('bool generation', mutate('generation', True), '$.generation', ''),
        ('extra top key', mutate('extra', 1), '$',
         "'extra' was unexpected"),
        ('no devices', mutate('devices', DELETE), '$',
         "'devices' is a required property"),
        ('cell id', mutate('numa_cells.1.id', -1), '$.numa_cells[1].id',
         'minimum'),
        ('cell socket', mutate('numa_cells.0.socket', 'a'),
         '$.numa_cells[0].socket', ''),
        ('cell extra', mutate('numa_cells.0.cpus', []), '$.numa_cells[0]',
         "'cpus' was unexpected"),
        ('iommu enabled', mutate('iommu.enabled', 'yes'), '$.iommu.enabled',
         "is not of type 'boolean'"),
        ('foreign group name', mutate('iommu.foreign_members',
                                      {'g1': []}),
         '$.iommu.foreign_members', "'g1' is not an IOMMU group number"),
        ('foreign member', mutate('iommu.foreign_members',
                                  {'3': ['3c:00.1']}),
         '$.iommu.foreign_members.3[0]',
         "'3c:00.1' is not a PCI address domain:bus:slot.function"),
        ('vendor_id', mutate('devices.3.vendor_id', 'XYZ'),
         '$.devices[3].vendor_id',
         "'XYZ' is not 4 lower-case hex digits (e.g. 8086)"),
        ('upper-case id', mutate('devices.0.product_id', '154C'),
         '$.devices[0].product_id', "'154C' is not 4 lower-case hex"),
        ('slot 20', mutate('devices.0.address', '0000:81:20.0'),
         '$.devices[0].address', "'0000:81:20.0' is not a PCI address"),
        ('short address', mutate('devices.0.address', '81:00.0'),
         '$.devices[0].address', "'81:00.0' is not a PCI address"),
        ('address newline', mutate('devices.4.address', '0000:3c:00.0\n'),
         '$.devices[4].address', "'0000:3c:00.0\\n' is not a PCI"),
        ('parent address', mutate('devices.1.parent_address', 'pf'),
         '$.devices[1].parent_address', ''),
        ('dev_type', mutate('devices.1.dev_type', 'type-VDPA'),
         '$.devices[1].dev_type', 'is not one of'),
        ('no dev_type', mutate('devices.2.dev_type', DELETE),
         '$.devices[2]', "'dev_type' is a required property"),
        ('status', mutate('devices.2.status', 'busy'),
         '$.devices[2].status', "'busy' is not one of"),
        ('source', mutate('devices.1.source', 'manual'),
         '$.devices[1].source', "'manual' is not one of"),
        ('numa_node', mutate('devices.0.numa_node', -1),
         '$.devices[0].numa_node', 'minimum'),
        ('iommu_group', mutate('devices.0.iommu_group', 'g'),
         '$.devices[0].iommu_group', ''),
        ('tag value', mutate('devices.0.tags', {'a': 1}),
         '$.devices[0].tags.a', "1 is not of type 'string'"),
        ('trait', mutate('devices.3.traits', ['custom_a']),
         '$.devices[3].traits[0]',
         "'custom_a' is not upper-case letters, digits and _ only"),
        ('duplicate trait', mutate('devices.3.traits', ['A', 'A']),
         '$.devices[3].traits', 'non-unique'),
        ('resource_class', mutate('devices.3.resource_class', 'gpu'),
         '$.devices[3].resource_class', "'gpu' is not upper-case"),
        ('class', mutate('devices.0.class', '02000'), '$.devices[0].class',
         "'02000' is not 6 lower-case hex digits (e.g. 020000)"),
        ('device extra', mutate('devices.0.serial', 'x'), '$.devices[0]',
         "'serial' was unexpected"),
        ('owner', mutate('devices.1.owner', 5), '$.devices[1].owner', ''),
        ('device not object', mutate('devices.2', 'x'), '$.devices[2]',
         "is not of type 'object'"),
    ]

    def test_table(self) -> None:
        for name, apply, path, reason in self.TABLE:
            with case(name):
                data = canonical()
                apply(data)
                exc = self.assertRaises(exception.InvalidHostReport,
                                        report_mod.HostReport.from_dict,
                                        data)
                self.assertEqual(path, exc.kwargs['path'])
                self.assertIn(f' at {path}: ', exc.message)
                self.assertIn(reason, exc.message)
                # Said for people: never a regular expression.
                self.assertNotIn('[0-9a-f]', exc.message)
                host = data.get('host')
                self.assertIn(host if isinstance(host, str) and host
                              else 'report', exc.message)

    def test_integers_are_ints(self) -> None:
        # JSON Schema calls 1.0 an integer; the loaded report must not hand
        # floats to generation arithmetic or pool keys.
        for name, apply in (
                ('generation', mutate('generation', 1e30)),
                ('generation 1.0', mutate('generation', 1.0)),
                ('numa_node', mutate('devices.0.numa_node', 1.0)),
                ('iommu_group', mutate('devices.0.iommu_group', 20.0)),
                ('cell id', mutate('numa_cells.0.id', 0.0))):
            with case(name):
                data = canonical()
                apply(data)
                try:
                    rep = report_mod.HostReport.from_dict(data)
                except exception.InvalidHostReport:
                    continue
                loaded = rep.to_dict()
                self.assertIs(int, type(loaded['generation']))
                for dev in loaded['devices']:
                    for key in ('numa_node', 'iommu_group'):
                        self.assertIn(type(dev[key]), (int, type(None)))
                for cell in loaded['numa_cells']:
                    self.assertIs(int, type(cell['id']))

    def test_not_an_object(self) -> None:
        for data in ([], None, 'x', 5):
            with case(repr(data)):
                exc = self.assertRaises(exception.InvalidHostReport,
                                        report_mod.HostReport.from_dict,
                                        data, 'store file h.json')
                self.assertIn('store file h.json at $:', exc.message)

    def test_not_json(self) -> None:
        for text in ('{', '', b'\xff', '[' * 100000, 'NaN x'):
            with case(repr(text)[:20]):
                exc = self.assertRaises(exception.InvalidHostReport,
                                        report_mod.HostReport.from_json,
                                        text, 'h.json')
                self.assertIn('for h.json at $: not valid JSON', exc.message)


class CrossFieldTest(testtools.TestCase):

    def _devices(self, *devices: dict[str, Any]) -> dict[str, Any]:
        return {'version': 1, 'host': 'h', 'generation': 1,
                'devices': list(devices)}

    @staticmethod
    def _dev(address: str, dev_type: str = 'type-PCI',
             **kw: Any) -> dict[str, Any]:
        return dict(address=address, vendor_id='8086', product_id='1572',
                    dev_type=dev_type, **kw)

    def _error(self, data: dict[str, Any]) -> exception.InvalidHostReport:
        return self.assertRaises(exception.InvalidHostReport,
                                 report_mod.HostReport.from_dict, data)

    def test_duplicate_address(self) -> None:
        exc = self._error(self._devices(
            self._dev('0000:00:01.0'), self._dev('0000:00:02.0'),
            self._dev('0000:00:01.0')))
        self.assertEqual('$.devices[2].address', exc.kwargs['path'])
        self.assertIn('address 0000:00:01.0 appears twice', exc.message)

    def test_vf_without_parent(self) -> None:
        for extra in ({}, {'parent_address': None}):
            with case(repr(extra)):
                exc = self._error(self._devices(
                    self._dev('0000:00:01.0', 'type-VF', **extra)))
                self.assertEqual('$.devices[0].parent_address',
                                 exc.kwargs['path'])
                self.assertIn('a type-VF device needs the address of its PF',
                              exc.message)

    def test_non_vf_with_parent(self) -> None:
        for dev_type in ('type-PCI', 'type-PF'):
            with case(dev_type):
                exc = self._error(self._devices(
                    self._dev('0000:00:01.0', dev_type,
                              parent_address='0000:00:02.0')))
                self.assertEqual('$.devices[0].parent_address',
                                 exc.kwargs['path'])
                self.assertIn(f'only type-VF devices have a parent PF, this '
                              f'is {dev_type}', exc.message)

    def test_parent_not_a_pf(self) -> None:
        for parent_type in ('type-PCI', 'type-VF'):
            with case(parent_type):
                parent = self._dev('0000:00:01.0', parent_type)
                if parent_type == 'type-VF':
                    parent['parent_address'] = '0000:00:09.0'
                exc = self._error(self._devices(
                    self._dev('0000:00:02.0', 'type-VF',
                              parent_address='0000:00:01.0'), parent))
                self.assertEqual('$.devices[0].parent_address',
                                 exc.kwargs['path'])
                self.assertIn(f'parent 0000:00:01.0 is {parent_type}, not a '
                              'type-PF', exc.message)

    def test_parent_outside_the_report_is_allowed(self) -> None:
        # The PF itself need not be whitelisted.
        rep = report_mod.HostReport.from_dict(self._devices(
            self._dev('0000:00:02.0', 'type-VF',
                      parent_address='0000:00:01.0')))
        self.assertEqual('0000:00:01.0', rep.devices[0].parent_address)

    def test_in_use_without_owner(self) -> None:
        for status in ('claimed', 'allocated'):
            for owner in ({}, {'owner': None}, {'owner': ''}):
                with case(f'{status} {owner}'):
                    exc = self._error(self._devices(
                        self._dev('0000:00:01.0', status=status, **owner)))
                    self.assertEqual('$.devices[0].owner',
                                     exc.kwargs['path'])
                    self.assertIn(f'a {status} device needs its owner',
                                  exc.message)

    def test_owner_only_when_in_use(self) -> None:
        # The opposite of "claimed without owner": consume() and release()
        # could not give such a device back as it was.
        for status in ('available',):
            for extra in ({'owner': 'ghost'},
                          {'owner': 'ghost', 'source': 'flavor'}):
                with case(f'{status} {extra}'):
                    exc = self._error(self._devices(
                        self._dev('0000:00:01.0', status=status, **extra)))
                    self.assertEqual('$.devices[0].owner',
                                     exc.kwargs['path'])

    def test_free_statuses_need_no_owner(self) -> None:
        for status in ('available', 'unavailable', 'unclaimable'):
            with case(status):
                rep = report_mod.HostReport.from_dict(self._devices(
                    self._dev('0000:00:01.0', status=status)))
                self.assertEqual(status, rep.devices[0].status)

    def test_foreign_member_keys_are_canonical(self) -> None:
        # "7" and "007" would both load as group 7, one list replacing the
        # other: the foreign member could be silently lost.
        for keys in (('7', '007'), ('007',), ('07', '7')):
            with case(repr(keys)):
                data = self._devices(self._dev('0000:00:01.0',
                                               iommu_group=7))
                data['iommu'] = {'foreign_members': {
                    k: ['0000:00:02.0'] for k in keys}}
                exc = self._error(data)
                self.assertEqual('$.iommu.foreign_members',
                                 exc.kwargs['path'])
        data = self._devices(self._dev('0000:00:01.0', iommu_group=0))
        data['iommu'] = {'foreign_members': {'0': ['0000:00:02.0'],
                                             '10': []}}
        rep = report_mod.HostReport.from_dict(data)
        self.assertEqual({0: ('0000:00:02.0',), 10: ()},
                         rep.iommu.foreign_members)

    def test_duplicate_numa_cell(self) -> None:
        data = self._devices()
        data['numa_cells'] = [{'id': 0, 'socket': 0}, {'id': 1},
                              {'id': 0, 'socket': 1}]
        exc = self._error(data)
        self.assertEqual('$.numa_cells[2].id', exc.kwargs['path'])
        self.assertIn('NUMA cell 0 appears twice', exc.message)
