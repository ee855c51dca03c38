"""Hypothesis strategies: random hosts, requests and JSON-ish garbage."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from tests.unit.pci import fakes

# Randomness, seed and example database come from the profile loaded in
# tests/__init__.py (``ci``: new examples each run; ``dev``: the same).
# PCI_HYPOTHESIS_EXAMPLES=5000 explores deeper.
_EXAMPLES = int(os.environ.get('PCI_HYPOTHESIS_EXAMPLES', '200'))
SETTINGS = settings(deadline=None, max_examples=_EXAMPLES)
FEW = settings(SETTINGS, max_examples=max(1, _EXAMPLES * 3 // 10))

POLICIES = ('required', 'legacy', 'preferred', 'socket')
GPU_PRODUCTS = ('1eb8', '1eb9')
PHYSNETS = ({}, {'physical_network': 'physnet0'},
            {'physical_network': 'physnet1'})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
jsonish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=12)


# Regular expressions built from pieces, including huge repetition counts
# and deep nesting, which re.compile rejects with other errors than re.error.
regex_like = st.recursive(
    st.one_of(st.sampled_from(['0', 'a', '.', '.*', '[0-7]', '\\', '(',
                               ')', '[', '*', '?', '|', '^', '$', '']),
              st.text(alphabet='0123456789abf.*+?()[]{}|^$\\-,:',
                      max_size=6)),
    lambda inner: st.one_of(
        st.builds(lambda a, n: '%s{%d}' % (a, n), inner,
                  st.integers(0, 2**64)),
        st.builds(lambda a, n: '(' * n + a + ')' * n, inner,
                  st.integers(0, 2000)),
        st.builds(lambda a, b: a + '|' + b, inner, inner),
        st.builds(lambda a: '(' + a + ')', inner)),
    max_leaves=4)

# JSON texts nested deeper than the decoder's recursion limit, and not.
nested_json = st.builds(
    lambda n, closed, inner: '[' * n + inner + (']' * n if closed else ''),
    st.integers(0, 100000), st.booleans(), st.sampled_from(['', '1', '{}']))

# Counts for name:count lists: numbers, signs, unicode digits, words.
digit_like = st.one_of(
    # superscripts, subscripts and circled numbers: isdigit() but not int()
    st.sampled_from('\u00b2\u00b3\u00b9\u2070\u2074\u2081\u2460\u2468'),
    st.characters(min_codepoint=0x2070, max_codepoint=0x2089),
    st.characters(min_codepoint=0x2460, max_codepoint=0x2473),
    # other scripts' decimal digits: int() reads them
    st.characters(categories=('Nd',)))
counts = st.one_of(
    st.integers(-2, 20).map(str),
    # around the number of digits int() converts by default (4300)
    st.sampled_from((7, 4300, 4301, 6000)).map(lambda n: '1' * n),
    st.lists(digit_like, min_size=1, max_size=2).map(''.join),
    st.text(max_size=3))


def keyed(keys: tuple[str, ...], values: Any = jsonish) -> Any:
    """Dicts mostly using ``keys`` with arbitrary values."""
    return st.dictionaries(
        st.one_of(st.sampled_from(keys), st.text(max_size=8)), values,
        max_size=len(keys) + 1)


@st.composite
def hosts(draw: Any, max_pfs: int = 3, max_vfs: int = 4,
          max_gpus: int = 3, shared_groups: bool = True
          ) -> report_mod.HostReport:
    """A consistent report: PFs with VFs, GPUs, NUMA cells, IOMMU groups.

    With ``shared_groups`` devices sometimes share an IOMMU group (drawn
    from a small range of group numbers) or have a foreign member.
    """
    n_cells = draw(st.integers(1, 3))
    socket_known = draw(st.booleans())
    cells = tuple(
        (c, (c * 2 // n_cells if socket_known or draw(st.booleans())
             else None)) for c in range(n_cells))
    node = st.one_of(st.none(), st.integers(0, n_cells - 1))

    groups_pool = st.integers(0, 5) if shared_groups else st.nothing()
    next_group = [100]

    def group() -> int | None:
        if shared_groups and draw(st.integers(0, 3)) == 0:
            return draw(groups_pool)
        if draw(st.integers(0, 9)) == 0:
            return None
        next_group[0] += 1
        return next_group[0]

    # One host in three starts idle; the others have some devices busy.
    status = st.just('available') if draw(st.integers(0, 2)) == 0 else \
        st.sampled_from(['available'] * 6 + ['allocated', 'claimed',
                                             'unavailable', 'unclaimable'])
    devices: list[report_mod.Device] = []
    for p in range(draw(st.integers(0, max_pfs))):
        address = '0000:%02x:00.0' % (0x81 + p)
        numa = draw(node)
        tags = draw(st.sampled_from(PHYSNETS))
        pf_status = draw(status)
        in_report = draw(st.integers(0, 4)) > 0
        pf_group = group()
        # Without ACS below the PF its VFs share the PF's IOMMU group.
        no_acs = shared_groups and draw(st.integers(0, 4)) == 0
        if in_report:
            devices.append(fakes.pf(address, numa=numa, group=pf_group,
                                    status=pf_status, tags=tags))
        # The initial state is legal: a PF in use has no VF in use.
        pf_busy = in_report and pf_status in report_mod.IN_USE
        for v in range(draw(st.integers(0, max_vfs))):
            vf_status = draw(status)
            if pf_busy and vf_status in report_mod.IN_USE:
                vf_status = 'available'
            devices.append(fakes.vf(
                '0000:%02x:%02x.%x' % (0x81 + p, 2 + v // 8, v % 8),
                address, numa=numa,
                group=pf_group if no_acs else group(), status=vf_status,
                tags=tags))
    for g in range(draw(st.integers(0, max_gpus))):
        devices.append(fakes.dev(
            '0000:%02x:00.0' % (0x3b + g),
            product=draw(st.sampled_from(GPU_PRODUCTS)), numa=draw(node),
            group=group(), status=draw(status)))
    foreign: dict[int, tuple[str, ...]] = {}
    if shared_groups and draw(st.integers(0, 4)) == 0:
        foreign[draw(groups_pool)] = ('0000:00:1f.3',)
    rep = fakes.report(*devices, cells=cells,
                       iommu=draw(st.integers(0, 19)) > 0, foreign=foreign)
    return rep


@st.composite
def device_requests(draw: Any) -> request_mod.DeviceRequest:
    kind = draw(st.sampled_from(('vf', 'vf', 'pf', 'gpu', 'gpu-any')))
    policy = draw(st.sampled_from(POLICIES))
    count = draw(st.integers(1, 3))
    if kind == 'vf':
        return fakes.vf_request(count, policy=policy,
                                anti=draw(st.booleans()))
    if kind == 'pf':
        return fakes.pf_request(draw(st.integers(1, 2)), policy=policy)
    if kind == 'gpu':
        return fakes.gpu_request(
            count, policy=policy,
            product=draw(st.sampled_from(GPU_PRODUCTS)))
    # both GPU products as alternatives, as aliases sharing a name give
    first = fakes.gpu_request(count, product=GPU_PRODUCTS[0], policy=policy)
    second = fakes.gpu_request(count, product=GPU_PRODUCTS[1])
    return request_mod.DeviceRequest('gpu-any', count,
                                     first.specs + second.specs, policy)


@st.composite
def request_sets(draw: Any) -> request_mod.RequestSet:
    reqs = draw(st.lists(device_requests(), min_size=0, max_size=3))
    headroom = draw(st.lists(device_requests(), max_size=1))
    # headroom never carries anti-affinity (as from_extra_specs builds it)
    return request_mod.RequestSet(
        tuple(reqs),
        tuple(dataclasses.replace(h, anti_affinity=False) for h in headroom))


def numa_cells(report: report_mod.HostReport) -> Any:
    ids = [c.id for c in report.numa_cells]
    return st.one_of(st.none(), st.lists(st.sampled_from(ids), min_size=1,
                                         max_size=len(ids), unique=True))
