"""The agent's one privileged context: writing PCI attributes under sysfs."""

from __future__ import annotations

import os

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

# Writing bind/unbind/driver_override/sriov_numvfs needs write access to
# root-owned attribute files (DAC_OVERRIDE); drivers_probe and new_id go
# through the PCI core, which expects an administrator (SYS_ADMIN).
sysfs_admin = priv_context.PrivContext(
    'passthrough_plugin',
    cfg_section='passthrough_agent_privileged',
    pypath=__name__ + '.sysfs_admin',
    capabilities=[caps.CAP_DAC_OVERRIDE, caps.CAP_SYS_ADMIN],
)

# The only files the privileged side will write, by their last component.
WRITABLE = frozenset((
    'bind', 'unbind', 'new_id', 'remove_id', 'driver_override',
    'drivers_probe', 'sriov_numvfs', 'sriov_drivers_autoprobe', 'rescan',
))


def checked_path(root: str, relpath: str) -> str:
    """The absolute attribute path, if it is one we may write.

    Checked on the privileged side, so a compromised agent cannot use the
    daemon to write anywhere else: only PCI attributes named in WRITABLE,
    below ``<root>/bus/pci/``, after resolving symlinks.

    :raises: PermissionError naming the refused path.
    """
    if not os.path.isabs(root):
        raise PermissionError('sysfs root %r is not absolute' % root)
    parts = relpath.split('/')
    if (os.path.isabs(relpath) or '..' in parts or parts[:2] != ['bus', 'pci']
            or parts[-1] not in WRITABLE):
        raise PermissionError('refusing to write %r under %s' % (
            relpath, root))
    path = os.path.join(root, relpath)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise PermissionError('refusing to write %s: it resolves outside %s'
                              % (path, root))
    return path


@sysfs_admin.entrypoint
def write_attr(root: str, relpath: str, value: str) -> None:
    """Write ``value`` to the PCI sysfs attribute ``<root>/<relpath>``.

    One ``write(2)``, as the kernel's attribute handlers expect.

    :raises: PermissionError for a path outside the allowed set; OSError as
        the kernel returns it.
    """
    path = checked_path(root, relpath)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def start(method: str = 'auto') -> None:
    """Start the privileged daemon now rather than on the first write.

    ``auto`` forks it when we already run as root (the systemd unit) and
    otherwise leaves oslo.privsep to start ``privsep-helper`` through the
    configured ``[passthrough_agent_privileged] helper_command`` (sudo).
    """
    if method == 'auto':
        # Not root: oslo.privsep starts the helper on the first write.
        method = 'fork' if os.geteuid() == 0 else 'lazy'
    if method == 'fork':
        sysfs_admin.start(priv_context.Method.FORK)
    elif method == 'helper':
        sysfs_admin.start(priv_context.Method.ROOTWRAP)
