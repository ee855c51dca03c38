"""The host's network through rtnetlink (pyroute2): links, uses, VFs."""

from __future__ import annotations

import dataclasses
import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from oslo_log import log as logging

from passthrough_plugin import exception

LOG = logging.getLogger(__name__)
# Kinds whose IFLA_LINK names the device they are stacked on (a veth's
# IFLA_LINK names its peer, which is not stacked on it).
STACKED_KINDS = frozenset(('vlan', 'macvlan', 'macvtap', 'ipvlan', 'ipvtap'))
# Routing tables that say nothing about an interface being used: the local
# table (one entry per address of the host, reported as addresses).
_LOCAL_TABLE = 255
# VF link states as IFLA_VF_LINK_STATE carries them.
LINK_STATES = {'auto': 0, 'enable': 1, 'disable': 2}
LINK_STATE_NAMES = {v: k for k, v in LINK_STATES.items()}
# RTEXT_FILTER_VF: ask the kernel for IFLA_VFINFO_LIST in a link dump.
_EXT_VF = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    kind: str | None
    master: int | None
    lower: int | None


@dataclasses.dataclass(slots=True)
class NetState:
    """Links and what uses each (routes, global addresses), by name."""

    links: dict[str, Link]
    uses: dict[str, list[str]]

    def uppers(self, name: str) -> list[str]:
        """Interfaces stacked on ``name``: its master and its VLANs,
        macvlans and ipvlans."""
        link = self.links.get(name)
        if link is None:
            return []
        by_index = {lk.index: lk.name for lk in self.links.values()}
        found = {by_index[link.master]} if link.master in by_index else set()
        found.update(lk.name for lk in self.links.values()
                     if lk.lower == link.index and lk.kind in STACKED_KINDS)
        return sorted(found)


def _pyroute2() -> Any:
    # Imported on use: the scheduler side and pure tests never load it.
    import pyroute2  # type: ignore[import-untyped]

    return pyroute2


@contextmanager
def session(netns: str | None = None) -> Iterator[Any]:
    """An ``IPRoute`` in the agent's network namespace (or ``netns``).

    :raises: AgentError when netlink cannot be opened.
    """
    try:
        ipr = (_pyroute2().IPRoute() if netns is None
               else _pyroute2().IPRoute(netns=netns))
    except OSError as exc:
        raise exception.AgentError(
            reason='cannot open rtnetlink%s: %s' % (
                '' if netns is None else ' in netns %s' % netns,
                exc.strerror or exc)) from None
    try:
        yield ipr
    finally:
        ipr.close()


def _describe_route(msg: Any) -> str:
    dst = msg.get_attr('RTA_DST')
    if msg['dst_len'] == 0 or dst is None:
        return 'default route' + ('' if msg['family'] == socket.AF_INET
                                  else ' (IPv6)')
    return '%s/%d route' % (dst, msg['dst_len'])


def _ignored_route(msg: Any) -> bool:
    if msg['table'] == _LOCAL_TABLE or msg.get_attr(
            'RTA_TABLE') == _LOCAL_TABLE:
        return True
    dst = str(msg.get_attr('RTA_DST') or '')
    # IPv6 link-local and multicast: every up interface has them.
    return msg['family'] == socket.AF_INET6 and dst.startswith(('fe80',
                                                                'ff'))


def read_state(netns: str | None = None) -> NetState:
    """Every link and its uses, from one netlink session.

    :raises: AgentError
    """
    links: dict[str, Link] = {}
    uses: dict[str, list[str]] = {}
    with session(netns) as ipr:
        names = {}
        for msg in ipr.get_links():
            info = msg.get_attr('IFLA_LINKINFO')
            name = msg.get_attr('IFLA_IFNAME')
            names[msg['index']] = name
            links[name] = Link(
                msg['index'], name,
                info.get_attr('IFLA_INFO_KIND') if info else None,
                msg.get_attr('IFLA_MASTER'),
                # IFLA_LINK of a device whose lower is in another netns
                # is an index there, not here.
                None if msg.get_attr('IFLA_LINK_NETNSID') is not None
                else msg.get_attr('IFLA_LINK'))

        def add(index: int, use: str) -> None:
            name = names.get(index)
            if name is None:
                return
            found = uses.setdefault(name, [])
            if use not in found:
                found.append(use)

        for msg in ipr.get_routes(family=socket.AF_UNSPEC):
            if msg['family'] not in (socket.AF_INET, socket.AF_INET6) or \
                    _ignored_route(msg):
                continue
            oif = msg.get_attr('RTA_OIF')
            if oif is not None:
                add(oif, _describe_route(msg))
            for hop in msg.get_attr('RTA_MULTIPATH') or ():
                add(hop['oif'], _describe_route(msg))
        for msg in ipr.get_addr():
            # RT_SCOPE_UNIVERSE (0): a global address; link and host
            # scope (fe80::, 127.0.0.1) alone are harmless.
            if msg['scope'] == 0:
                add(msg['index'], 'address %s/%d' % (
                    msg.get_attr('IFA_ADDRESS'), msg['prefixlen']))
    return NetState(links, uses)


