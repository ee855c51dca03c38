"""The agent's second privileged context: VF settings, CAP_NET_ADMIN only."""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

from passthrough_plugin.agent import netlink

with warnings.catch_warnings():
    # oslo.privsep imports eventlet, which warns on import.
    warnings.simplefilter('ignore')
    from oslo_privsep import capabilities as caps
    from oslo_privsep import priv_context

# RTM_SETLINK with IFLA_VFINFO_LIST needs CAP_NET_ADMIN and nothing else;
# the sysfs writer (privsep.sysfs_admin) keeps none, so the two stay apart
# as os-vif keeps its own.
net_admin = priv_context.PrivContext(
    'passthrough_plugin',
    cfg_section='passthrough_agent_net_admin',
    pypath=__name__ + '.net_admin',
    capabilities=[caps.CAP_NET_ADMIN],
)
MAC = re.compile(r'^([0-9a-f]{2}:){5}[0-9a-f]{2}$')
IFNAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,14}$')
MAX_VF = 4096


def check(ifname: Any, vf: Any, field: Any, value: Any) -> Any:
    """The privileged side trusts nothing: each argument by type and
    range; returns ``value`` as netlink.vf_message takes it.

    :raises: PermissionError naming what was refused.
    """
    if not isinstance(ifname, str) or not IFNAME.match(ifname):
        raise PermissionError('refusing VF settings: interface name %r' %
                              (str(ifname)[:40],))
    if not isinstance(vf, int) or isinstance(vf, bool) or \
            not 0 <= vf < MAX_VF:
        raise PermissionError('refusing VF settings: VF index %r' % (vf,))
    pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 32
        for v in value)
    if field == 'mac':
        ok = isinstance(value, str) and bool(MAC.match(value))
    elif field == 'vlan':
        ok = pair and value[0] <= 4094 and value[1] <= 7
    elif field in ('trust', 'spoofchk'):
        ok = isinstance(value, bool)
    elif field == 'link_state':
        ok = isinstance(value, str) and value in netlink.LINK_STATES
    else:
        ok = field == 'rate' and pair
    if not ok:
        raise PermissionError('refusing VF settings: %s=%r' % (
            str(field)[:20], str(value)[:40]))
    return tuple(value) if field in ('vlan', 'rate') else value


@net_admin.entrypoint
def set_vf(ifname: str, vf: int, field: str, value: Any) -> None:
    """Set one field of one VF of the PF interface ``ifname``.

    :raises: PermissionError for arguments off the allow-list; AgentError
        with the kernel's answer.
    """
    value = check(ifname, vf, field, value)
    with netlink.session() as ipr:
        netlink.set_vf(ipr, ifname, netlink.link_index(ipr, ifname), vf,
                       field, value)


def ensure_started() -> None:
    """Fork the daemon as root; otherwise oslo.privsep starts it on the
    first call through ``[passthrough_agent_net_admin] helper_command``."""
    if (net_admin.client_mode and net_admin.channel is None
            and os.geteuid() == 0):
        net_admin.start(priv_context.Method.FORK)
