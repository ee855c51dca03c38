"""Shared skeletons: hosts of one hardware model share their links and
pool layout, and a host built on a shared skeleton is the host built from
scratch."""

from __future__ import annotations

from typing import Any

import testtools
from hypothesis import given
from hypothesis import strategies as st

from passthrough_plugin import exception
from passthrough_plugin.pci import explain
from passthrough_plugin.pci import pool_layout
from passthrough_plugin.pci import pool_order
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from tests.unit.pci import fakes
from tests.unit.pci import strategies
from tests.unit.pci.fakes import case
from tests.unit.pci.fakes import dev
from tests.unit.pci.fakes import pf
from tests.unit.pci.fakes import vf

PF1 = '0000:81:00.0'
VF1 = '0000:81:02.0'
VF2 = '0000:81:02.1'
GPU = '0000:3b:00.0'


def _devices(**changed: Any) -> list[report_mod.Device]:
    """A PF with two VFs and a GPU; ``changed``: GPU keyword overrides."""
    gpu = dict(group=7, numa=0)
    gpu.update(changed)
    return [pf(PF1, group=1), vf(VF1, PF1, group=2), vf(VF2, PF1, group=3),
            dev(GPU, **gpu)]


def _view(hp: pools_mod.HostPools) -> tuple[Any, ...]:
    """Everything a host's pools answer with, in order."""
    return (list(hp.state), list(hp.join), hp.clock,
            [(p.sig, p.numa_node, p.address, list(p.members), p.free,
              p.stamp, p.queue) for p in hp.pools],
            [hp.pools.index(p) for p in hp.pool_of],
            list(hp.parent), {k: list(v) for k, v in hp.children.items()},
            list(hp.group_of), {k: list(v) for k, v in hp.groups.items()},
            dict(hp.by_address), hp.blocked_groups,
            {k: list(v) for k, v in hp.owners.items()})


def _reference_states(hp: pools_mod.HostPools) -> list[str | None]:
    """Why each device is unassignable, device by device (the rules as
    pools.py states them, without the shared skeleton's shortcuts)."""
    devices = hp.devices

    def busy(i: int) -> bool:
        return devices[i].status in report_mod.IN_USE

    state: list[str | None] = []
    for i, d in enumerate(devices):
        members = hp.groups[hp.group_of[i]]
        if busy(i):
            state.append(explain.IN_USE)
        elif d.status != 'available':
            state.append(explain.UNAVAILABLE)
        elif not hp.iommu_enabled:
            state.append(explain.IOMMU_DISABLED)
        elif hp.parent[i] >= 0 and busy(hp.parent[i]) or any(
                busy(c) for c in hp.children.get(i, ())):
            state.append(explain.PF_VF)
        elif hp.group_of[i] in hp.blocked_groups or len(members) > 1 and any(
                hp.parent[m] >= 0 and hp.group_of[hp.parent[m]]
                == hp.group_of[i] for m in members):
            state.append(explain.IOMMU_GROUP)
        else:
            state.append(None)
    for i in range(len(devices)):
        members = hp.groups[hp.group_of[i]]
        if state[i] is None and any(
                state[m] not in (None, explain.IOMMU_GROUP_MATE)
                for m in members if m != i):
            state[i] = explain.IOMMU_GROUP_MATE
    return state


