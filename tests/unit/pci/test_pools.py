"""Pools, fit, consume and release: each rule of the core as a named case."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import testtools

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from tests.unit.pci import fakes
from tests.unit.pci.fakes import case
from tests.unit.pci.fakes import dev
from tests.unit.pci.fakes import gpu_request
from tests.unit.pci.fakes import host
from tests.unit.pci.fakes import pf
from tests.unit.pci.fakes import pf_request
from tests.unit.pci.fakes import requests
from tests.unit.pci.fakes import vf
from tests.unit.pci.fakes import vf_request

PF1 = '0000:81:00.0'
PF2 = '0000:82:00.0'
GPU1 = '0000:3b:00.0'
GPU2 = '0000:3c:00.0'
AUDIO1 = '0000:3b:00.1'


def vf_addr(pf_address: str, n: int) -> str:
    return '%s:%02x.%x' % (pf_address[:7], 2 + n // 8, n % 8)


def sriov(pfs: Sequence[str] = (PF1,), vfs: int = 2, *,
          numa: Sequence[int | None] | None = None,
          used: dict[str, int] | None = None,
          pf_status: str = 'available') -> list[report_mod.Device]:
    """PFs with ``vfs`` VFs each, every device in its own IOMMU group.

    ``used[pf]`` of that PF's first VFs are allocated.
    """
    out = []
    group = 100
    for p, address in enumerate(pfs):
        node = numa[p] if numa else 0
        out.append(pf(address, numa=node, group=group, status=pf_status))
        group += 1
        for v in range(vfs):
            in_use = v < (used or {}).get(address, 0)
            out.append(vf(vf_addr(address, v), address, numa=node,
                          group=group,
                          status='allocated' if in_use else 'available'))
            group += 1
    return out


@dataclasses.dataclass
class Scenario:
    """One named rule: a host, the requests, and the answer expected."""

    name: str
    devices: Callable[[], list[report_mod.Device]]
    request_set: request_mod.RequestSet
    ok: bool
    cells: Sequence[int] | None = None
    reason: str | None = None
    # chosen addresses per request (exact), or None not to check
    chosen: tuple[tuple[str, ...], ...] | None = None
    companions: tuple[str, ...] | None = None
    # text that must be in the detail sentence
    detail: tuple[str, ...] = ()
    host_kw: dict[str, object] = dataclasses.field(default_factory=dict)


def check(test: testtools.TestCase, sc: Scenario) -> pools_mod.Fit:
    with case(sc.name):
        hp = host(*sc.devices(), **sc.host_kw)
        before = fakes.statuses(hp)
        fit = hp.fit(sc.request_set, sc.cells)
        test.assertEqual(sc.ok, fit.ok, fit.detail)
        test.assertEqual(sc.ok, bool(fit))
        test.assertEqual(sc.ok, hp.fits(sc.request_set, sc.cells))
        if sc.ok:
            test.assertIsNone(fit.reason)
            test.assertEqual(len(sc.request_set.requests), len(fit.devices))
            for group, req in zip(fit.devices, sc.request_set.requests,
                                  strict=True):
                test.assertEqual(req.count, len(group))
            if sc.chosen is not None:
                test.assertEqual(sc.chosen, fit.devices)
            if sc.companions is not None:
                test.assertEqual(sc.companions, fit.companions)
            test.assertFalse(set(fit.addresses) & set(fit.companions))
            test.assertEqual(len(fit.addresses), len(set(fit.addresses)))
        else:
            test.assertEqual(sc.reason, fit.reason, fit.detail)
            test.assertEqual((), fit.devices)
            test.assertIn(hp.host, fit.detail)
            for text in sc.detail:
                test.assertIn(text, fit.detail)
        # fit alone never changes the host
        test.assertEqual(before, fakes.statuses(hp))
        return fit


def run_table(test: testtools.TestCase, table: list[Scenario]) -> None:
    names = [sc.name for sc in table]
    test.assertEqual(len(names), len(set(names)), 'duplicate names')
    for sc in table:
        check(test, sc)


class PfVfTest(testtools.TestCase):

    TABLE = [
        Scenario('a VF request gets a VF, never the PF (the last '
                 'pooled, as nova)',
                 lambda: sriov(vfs=2), requests(vf_request()), True,
                 chosen=((vf_addr(PF1, 1),),), companions=()),
        Scenario('a PF request gets the PF when no VF is in use',
                 lambda: sriov(vfs=2), requests(pf_request()), True,
                 chosen=((PF1,),)),
        Scenario('a VF in use makes its PF unavailable',
                 lambda: sriov(vfs=2, used={PF1: 1}), requests(pf_request()),
                 False, reason=explain.INSUFFICIENT,
                 detail=('1 x pf (8086:1572 type-PF)',
                         '1 blocked because its PF or a VF of it is in use')),
        Scenario('a PF in use makes all its VFs unavailable',
                 lambda: sriov(vfs=3, pf_status='allocated'),
                 requests(vf_request()), False, reason=explain.INSUFFICIENT,
                 detail=('3 blocked because its PF or a VF of it is in use',)),
        Scenario('the other PF is still available',
                 lambda: sriov((PF1, PF2), vfs=1, used={PF1: 1}),
                 requests(pf_request()), True, chosen=((PF2,),)),
        Scenario('1 VF + 1 PF of one single PF fail within one fit',
                 lambda: sriov(vfs=4), requests(vf_request(), pf_request()),
                 False, reason=explain.INSUFFICIENT,
                 detail=('1 taken by an earlier request of the same '
                         'instance',)),
        Scenario('1 PF + 1 VF of one single PF fail within one fit',
                 lambda: sriov(vfs=4), requests(pf_request(), vf_request()),
                 False, reason=explain.INSUFFICIENT,
                 detail=('4 taken by an earlier request',)),
        Scenario('1 VF + 1 PF take different PFs',
                 lambda: sriov((PF1, PF2), vfs=1),
                 requests(vf_request(), pf_request()), True,
                 chosen=((vf_addr(PF1, 0),), (PF2,))),
        Scenario('1 PF + 1 VF take different PFs',
                 lambda: sriov((PF1, PF2), vfs=1),
                 requests(pf_request(), vf_request()), True,
                 chosen=((PF1,), (vf_addr(PF2, 0),))),
        Scenario('a PF is not given to a request that does not ask for PFs',
                 lambda: sriov(vfs=0),
                 requests(fakes.request(vendor=fakes.INTEL,
                                        product=fakes.PF_PRODUCT)),
                 False, reason=explain.NO_MATCH,
                 detail=('only PFs that were not asked for',)),
        Scenario('VFs of a PF outside the report are independent',
                 lambda: [vf(vf_addr(PF1, 0), PF1, group=1),
                          vf(vf_addr(PF1, 1), PF1, group=2,
                             status='allocated')],
                 requests(vf_request()), True,
                 chosen=((vf_addr(PF1, 0),),)),
    ]

    def test_table(self) -> None:
        run_table(self, self.TABLE)

    def test_pf_and_vf_in_one_iommu_group(self) -> None:
        # Without ACS below the PF its VFs share its group: binding the
        # group to vfio-pci would destroy the VFs, so nothing is handed out.
        for req in (vf_request(), pf_request()):
            with case(req.alias_name):
                hp = host(pf(PF1, group=1), vf(vf_addr(PF1, 0), PF1, group=1),
                          vf(vf_addr(PF1, 1), PF1, group=1))
                fit = hp.fit(requests(req))
                self.assertFalse(fit.ok)
                self.assertEqual(explain.GROUP, fit.reason)

    def test_consume_vf_blocks_pf_and_release_frees_it(self) -> None:
        hp = host(*sriov(vfs=2))
        fit = hp.fit(requests(vf_request()))
        hp.consume(fit, 'inst-a')
        self.assertFalse(hp.fit(requests(pf_request())).ok)
        self.assertTrue(hp.fit(requests(vf_request())).ok)
        hp.release('inst-a')
        self.assertTrue(hp.fit(requests(pf_request())).ok)

    def test_consume_pf_blocks_vfs(self) -> None:
        hp = host(*sriov(vfs=2))
        hp.consume(hp.fit(requests(pf_request())), 'inst-a')
        fit = hp.fit(requests(vf_request()))
        self.assertEqual(explain.INSUFFICIENT, fit.reason)


def numa_host(*nodes: int | None, product: str = fakes.GPU_PRODUCT
              ) -> Callable[[], list[report_mod.Device]]:
    """One GPU per entry of ``nodes`` (its NUMA node), own IOMMU groups."""
    def build() -> list[report_mod.Device]:
        return [dev('0000:%02x:00.0' % (0x10 + i), numa=node, group=i,
                    product=product) for i, node in enumerate(nodes)]
    return build


def gpus(policy: str, count: int = 1) -> request_mod.RequestSet:
    return requests(gpu_request(count, policy=policy))


def a(i: int) -> str:
    return '0000:%02x:00.0' % (0x10 + i)


SAME_SOCKET = {'cells': ((0, 0), (1, 0))}
TWO_SOCKETS = {'cells': ((0, 0), (1, 1))}
NO_SOCKET = {'cells': ((0, 0), (1, None))}


class NumaTest(testtools.TestCase):

    TABLE = [
        Scenario('required: a device on the instance node fits',
                 numa_host(1, 0), gpus('required'), True, cells=[0],
                 chosen=((a(1),),)),
        Scenario('required: a device on another node does not',
                 numa_host(1), gpus('required'), False, cells=[0],
                 reason=explain.NUMA,
                 detail=('numa_policy required on NUMA node(s) 0',
                         'free devices are 1 on node 1')),
        Scenario('required: a device without NUMA node does not',
                 numa_host(None), gpus('required'), False, cells=[0],
                 reason=explain.NUMA, detail=('1 on node unknown',)),
        Scenario('required: any instance node will do',
                 numa_host(1), gpus('required'), True, cells=[0, 1]),
        Scenario('required: 2 devices need 2 on the nodes',
                 numa_host(0, 1), gpus('required', 2), False, cells=[0],
                 reason=explain.NUMA),
        Scenario('legacy: a device without NUMA node fits',
                 numa_host(None), gpus('legacy'), True, cells=[0]),
        Scenario('legacy: a device on another node does not',
                 numa_host(1), gpus('legacy'), False, cells=[0],
                 reason=explain.NUMA),
        Scenario('legacy: affine devices first',
                 numa_host(None, 0), gpus('legacy'), True, cells=[0],
                 chosen=((a(1),),)),
        Scenario('legacy: affine plus unknown-node devices together',
                 numa_host(None, 0, 1), gpus('legacy', 2), True, cells=[0],
                 chosen=((a(0), a(1)),)),
        Scenario('preferred: a device on another node fits',
                 numa_host(1), gpus('preferred'), True, cells=[0]),
        Scenario('preferred: the affine device is chosen first',
                 numa_host(1, 0), gpus('preferred'), True, cells=[0],
                 chosen=((a(1),),)),
        Scenario('preferred: mixes nodes when it must',
                 numa_host(1, 0), gpus('preferred', 2), True, cells=[0]),
        Scenario('preferred: still needs enough devices',
                 numa_host(1), gpus('preferred', 2), False, cells=[0],
                 reason=explain.INSUFFICIENT),
        Scenario('socket: another node on the same socket fits',
                 numa_host(1), gpus('socket'), True, cells=[0],
                 host_kw=SAME_SOCKET),
        Scenario('socket: a node on another socket does not',
                 numa_host(1), gpus('socket'), False, cells=[0],
                 reason=explain.NUMA, host_kw=TWO_SOCKETS,
                 detail=('numa_policy socket',)),
        Scenario('socket: no socket information means no fit',
                 numa_host(1), gpus('socket'), False, cells=[0],
                 reason=explain.NUMA, host_kw=NO_SOCKET),
        Scenario('socket: strict affinity needs no socket information',
                 numa_host(0), gpus('socket'), True, cells=[0],
                 host_kw=NO_SOCKET),
        Scenario('socket: a device without NUMA node does not fit',
                 numa_host(None), gpus('socket'), False, cells=[0],
                 reason=explain.NUMA, host_kw=SAME_SOCKET),
        Scenario('socket: host without NUMA cells',
                 numa_host(1), gpus('socket'), False, cells=[0],
                 reason=explain.NUMA, host_kw={'cells': ()}),
        Scenario('no instance NUMA cells: no NUMA filtering',
                 numa_host(1), gpus('required'), True, cells=None),
        Scenario('empty instance NUMA cells: no NUMA filtering',
                 numa_host(None), gpus('required'), True, cells=[]),
        Scenario('flavor override to required from a legacy alias',
                 numa_host(None),
                 request_mod.RequestSet.from_extra_specs(
                     {'pci_passthrough:alias': 'gpu:1',
                      'hw:pci_numa_affinity_policy': 'required'},
                     {'gpu': alias_mod.Alias('gpu', 'legacy', None,
                                             gpu_request().specs)}),
                 False, cells=[0], reason=explain.NUMA),
    ]

    def test_table(self) -> None:
        run_table(self, self.TABLE)


class IommuGroupTest(testtools.TestCase):

    TABLE = [
        Scenario('a group with a foreign member is never assignable',
                 lambda: [dev(GPU1, group=5)], gpus('legacy'), False,
                 reason=explain.GROUP,
                 host_kw={'foreign': {5: (AUDIO1,)}},
                 detail=('in an IOMMU group with devices that cannot be '
                         'assigned',)),
        Scenario('a foreign member elsewhere does not matter',
                 lambda: [dev(GPU1, group=5)], gpus('legacy'), True,
                 host_kw={'foreign': {6: (AUDIO1,)}}),
        Scenario('an empty foreign member list blocks nothing',
                 lambda: [dev(GPU1, group=5)], gpus('legacy'), True,
                 host_kw={'foreign': {5: ()}}),
        Scenario('a group whose other member is in use is not assignable',
                 lambda: [dev(GPU1, group=5),
                          dev(AUDIO1, product='10f8', group=5,
                              status='allocated')],
                 gpus('legacy'), False, reason=explain.GROUP,
                 detail=('in an IOMMU group whose other members are busy',)),
        Scenario('a group whose other member is unavailable is not '
                 'assignable',
                 lambda: [dev(GPU1, group=5),
                          dev(AUDIO1, product='10f8', group=5,
                              status='unavailable')],
                 gpus('legacy'), False, reason=explain.GROUP),
        Scenario('taking one member takes the whole group',
                 lambda: [dev(GPU1, group=5),
                          dev(AUDIO1, product='10f8', group=5)],
                 gpus('legacy'), True, chosen=((GPU1,),),
                 companions=(AUDIO1,)),
        Scenario('two whitelisted members both count for 2 devices',
                 lambda: [dev(GPU1, group=5), dev(AUDIO1, group=5)],
                 gpus('legacy', 2), True, chosen=((GPU1, AUDIO1),),
                 companions=()),
        Scenario('the second member of a group comes along for 1 device',
                 lambda: [dev(GPU1, group=5), dev(AUDIO1, group=5)],
                 gpus('legacy', 1), True, chosen=((GPU1,),),
                 companions=(AUDIO1,)),
        Scenario('a group is not split between two requests',
                 lambda: [dev(GPU1, group=5), dev(AUDIO1, group=5)],
                 requests(gpu_request(1), gpu_request(1)), False,
                 reason=explain.INSUFFICIENT,
                 detail=('taken by an earlier request',)),
        Scenario('devices without a group stand alone',
                 lambda: [dev(GPU1, group=None), dev(AUDIO1, group=None,
                                                     status='allocated')],
                 gpus('legacy'), True, chosen=((GPU1,),), companions=()),
        Scenario('the iommu off makes nothing assignable',
                 lambda: [dev(GPU1, group=5)], gpus('legacy'), False,
                 reason=explain.NO_IOMMU, host_kw={'iommu': False},
                 detail=('the host IOMMU is off',)),
    ]

    def test_table(self) -> None:
        run_table(self, self.TABLE)

    def test_companions_are_consumed_and_released(self) -> None:
        hp = host(dev(GPU1, group=5), dev(AUDIO1, product='10f8', group=5),
                  dev(GPU2, group=6))
        fit = hp.fit(gpus('legacy'))
        taken = hp.consume(fit, 'inst-a')
        self.assertEqual([GPU1, AUDIO1], taken)
        self.assertEqual(('claimed', 'inst-a'), fakes.statuses(hp)[AUDIO1])
        self.assertEqual([GPU1, AUDIO1], hp.held_by('inst-a'))
        self.assertEqual(sorted([GPU1, AUDIO1]),
                         sorted(hp.release('inst-a')))
        self.assertEqual(3, hp.free_count())


class AntiAffinityTest(testtools.TestCase):

    TABLE = [
        Scenario('two VFs from two PFs',
                 lambda: sriov((PF1, PF2), vfs=4),
                 requests(vf_request(2, anti=True)), True,
                 chosen=((vf_addr(PF1, 3), vf_addr(PF2, 3)),)),
        Scenario('two VFs of one PF without anti-affinity',
                 lambda: sriov((PF1,), vfs=4), requests(vf_request(2)), True,
                 chosen=((vf_addr(PF1, 3), vf_addr(PF1, 2)),)),
        Scenario('one PF cannot spread two VFs',
                 lambda: sriov((PF1,), vfs=4),
                 requests(vf_request(2, anti=True)), False,
                 reason=explain.ANTI_AFFINITY,
                 detail=('from distinct PFs: only 1 PF(s) have a free VF',)),
        Scenario('a PF with all VFs busy does not count',
                 lambda: sriov((PF1, PF2), vfs=2, used={PF2: 2}),
                 requests(vf_request(2, anti=True)), False,
                 reason=explain.ANTI_AFFINITY),
        Scenario('three VFs need three PFs',
                 lambda: sriov((PF1, PF2), vfs=4),
                 requests(vf_request(3, anti=True)), False,
                 reason=explain.ANTI_AFFINITY),
        Scenario('anti-affinity with one VF is plain',
                 lambda: sriov((PF1,), vfs=1),
                 requests(vf_request(1, anti=True)), True),
    ]

    def test_table(self) -> None:
        run_table(self, self.TABLE)


class HeadroomTest(testtools.TestCase):

    TABLE = [
        Scenario('headroom fits next to the request',
                 lambda: sriov(vfs=3),
                 requests(vf_request(2), headroom=(vf_request(1),)), True,
                 chosen=((vf_addr(PF1, 2), vf_addr(PF1, 1)),),
                 companions=()),
        Scenario('no room left for the headroom',
                 lambda: sriov(vfs=3),
                 requests(vf_request(2), headroom=(vf_request(2),)), False,
                 reason=explain.HEADROOM,
                 detail=('no room left for the hotplug headroom of 2 x vf',)),
        Scenario('headroom alone',
                 lambda: sriov(vfs=1), requests(headroom=(vf_request(1),)),
                 True, chosen=()),
        Scenario('headroom of another alias',
                 lambda: sriov(vfs=1) + [dev(GPU1, group=7)],
                 requests(vf_request(1), headroom=(gpu_request(2),)), False,
                 reason=explain.HEADROOM),
    ]

    def test_table(self) -> None:
        run_table(self, self.TABLE)

    def test_headroom_is_not_consumed(self) -> None:
        hp = host(*sriov(vfs=3))
        fit = hp.fit(requests(vf_request(2), headroom=(vf_request(1),)))
        hp.consume(fit, 'inst-a')
        self.assertEqual(2, len(hp.held_by('inst-a')))
        self.assertEqual(1, sum(len(p.free) for p in hp.pools
                                if p.sig.dev_type == 'type-VF'))


class ReasonTest(testtools.TestCase):
    """Every reason code of a failed fit, with its sentence."""

    TABLE = [
        Scenario('no device matches at all',
                 lambda: sriov(vfs=1), gpus('legacy'), False,
                 reason=explain.NO_MATCH,
                 detail=('host1 needs 1 x gpu (10de:1eb8): no device on the '
                         'host matches',)),
        Scenario('remote-managed devices are not handed out',
                 lambda: [vf(vf_addr(PF1, 0), PF1, group=1,
                             tags={'remote_managed': 'true'})],
                 requests(vf_request()), False, reason=explain.NO_MATCH,
                 detail=('remote-managed',)),
        Scenario('not enough devices',
                 lambda: sriov(vfs=2, used={PF1: 1}),
                 requests(vf_request(2)), False,
                 reason=explain.INSUFFICIENT,
                 detail=('2 x vf (8086:154c type-VF)', '1 free', '1 in use')),
        Scenario('unavailable devices are counted and named',
                 lambda: [dev(GPU1, group=1, status='unavailable'),
                          dev(GPU2, group=2, status='unclaimable')],
                 gpus('legacy'), False, reason=explain.INSUFFICIENT,
                 detail=('0 free', '2 reported unavailable')),
        Scenario('request by resource class and traits',
                 lambda: [dev(GPU1, group=1, rc='CUSTOM_GPU',
                              traits=('CUSTOM_BIG',))],
                 requests(fakes.request(rc='CUSTOM_GPU',
                                        traits=frozenset({'CUSTOM_BIG'}))),
                 True, chosen=((GPU1,),)),
        Scenario('missing trait is no match',
                 lambda: [dev(GPU1, group=1, rc='CUSTOM_GPU')],
                 requests(fakes.request(rc='CUSTOM_GPU',
                                        traits=frozenset({'CUSTOM_BIG'}))),
                 False, reason=explain.NO_MATCH,
                 detail=('CUSTOM_GPU',)),
        Scenario('live-migratable requests need live-migratable devices',
                 lambda: [dev(GPU1, group=1,
                              tags={'live_migratable': 'false'})],
                 requests(gpu_request(live='true')), False,
                 reason=explain.NO_MATCH),
        Scenario('live-migratable device for a live-migratable request',
                 lambda: [dev(GPU1, group=1,
                              tags={'live_migratable': 'true'})],
                 requests(gpu_request(live='true')), True),
        Scenario('an untagged device is not live-migratable',
                 lambda: [dev(GPU1, group=1)],
                 requests(gpu_request(live='true')), False,
                 reason=explain.NO_MATCH),
        Scenario('a request for non-live-migratable needs the tag false',
                 lambda: [dev(GPU1, group=1)],
                 requests(gpu_request(live='false')), False,
                 reason=explain.NO_MATCH),
        Scenario('no live_migratable wish takes any device',
                 lambda: [dev(GPU1, group=1,
                              tags={'live_migratable': 'true'}),
                          dev(GPU2, group=2,
                              tags={'live_migratable': 'false'})],
                 gpus('legacy', 2), True),
    ]

    def test_table(self) -> None:
        run_table(self, self.TABLE)

    def test_empty_requests_fit(self) -> None:
        hp = host()
        self.assertTrue(hp.fit(requests()).ok)
        self.assertTrue(hp.fits(requests()))
        self.assertEqual(0, hp.free_count())

    def test_zero_count_takes_nothing(self) -> None:
        hp = host(dev(GPU1, group=1))
        fit = hp.fit([gpu_request(0)])
        self.assertEqual(((), ()), (fit.addresses, fit.companions))

    def test_fit_accepts_a_list_of_requests(self) -> None:
        hp = host(*sriov(vfs=2))
        fit = hp.fit([vf_request(2)])
        self.assertTrue(fit.ok)
        self.assertEqual((vf_addr(PF1, 1), vf_addr(PF1, 0)), fit.addresses)


class ConsumeReleaseTest(testtools.TestCase):

    def _host(self) -> pools_mod.HostPools:
        return host(*sriov((PF1, PF2), vfs=3, used={PF2: 1}),
                    dev(GPU1, group=5), dev(AUDIO1, product='10f8', group=5),
                    dev(GPU2, group=6, status='claimed', owner='old',
                        source='hotplug'))

    def test_consume_then_release_restores_the_state(self) -> None:
        # The same devices are free again; nova's pool order and the order
        # within a pool follow history (see PoolOrderTest).
        hp = self._host()

        def state() -> tuple[object, ...]:
            devices = [{k: v for k, v in d.items()
                        if k not in ('pool_stamp', 'join_stamp')}
                       for d in hp.report.to_dict()['devices']]
            return (devices, sorted(sorted(f) for f in fakes.free_lists(hp)),
                    list(hp.state))

        before = state()
        fit = hp.fit(requests(vf_request(2), gpu_request(1)))
        self.assertTrue(fit.ok, fit.detail)
        taken = hp.consume(fit, 'inst-a', request_mod.SOURCE_HOTPLUG)
        self.assertEqual(list(fit.addresses) + list(fit.companions), taken)
        for address in taken:
            device = hp.report.device(address)
            self.assertEqual(('claimed', 'inst-a', 'hotplug'),
                             (device.status, device.owner, device.source))
        self.assertNotEqual(before[1], state()[1])
        self.assertEqual(sorted(taken), sorted(hp.release('inst-a')))
        self.assertEqual(before, state())

    def test_release_unknown_consumer(self) -> None:
        hp = self._host()
        before = hp.report.to_dict()
        self.assertEqual([], hp.release('nobody'))
        self.assertEqual(before, hp.report.to_dict())

    def test_release_owner_from_the_report(self) -> None:
        hp = self._host()
        self.assertEqual([GPU2], hp.held_by('old'))
        self.assertEqual([GPU2], hp.release('old'))
        self.assertTrue(hp.fit(gpus('legacy', 2)).ok)

    def test_stale_fit_raises_claim_failed(self) -> None:
        hp = self._host()
        first = hp.fit(requests(vf_request(1)))
        second = hp.fit(requests(vf_request(1)))
        self.assertEqual(first.devices, second.devices)
        hp.consume(first, 'inst-a')
        exc = self.assertRaises(exception.ClaimFailed, hp.consume, second,
                                'inst-b')
        self.assertIn(f'device {vf_addr(PF1, 2)} is in use', exc.message)
        self.assertIn('inst-b', exc.message)
        self.assertIn('host1', exc.message)
        self.assertEqual([], hp.held_by('inst-b'))

    def test_stale_fit_across_pf_and_vf(self) -> None:
        hp = host(*sriov((PF1,), vfs=2))
        vf_fit = hp.fit(requests(vf_request()))
        pf_fit = hp.fit(requests(pf_request()))
        hp.consume(vf_fit, 'inst-a')
        exc = self.assertRaises(exception.ClaimFailed, hp.consume, pf_fit,
                                'inst-b')
        self.assertIn(f'device {PF1} is blocked because its PF or a VF of '
                      'it is in use', exc.message)

    def test_stale_fit_from_older_report(self) -> None:
        old = host(*sriov((PF1,), vfs=1))
        fit = old.fit(requests(vf_request()))
        new = host(pf(PF1, group=1))
        exc = self.assertRaises(exception.ClaimFailed, new.consume, fit,
                                'inst-a')
        self.assertIn(vf_addr(PF1, 0), exc.message)

    def test_consume_checks_the_fit_as_a_whole(self) -> None:
        # Fits computed on another generation of the report, or rebuilt
        # from a stored claim, must not break the pools' promises.
        old = host(dev(GPU1, group=5), dev(AUDIO1, product='10f8', group=6))
        group_changed = (
            'a fit from before the group changed',
            host(dev(GPU1, group=5), dev(AUDIO1, product='10f8', group=5)),
            old.fit(gpus('legacy')))
        pf_and_vf = (
            'a PF with its VF',
            host(pf(PF1, group=1), vf(vf_addr(PF1, 0), PF1, group=2)),
            pools_mod.Fit(True, ((vf_addr(PF1, 0),), (PF1,))))
        twice = (
            'the same device twice',
            host(dev(GPU1, group=5)),
            pools_mod.Fit(True, ((GPU1,), (GPU1,))))
        for name, hp, fit in (group_changed, pf_and_vf, twice):
            with case(name):
                self.assertTrue(fit.ok)
                before = hp.report.to_dict()
                self.assertRaises(exception.ClaimFailed, hp.consume, fit,
                                  'inst-a')
                self.assertEqual(before, hp.report.to_dict())
                self.assertEqual([], hp.held_by('inst-a'))

    def test_failed_fit_cannot_be_consumed(self) -> None:
        hp = self._host()
        fit = hp.fit(gpus('legacy', 5))
        exc = self.assertRaises(exception.ClaimFailed, hp.consume, fit, 'x')
        self.assertIn('the requests do not fit', exc.message)

    def test_consumer_accumulates(self) -> None:
        hp = host(*sriov((PF1,), vfs=3))
        hp.consume(hp.fit(requests(vf_request())), 'inst-a')
        hp.consume(hp.fit(requests(vf_request())), 'inst-a')
        self.assertEqual([vf_addr(PF1, 2), vf_addr(PF1, 1)],
                         hp.held_by('inst-a'))
        self.assertEqual(2, len(hp.release('inst-a')))
        self.assertEqual(4, hp.free_count())

    def test_owners_in_the_report_are_known(self) -> None:
        hp = host(*sriov((PF1,), vfs=3, used={PF1: 2}))
        self.assertEqual(2, len(hp.owners['other-instance']))
        self.assertEqual(1, hp.free_count())


class PoolTest(testtools.TestCase):

    def test_pools_split_by_pf_node_and_tags(self) -> None:
        hp = host(*sriov((PF1, PF2), vfs=2, numa=(0, 1)),
                  dev(GPU1, group=1, tags={'physical_network': 'a'}),
                  dev(GPU2, group=2, tags={'physical_network': 'b'}))
        # 2 PF pools, 2 VF pools (one per PF), 2 GPU pools
        self.assertEqual(6, len(hp.pools))
        vf_pools = [p for p in hp.pools if p.sig.dev_type == 'type-VF']
        self.assertEqual({PF1, PF2}, {p.address for p in vf_pools})
        self.assertEqual({0, 1}, {p.numa_node for p in vf_pools})
        self.assertEqual(8, hp.free_count())

    def test_bad_ids_in_a_hand_built_report(self) -> None:
        exc = self.assertRaises(exception.InvalidHostReport, host,
                                dev(GPU1, vendor='zzzz'))
        self.assertIn('$.devices[0]', exc.message)


class PoolOrderTest(testtools.TestCase):
    """nova's history-dependent pool order (pci/pool_order.py)."""

    def _two_pfs(self, **kw: object) -> pools_mod.HostPools:
        return host(*sriov((PF1, PF2), vfs=1, **kw))  # type: ignore[arg-type]

    def test_a_pool_emptied_as_a_dependant_comes_back_last(self) -> None:
        hp = self._two_pfs()
        self.assertEqual(((PF1,),), hp.fit(requests(pf_request())).devices)
        hp.consume(hp.fit(requests(vf_request())), 'inst-a')
        self.assertEqual([vf_addr(PF1, 0)], hp.held_by('inst-a'))
        hp.release('inst-a')
        # PF1's pool left nova's list when its VF was claimed and came
        # back at the end: the next PF request takes PF2, as in nova.
        self.assertEqual(((PF2,),), hp.fit(requests(pf_request())).devices)

    def test_a_pool_emptied_by_its_own_claim_stays_listed(self) -> None:
        hp = self._two_pfs()
        hp.consume(hp.fit(requests(pf_request())), 'inst-a')
        self.assertEqual([PF1], hp.held_by('inst-a'))
        hp.release('inst-a')
        self.assertEqual(((PF1,),), hp.fit(requests(pf_request())).devices)

    def test_devices_in_use_at_start_are_not_pooled(self) -> None:
        hp = self._two_pfs(used={PF1: 1})
        self.assertIsNone(hp.pool_of[hp.by_address[PF1]].stamp)
        hp.release('other-instance')
        self.assertEqual(((PF2,),), hp.fit(requests(pf_request())).devices)

    def test_the_last_device_to_join_goes_first(self) -> None:
        hp = host(*sriov((PF1,), vfs=3))
        self.assertEqual(((vf_addr(PF1, 2),),),
                         hp.fit(requests(vf_request())).devices)
        hp.consume(hp.fit(requests(vf_request())), 'inst-a')
        hp.consume(hp.fit(requests(vf_request())), 'inst-b')
        self.assertEqual([vf_addr(PF1, 1)], hp.held_by('inst-b'))
        hp.release('inst-a')
        hp.release('inst-b')
        # VF 1 rejoined its pool last
        self.assertEqual(((vf_addr(PF1, 1),),),
                         hp.fit(requests(vf_request())).devices)

    def test_the_order_survives_the_report(self) -> None:
        hp = self._two_pfs()
        hp.consume(hp.fit(requests(vf_request())), 'inst-a')
        hp.release('inst-a')
        data = hp.report.to_dict()
        self.assertIn('pool_stamp', data['devices'][0])
        again = pools_mod.HostPools.from_report(
            report_mod.HostReport.from_dict(data))
        self.assertEqual(((PF2,),), again.fit(requests(pf_request())).devices)
        self.assertEqual([p.address for p in hp.pools],
                         [p.address for p in again.pools])

    def test_null_tags_and_parent_ifname_split_pools(self) -> None:
        plain = vf(vf_addr(PF1, 0), PF1, group=1)
        null = vf(vf_addr(PF1, 1), PF1, group=2)
        null.null_tags = ('physical_network',)
        named = vf(vf_addr(PF1, 2), PF1, group=3)
        named.parent_ifname = 'eth0'
        hp = host(plain, null, named)
        self.assertEqual(3, len(hp.pools))
        # more pool keys sort later, as nova sorts by key count
        self.assertEqual([vf_addr(PF1, 0)],
                         [hp.devices[i].address for i in hp.pools[0].free])

    def test_a_new_device_in_a_stamped_report_joins_last(self) -> None:
        hp = self._two_pfs()
        hp.consume(hp.fit(requests(pf_request())), 'inst-a')
        hp.release('inst-a')
        data = hp.report.to_dict()
        # a device nova has not pooled yet (no stamps): added after the
        # others, as nova-compute adds a new device
        data['devices'].append(report_mod.Device(
            '0000:83:00.0', fakes.INTEL, fakes.PF_PRODUCT, 'type-PF',
            numa_node=0, iommu_group=300).to_dict())
        again = pools_mod.HostPools.from_report(
            report_mod.HostReport.from_dict(data))
        self.assertEqual(
            ['0000:83:00.0'],
            [again.devices[i].address for i in again.pools[-1].free])

    def test_a_device_taken_as_a_dependant_leaves_its_pool(self) -> None:
        hp = host(*sriov((PF1,), vfs=2))
        hp.consume(hp.fit(requests(pf_request())), 'inst-a')
        vf_pool = hp.pool_of[hp.by_address[vf_addr(PF1, 0)]]
        self.assertIsNone(vf_pool.stamp)
        self.assertEqual([], vf_pool.queue)
        hp.release('inst-a')
        # the VFs come back in address order, in a pool listed anew after
        # the PF's (which a claim of its own device kept listed)
        self.assertEqual([vf_addr(PF1, 0), vf_addr(PF1, 1)],
                         [hp.devices[i].address for i in vf_pool.queue])
        self.assertGreater(vf_pool.stamp or 0,
                           hp.pool_of[hp.by_address[PF1]].stamp or 0)