# -- VF settings --------------------------------------------------------------
def vf_message(vf: int, field: str, value: Any) -> dict[str, Any]:
    """pyroute2's ``vf`` argument setting one field of one VF.

    :raises: ValueError for a field nothing here knows (a programming
        error: vf_settings validates the operator's fields first).
    """
    if field == 'mac':
        return {'vf': vf, 'mac': str(value)}
    if field == 'vlan':
        vlan, qos = value
        return {'vf': vf, 'vlan': {'vlan': vlan, 'qos': qos}}
    if field in ('trust', 'spoofchk'):
        return {'vf': vf, field: 1 if value else 0}
    if field == 'link_state':
        return {'vf': vf, 'link_state': LINK_STATES[value]}
    if field == 'rate':
        low, high = value
        return {'vf': vf, 'rate': {'min_tx_rate': low, 'max_tx_rate': high}}
    raise ValueError('unknown VF field %r' % field)


def link_index(ipr: Any, ifname: str) -> int:
    """:raises: AgentError naming the interface."""
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise exception.AgentError(
            reason='network interface %s not found' % ifname)
    return int(found[0])


def set_vf(ipr: Any, ifname: str, index: int, vf: int, field: str,
           value: Any) -> None:
    """One field of one VF through RTM_SETLINK.

    :raises: AgentError naming the PF, VF, field, value and the kernel's
        error (EOPNOTSUPP: the PF driver lacks that setting).
    """
    try:
        ipr.link('set', index=index, vf=vf_message(vf, field, value))
    except _pyroute2().NetlinkError as exc:
        code = abs(int(exc.code))
        why = ('the PF driver does not offer this setting'
               if code == errno.EOPNOTSUPP else
               errno.errorcode.get(code, 'E%d' % code))
        raise exception.AgentError(
            reason='%s VF %d: setting %s=%s failed (%s: %s)' % (
                ifname, vf, field, show(value), why,
                getattr(exc, 'args', ('',))[-1])) from None


def show(value: Any) -> str:
    """A field value as the messages print it: 100/0, true, auto."""
    if isinstance(value, tuple):
        return '/'.join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def read_vfs(ipr: Any, index: int) -> dict[int, dict[str, Any]]:
    """What the kernel says each VF of a PF is set to (vfs missing from
    the driver's answer are absent)."""
    out: dict[int, dict[str, Any]] = {}
    for msg in ipr.get_links(index, ext_mask=_EXT_VF):
        for info in _vfinfos(msg):
            out.update(_vf_fields(info))
    return out


def _vfinfos(msg: Any) -> list[Any]:
    vflist = msg.get_attr('IFLA_VFINFO_LIST')
    return list(vflist.get_attrs('IFLA_VF_INFO')) if vflist else []


def _vf_fields(info: Any) -> dict[int, dict[str, Any]]:
    mac = info.get_attr('IFLA_VF_MAC')
    if mac is None:
        return {}
    vf = int(mac['vf'])
    fields: dict[str, Any] = {'mac': mac['mac']}
    vlan = info.get_attr('IFLA_VF_VLAN')
    if vlan is not None:
        fields['vlan'] = (vlan['vlan'], vlan['qos'])
    for name in ('spoofchk', 'trust'):
        attr = info.get_attr('IFLA_VF_%s' % name.upper())
        # The kernel sends -1 (0xffffffff) for "not reported".
        if attr is not None and attr[name] in (0, 1):
            fields[name] = bool(attr[name])
    state = info.get_attr('IFLA_VF_LINK_STATE')
    if state is not None:
        fields['link_state'] = LINK_STATE_NAMES.get(state['link_state'],
                                                    state['link_state'])
    rate = info.get_attr('IFLA_VF_RATE')
    if rate is not None:
        fields['rate'] = (rate['min_tx_rate'], rate['max_tx_rate'])
    return {vf: fields}