class SkeletonTest(testtools.TestCase):

    def test_hosts_of_one_model_share_it(self) -> None:
        idle = fakes.host(*_devices(), host='a')
        busy_devices = _devices()
        busy_devices[1].status = 'allocated'
        busy_devices[1].owner = 'i-1'
        busy = fakes.host(*busy_devices, host='b')
        self.assertIs(idle.skeleton, busy.skeleton)
        # ... and only the skeleton: each host's state is its own.
        self.assertEqual([None, None, None, None], idle.state)
        self.assertEqual([explain.PF_VF, explain.IN_USE, None, None],
                         busy.state)
        self.assertIsNot(idle.pools[0], busy.pools[0])

    def test_other_hardware_gets_its_own(self) -> None:
        base = fakes.host(*_devices())
        table = [
            ('another IOMMU group', dict(group=8)),
            ('another NUMA node', dict(numa=1)),
            ('a tag', dict(tags={'physical_network': 'physnet1'})),
            ('another product', dict(product='20b5')),
            ('a trait', dict(traits=('CUSTOM_FAST',))),
            ('another resource class', dict(rc='CUSTOM_GPU')),
        ]
        for name, changed in table:
            with case(name):
                other = fakes.host(*_devices(**changed))
                self.assertIsNot(base.skeleton, other.skeleton)
                gpu = other.pool_of[other.by_address[GPU]]
                self.assertEqual(changed.get('numa', 0), gpu.numa_node)
                self.assertEqual(int(changed.get('product', '1eb8'), 16),
                                 gpu.sig.product_id)

    def test_pools_by_parent_address(self) -> None:
        other_pf = '0000:82:00.0'
        devices = _devices()
        devices[2] = vf(VF2, other_pf, group=3)
        hp = fakes.host(*devices)
        self.assertIsNot(fakes.host(*_devices()).skeleton, hp.skeleton)
        self.assertEqual(-1, hp.parent[2])
        self.assertIsNot(hp.pool_of[1], hp.pool_of[2])

    def test_unhashable_device_fields_build_uncached(self) -> None:
        devices = _devices()
        devices[3].traits = ['CUSTOM_FAST']  # type: ignore[assignment]
        first = fakes.host(*devices)
        second = fakes.host(*devices)
        self.assertIsNot(first.skeleton, second.skeleton)
        self.assertEqual(_view(first), _view(second))
        self.assertEqual(frozenset(['CUSTOM_FAST']),
                         first.pool_of[3].sig.traits)

    def test_bad_vendor_is_refused_every_time(self) -> None:
        devices = _devices()
        devices[3].vendor_id = 'nvidia'
        for _ in range(2):
            error = self.assertRaises(
                exception.InvalidHostReport,
                pools_mod.HostPools.from_report,
                fakes.report(*devices))
            self.assertIn('$.devices[3]', error.message)

    def test_cache_is_bounded(self) -> None:
        self.addCleanup(setattr, pool_layout, 'SKELETON_CACHE_SIZE',
                        pool_layout.SKELETON_CACHE_SIZE)
        pool_layout.SKELETON_CACHE_SIZE = 2
        for group in range(10, 15):
            fakes.host(*_devices(group=group))
            self.assertLessEqual(len(pool_layout._SKELETONS), 2)


class SharedSkeletonPropertyTest(testtools.TestCase):

    @strategies.SETTINGS
    @given(st.data())
    def test_shared_skeleton_is_a_fresh_build(self, data: Any) -> None:
        report = data.draw(strategies.hosts())
        as_dict = report.to_dict()
        cached = pools_mod.HostPools.from_report(report)
        pool_layout._SKELETONS.clear()
        fresh = pools_mod.HostPools.from_report(
            report_mod.HostReport.from_dict(as_dict))
        self.assertEqual(_view(fresh), _view(cached))
        self.assertEqual(_reference_states(cached), cached.state)
        self.assertEqual([pool_order.nova_free(cached, i)
                          for i in range(len(cached.devices))],
                         pool_order._nova_free_all(cached))
        # After a claim, the stamps nova's history left are restored on
        # the shared skeleton as on a fresh one.
        rs = data.draw(strategies.request_sets())
        fit = cached.fit(rs)
        if fit.ok:
            cached.consume(fit, 'new')
            stamped = report.to_dict()
            again = pools_mod.HostPools.from_report(
                report_mod.HostReport.from_dict(stamped))
            # (the cache now holds the fresh build's skeleton)
            self.assertIs(fresh.skeleton, again.skeleton)
            pool_layout._SKELETONS.clear()
            fresh = pools_mod.HostPools.from_report(
                report_mod.HostReport.from_dict(stamped))
            self.assertEqual(_view(fresh), _view(again))
            self.assertEqual(_reference_states(again), again.state)
