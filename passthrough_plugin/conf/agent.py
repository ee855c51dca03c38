"""[agent] and [sriov]: the host agent's options."""

from __future__ import annotations

import socket
import warnings

from oslo_config import cfg

from passthrough_plugin.conf import groups

with warnings.catch_warnings():
    # oslo.privsep imports eventlet, which warns on import.
    warnings.simplefilter('ignore')
    from oslo_privsep import priv_context

agent_group = cfg.OptGroup(
    'agent',
    title='passthrough-agent',
    help='The compute host agent: discovery, binding and reporting.')

agent_opts = [
    cfg.StrOpt(
        'host',
        default=socket.gethostname(),
        sample_default='<hostname>',
        help="""
The name this host reports under; it must match the compute node name the
scheduler sees (nova's ``[DEFAULT] host``).
"""),
    cfg.StrOpt(
        'binder',
        default='vfio-pci',
        help="""
How devices are given to guests: a binder's entry-point name in the
``passthrough_plugin.binders`` namespace.

* ``vfio-pci``: VFIO (the seed notes' section 2); binds one device with
  ``driver_override``.
* ``pci-stub``: legacy KVM device assignment (deprecated); its ``new_id``
  also claims every unbound device with the same vendor and product ids.

Related options:

* ``[agent] bind_devices``
"""),
    cfg.ListOpt(
        'bind_devices',
        default=[],
        help="""
PCI addresses (``0000:3b:10.0``) the agent binds to ``[agent] binder`` at
start and keeps bound; each takes its whole IOMMU group, so every other
member must be whitelisted by ``[pci] device_spec`` or listed here too.
Example: ``bind_devices = 0000:3b:10.0,0000:3b:10.1``

Related options:

* ``[agent] binder``, ``[pci] device_spec``
"""),
    cfg.IntOpt(
        'scan_interval',
        default=60,
        min=1,
        help="""
Seconds between two sysfs scans in ``passthrough-agent run``; a changed
report (a hot-added or removed device, a driver change) is published at
the next scan.
"""),
    cfg.StrOpt(
        'sysfs_root',
        default='/sys',
        help="""
Where sysfs is mounted. Only tests and demos change it. The privileged
helper writes only below the value in *its own* configuration (the
``--config-file`` it is started with), fixed when it starts; the command
line's ``--sysfs-root`` changes only where the agent reads, and a write is
refused when the two differ.
"""),
    cfg.StrOpt(
        'proc_root',
        default='/proc',
        help="""
Where procfs is mounted (the kernel command line, interrupts, mounts and
routes are read there). The command line's ``--proc-root`` wins over it.
"""),
    cfg.StrOpt(
        'state_path',
        default='/var/lib/passthrough-plugin/agent-state.json',
        help="""
The agent's intent journal: the devices it bound with their original
drivers, and any bind or unbind in progress, so an interrupted agent rolls
a bind back or finishes an unbind when it starts again. Keep it on local
disk; ``passthrough-agent unbind`` uses it to restore original drivers.
"""),
]

sriov_group = cfg.OptGroup(
    'sriov',
    title='SR-IOV virtual functions',
    help='VF counts the agent sets at start (and with configure-vfs).')

sriov_opts = [
    cfg.MultiStrOpt(
        'vf_count',
        default=[],
        help="""
The desired number of VFs of a PF, as ``<PF>=<count>`` where ``<PF>`` is
its PCI address or its network interface name. Repeat the option for each
PF. Changing a non-zero count goes through 0, which removes the existing
VFs (and detaches them from guests). Example::

    vf_count = 0000:3b:00.0=8
    vf_count = enp59s0f1=4

Related options:

* ``[sriov] vf_timeout``
"""),
    cfg.MultiStrOpt(
        'vf_settings',
        default=[],
        help="""
Settings of a PF's VFs, one JSON object per PF, applied through netlink
(the PF's network interface) by ``passthrough-agent configure-vfs`` and
again by ``passthrough-agent run`` at start, after the VF counts. ``pf`` is
the PF's PCI address or interface name; ``all`` applies to every VF of it,
``vfs`` to one VF by index (and wins over ``all``). Keys:

* ``mac``: a unicast MAC (``vfs`` only, one per VF), e.g.
  ``52:54:00:12:34:56``
* ``vlan``: 0 (none) to 4094; ``qos``: its 802.1p priority, 0 to 7
* ``trust``, ``spoofchk``: true or false
* ``link_state``: ``auto``, ``enable`` or ``disable``
* ``min_tx_rate``, ``max_tx_rate``: Mbit/s, 0 for no limit

A setting the PF's driver does not offer (e.g. igb has no ``link_state``
and no ``min_tx_rate``) fails with the kernel's answer. Example::

    vf_settings = {"pf": "enp59s0f0", "all": {"spoofchk": true},
                   "vfs": {"0": {"mac": "52:54:00:12:34:56", "vlan": 100}}}

(one line in the file). Related options:

* ``[sriov] vf_count``
"""),
    cfg.FloatOpt(
        'vf_timeout',
        default=30.0,
        min=0.0,
        help='Seconds to wait for new VFs to appear in sysfs.'),
]


privileged_group = cfg.OptGroup(
    'passthrough_agent_privileged',
    title='The agent\'s privileged helper',
    help="""
oslo.privsep options of the agent's one privileged context, which only
writes allow-listed PCI attributes (bind, unbind, driver_override,
drivers_probe, new_id, remove_id, sriov_numvfs) below ``[agent]
sysfs_root`` of its own configuration, never following a symlink, and keeps
no capabilities (``capabilities`` defaults to none). When the agent runs as
root it forks the helper itself; otherwise ``helper_command`` (default:
``sudo privsep-helper --config-file ...``) starts it; see doc/agent.rst for
the sudoers line.
""")


net_admin_group = cfg.OptGroup(
    'passthrough_agent_net_admin',
    title='The agent\'s privileged network helper',
    help="""
oslo.privsep options of the agent's second privileged context, which only
sets VF settings (``[sriov] vf_settings``) through rtnetlink with
CAP_NET_ADMIN and no other capability. Started like
``[passthrough_agent_privileged]``: forked when the agent runs as root,
else through ``helper_command``.
""")


def register_opts(conf: cfg.ConfigOpts) -> None:
    groups.register(conf, agent_group, agent_opts)
    groups.register(conf, sriov_group, sriov_opts)


def list_opts() -> dict[cfg.OptGroup, list[cfg.Opt]]:
    # oslo.privsep registers the privileged group itself (on cfg.CONF);
    # listed here so the sample config documents it.
    return {agent_group: agent_opts, sriov_group: sriov_opts,
            privileged_group: list(priv_context.OPTS),
            net_admin_group: list(priv_context.OPTS)}
