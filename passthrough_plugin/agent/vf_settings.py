"""``[sriov] vf_settings``: per-VF MAC, VLAN, trust, spoofchk, link, rates."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import netaddr
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import netadmin
from passthrough_plugin.agent import netlink
from passthrough_plugin.agent import sriov
from passthrough_plugin.agent import sysfs as sysfs_mod

LOG = logging.getLogger(__name__)
OPTION = 'vf_settings'
# The operator's keys; vlan+qos and the two rates are one netlink field
# each, applied and read back as pairs.
BOOL_KEYS = ('trust', 'spoofchk')
INT_KEYS = {'vlan': 4094, 'qos': 7, 'min_tx_rate': 2 ** 32 - 1,
            'max_tx_rate': 2 ** 32 - 1}
VF_KEYS = ('mac', 'link_state') + BOOL_KEYS + tuple(INT_KEYS)
# Netlink fields in the order they are applied (a VLAN before trust, as
# ip-link does).
FIELDS = ('mac', 'vlan', 'spoofchk', 'trust', 'link_state', 'rate')
EXAMPLE = ('{"pf": "enp59s0f0", "all": {"spoofchk": true}, "vfs": {"0": '
           '{"mac": "52:54:00:12:34:56", "vlan": 100}}}')
# What sets one field: (PF interface, VF, field, value); the privileged
# daemon on a host, netlink in a test's own namespace.
Setter = Callable[[str, int, str, Any], None]


def _bad(value: Any, where: str, valid: str) -> exception.InvalidConfig:
    shown = value if isinstance(value, str) else json.dumps(value)
    return exception.InvalidConfig(
        group='sriov', option=OPTION, value=shown,
        reason='%s: %s' % (where, valid))


@dataclasses.dataclass(slots=True)
class PfSettings:
    """One PF's settings: ``pf`` as configured, netlink fields per VF
    (``vfs``) and for every VF (``all``)."""

    pf: str
    all: dict[str, Any]
    vfs: dict[int, dict[str, Any]]

    def for_vf(self, vf: int) -> dict[str, Any]:
        merged = dict(self.all)
        merged.update(self.vfs.get(vf, {}))
        return merged


def _fields(pf: str, where: str, data: Any,
            allow_mac: bool) -> dict[str, Any]:
    """An operator's ``{"vlan": 100, ...}`` as netlink fields.

    :raises: InvalidConfig naming the field, the value and what is valid.
    """
    if not isinstance(data, dict):
        raise _bad(data, '%s of PF %s' % (where, pf),
                   'expected an object such as {"vlan": 100}')
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = '%s.%s of PF %s' % (where, key, pf)
        if key not in VF_KEYS:
            raise _bad(value, field, 'unknown key; valid keys: %s' %
                       ', '.join(VF_KEYS))
        if key == 'mac':
            if not allow_mac:
                raise _bad(value, field, 'a MAC address is per VF: give it '
                           'under "vfs", not "all"')
            out['mac'] = _mac(value, field)
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise _bad(value, field, 'expected true or false')
            out[key] = value
        elif key == 'link_state':
            if value not in netlink.LINK_STATES:
                raise _bad(value, field, 'expected one of %s' % ', '.join(
                    netlink.LINK_STATES))
            out[key] = value
        else:
            high = INT_KEYS[key]
            if not isinstance(value, int) or isinstance(value, bool) or \
                    not 0 <= value <= high:
                raise _bad(value, field, {
                    'vlan': 'a VLAN id is 0 (no VLAN) to 4094',
                    'qos': 'a VLAN priority (802.1p) is 0 to 7',
                }.get(key, 'a rate in Mbit/s, 0 (no limit) to %d' % high))
    if 'vlan' in data or 'qos' in data:
        if 'vlan' not in data:
            raise _bad(data['qos'], '%s.qos of PF %s' % (where, pf),
                       'a priority needs a "vlan" beside it')
        out['vlan'] = (data['vlan'], data.get('qos', 0))
    if 'min_tx_rate' in data or 'max_tx_rate' in data:
        low, high = data.get('min_tx_rate', 0), data.get('max_tx_rate', 0)
        if high and low > high:
            raise _bad(low, '%s.min_tx_rate of PF %s' % (where, pf),
                       'must not exceed max_tx_rate %d' % high)
        out['rate'] = (low, high)
    return out


def _mac(value: Any, field: str) -> str:
    """A unicast, non-zero MAC as the kernel prints it.

    :raises: InvalidConfig
    """
    try:
        mac = netaddr.EUI(value, version=48,
                          dialect=netaddr.mac_unix_expanded)
    except (netaddr.AddrFormatError, TypeError, ValueError):
        raise _bad(value, field, 'not a MAC address; expected six hex '
                   'octets such as 52:54:00:12:34:56') from None
    if mac.words[0] & 1 or int(mac) == 0:
        raise _bad(value, field, 'a VF needs a unicast, non-zero MAC (the '
                   'low bit of the first octet clear)')
    return str(mac).lower()


def parse(values: Sequence[str]) -> list[PfSettings]:
    """Every ``[sriov] vf_settings`` value (one JSON object per PF).

    :raises: InvalidConfig naming the field, the value and what is valid.
    """
    out: list[PfSettings] = []
    seen: set[str] = set()
    for text in values:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _bad(text, 'not JSON (%s)' % exc.msg,
                       'expected one object per PF, e.g. %s' %
                       EXAMPLE) from None
        if not isinstance(data, dict) or not isinstance(data.get('pf'),
                                                        str):
            raise _bad(text, '"pf"', 'every value needs "pf": the PF\'s '
                       'PCI address or interface name, e.g. %s' % EXAMPLE)
        pf = data['pf']
        unknown = sorted(set(data) - {'pf', 'all', 'vfs'})
        if unknown:
            raise _bad(data[unknown[0]], '%s of PF %s' % (unknown[0], pf),
                       'unknown key; valid keys: pf, all, vfs')
        if pf in seen:
            raise _bad(pf, '"pf"', 'PF given twice; one value per PF')
        seen.add(pf)
        vfs_data = data.get('vfs', {})
        if not isinstance(vfs_data, dict):
            raise _bad(vfs_data, 'vfs of PF %s' % pf, 'expected an object '
                       'keyed by VF index, e.g. {"0": {"vlan": 100}}')
        vfs: dict[int, dict[str, Any]] = {}
        for key, fields in vfs_data.items():
            if not key.isdigit() or int(key) >= netadmin.MAX_VF:
                raise _bad(key, 'vfs of PF %s' % pf, 'a VF index is 0 to '
                           '%d' % (netadmin.MAX_VF - 1))
            vfs[int(key)] = _fields(pf, 'vfs.%s' % key, fields, True)
        macs = [f['mac'] for f in vfs.values() if 'mac' in f]
        for mac in macs:
            if macs.count(mac) > 1:
                raise _bad(mac, 'vfs.*.mac of PF %s' % pf, 'each VF needs '
                           'its own MAC')
        out.append(PfSettings(pf, _fields(pf, 'all', data.get('all', {}),
                                          False), vfs))
    return out


def privileged_setter(ifname: str, vf: int, field: str, value: Any) -> None:
    """:raises: AgentError"""
    netadmin.ensure_started()
    netadmin.set_vf(ifname, vf, field, value)


def direct_setter(netns: str | None = None) -> Setter:
    """Set from this process (it needs CAP_NET_ADMIN), in ``netns``: for
    tests in a namespace of their own."""

    def setter(ifname: str, vf: int, field: str, value: Any) -> None:
        with netlink.session(netns) as ipr:
            netlink.set_vf(ipr, ifname, netlink.link_index(ipr, ifname), vf,
                           field, value)

    return setter


def pf_interface(fs: sysfs_mod.Sysfs, pf: str) -> str:
    """The PF's network interface (its driver's netdev).

    :raises: AgentError when it has none.
    """
    names = sorted(fs.listdir(fs.dev_rel(pf, 'net')))
    if not names:
        raise exception.AgentError(
            reason='[sriov] vf_settings: PF %s has no network interface '
            '(driver %s); VF settings go through the PF\'s netdev, so bind '
            'it to its network driver' % (pf, fs.driver(pf) or 'none'))
    return names[0]


def apply(fs: sysfs_mod.Sysfs, settings: Sequence[PfSettings],
          setter: Setter = privileged_setter, netns: str | None = None,
          only: str | None = None) -> dict[str, dict[int, dict[str, Any]]]:
    """Set what differs from the kernel's view, then read every VF back.

    ``only``: the PF address to apply (configure-vfs PF COUNT).
    :returns: ``{pf address: {vf: fields as the kernel reports them}}``.
    :raises: DeviceNotFound (unknown PF), InvalidPciAddress, AgentError
        naming the PF, the VF, the field and the kernel's answer.
    """
    result: dict[str, dict[int, dict[str, Any]]] = {}
    for item in settings:
        try:
            pf = sriov.resolve_pf(fs, item.pf, field='[sriov] vf_settings')
        except exception.DeviceNotFound as exc:
            raise _bad(item.pf, '"pf"', 'no such PF on this host (%s); '
                       'give a PF\'s PCI address or network interface '
                       'name' % exc.message) from None
        if only is not None and pf != only:
            continue
        ifname = pf_interface(fs, pf)
        count = len(sriov.vf_addresses(fs, pf))
        missing = sorted(vf for vf in item.vfs if vf >= count)
        if missing:
            raise exception.AgentError(
                reason='[sriov] vf_settings for PF %s (%s) names VF %d, but '
                'it has %d VFs (0 to %d); set [sriov] vf_count first' % (
                    item.pf, pf, missing[0], count, count - 1))
        with netlink.session(netns) as ipr:
            index = netlink.link_index(ipr, ifname)
            now = netlink.read_vfs(ipr, index)
        for vf in range(count):
            for field, value in sorted(item.for_vf(vf).items(),
                                       key=lambda kv: FIELDS.index(kv[0])):
                if now.get(vf, {}).get(field) == value:
                    continue
                LOG.info('%s VF %d: %s -> %s', ifname, vf, field, value)
                setter(ifname, vf, field, value)
        with netlink.session(netns) as ipr:
            after = netlink.read_vfs(ipr, netlink.link_index(ipr, ifname))
        for vf in range(count):
            for field, value in item.for_vf(vf).items():
                got = after.get(vf, {}).get(field)
                if got is not None and got != value:
                    raise exception.AgentError(
                        reason='%s VF %d: %s reads back as %s, not %s' % (
                            ifname, vf, field, got, value))
        result[pf] = {vf: after.get(vf, {}) for vf in range(count)}
    return result


def describe(fields: dict[str, Any]) -> str:
    """``mac=52:54:00:12:34:56 vlan=100/0 spoofchk=true ...``"""
    return ' '.join('%s=%s' % (k, netlink.show(fields[k]))
                    for k in FIELDS if k in fields) or '-'
