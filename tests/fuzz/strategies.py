"""Hypothesis strategies for hostile and careless input of every kind."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from passthrough_plugin.pci import device_spec
from tests.unit.pci import strategies as pci_st

# Text as operators and peers type it: control characters, newlines,
# other scripts, very long runs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['', ' ', '\n', 'evil\n', 'ГПУ', '!!!', '-', '*',
                     '\x00', 'a\x1b[31m', '../../etc/passwd', '${x}',
                     '%s%s%(x)s', 'x' * 256, 'x' * 10000]),
    st.sampled_from([255, 256, 4097, 65537, 300000]).map(
        lambda n: 'a' * n))
huge_numbers = st.one_of(
    st.integers(-2 ** 70, 2 ** 70),
    st.sampled_from([2 ** 63, -2 ** 63 - 1, 10 ** 4000, 4096, -1]),
    st.integers(4290, 5010).map(lambda n: 10 ** n),
    st.floats(allow_nan=True, allow_infinity=True))
jsonish = st.recursive(
    pci_st.scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=6)
values = st.one_of(jsonish, nasty_text, huge_numbers)


def _dump(value: Any) -> str:
    try:
        return json.dumps(value)
    except ValueError:  # an int beyond str()'s digit limit
        return '{"vendor_id": 1%s}' % ('0' * 5000)


def option_values(keys: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """Values of a multi-valued JSON option ([pci] device_spec/alias)."""
    entry = pci_st.keyed(keys, st.one_of(values, pci_st.regex_like))
    one = st.one_of(
        entry.map(_dump),
        st.lists(entry, max_size=3).map(_dump),
        nasty_text,
        pci_st.nested_json,
        st.sampled_from([255, 256, 65520, 200000]).map(
            lambda n: '{"vendor_id": "%s"}' % ('a' * n)))
    return st.lists(one, min_size=1, max_size=3)


SPEC_KEYS = ('vendor_id', 'product_id', 'address', 'devname',
             'physical_network', 'trusted', 'remote_managed',
             'resource_class', 'traits', 'managed', 'live_migratable',
             'one_time_use') + device_spec.BOOL_TAGS
ALIAS_KEYS = ('name', 'capability_type', 'product_id', 'vendor_id',
              'device_type', 'numa_policy', 'resource_class', 'traits',
              'live_migratable')
device_specs = option_values(SPEC_KEYS)
aliases = option_values(ALIAS_KEYS)

EXTRA_KEYS = ('pci_passthrough:alias', 'pci_passthrough:alais',
              'pci_passthrough:', 'passthrough:vf_anti_affinity',
              'passthrough:hotplug_headroom', 'passthrough:x',
              'hw:pci_numa_affinity_policy', 'hw:cpu_policy')
count_lists = st.lists(
    st.tuples(st.sampled_from(['vf', 'gpu', 'pf', 'nvme', '', ' vf']),
              pci_st.counts),
    min_size=1, max_size=4).map(lambda pairs: ','.join(
        '%s:%s' % pair for pair in pairs))
extra_specs = st.dictionaries(
    st.one_of(st.sampled_from(EXTRA_KEYS), nasty_text),
    st.one_of(count_lists, nasty_text, values,
              st.sampled_from(['true', 'false', 'required', 'socket'])),
    max_size=5)

# Domain XML: libvirt's shape with hostile parts.
_ADDRESS = ("<address type='pci' domain='%s' bus='%s' slot='%s' "
            "function='%s'/>")
_hexish = st.one_of(st.sampled_from(['0x0000', '0x3b', '0x02', '0x7', '0',
                                     '0x1f', '0x100', '-1', '', 'zz']),
                    st.text(max_size=6).map(
                        lambda t: t.replace("'", '').replace('<', '')))


@st.composite
def domain_xml(draw: Any) -> str | bytes:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return draw(st.text(max_size=200))
    if kind == 2:
        # Entities, DTDs, external references: refused, never expanded.
        return draw(st.sampled_from([
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><domain>&b;</domain>',
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
            '"file:///etc/passwd">]><domain>&x;</domain>',
            '<!DOCTYPE domain SYSTEM "http://127.0.0.1:9/x.dtd"><domain/>',
            '<domain xmlns:xi="http://www.w3.org/2001/XInclude">'
            '<xi:include href="/etc/passwd"/></domain>']))
    if kind == 3:
        size = draw(st.sampled_from([4 * 1024 * 1024 - 20,
                                     4 * 1024 * 1024 + 1, 10 ** 6]))
        return b'<domain><name>' + b'a' * size + b'</name></domain>'
    hostdevs = draw(st.lists(st.tuples(*[_hexish] * 8), max_size=4))
    parts = ['<domain type="kvm"><name>%s</name><uuid>%s</uuid><devices>' % (
        draw(nasty_text).replace('<', '').replace('&', '')[:50],
        draw(st.uuids()))]
    for dev in hostdevs:
        parts.append("<hostdev mode='subsystem' type='pci'><source>%s"
                     "</source>%s</hostdev>" % (_ADDRESS % dev[:4],
                                                _ADDRESS % dev[4:]))
    parts.append('</devices></domain>')
    text = ''.join(parts)
    if kind == 4:
        return text.encode('latin-1', errors='replace')
    if kind == 5:
        cut = draw(st.integers(0, len(text)))
        return text[:cut]
    return text
