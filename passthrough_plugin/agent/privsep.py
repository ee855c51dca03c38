"""The agent's one privileged context: writing PCI attributes under sysfs."""

from __future__ import annotations

import os
import warnings

with warnings.catch_warnings():
    # oslo.privsep's daemon imports eventlet, which warns on import; keep
    # that off the agent's stderr, where operators read one-line errors.
    warnings.simplefilter('ignore')
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


def ensure_started() -> None:
    """Start the privileged daemon before the first write, if needed.

    As root (the systemd unit) it is forked from this process; otherwise
    oslo.privsep starts it on the first call through
    ``[passthrough_agent_privileged] helper_command`` (sudo privsep-helper).
    Tests run the entrypoint in-process (client mode off): nothing starts.
    """
    if (sysfs_admin.client_mode and sysfs_admin.channel is None
            and os.geteuid() == 0):
        sysfs_admin.start(priv_context.Method.FORK)
