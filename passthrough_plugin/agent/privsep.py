"""The agent's one privileged context: allow-listed PCI attribute writes."""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import warnings

from oslo_config import cfg

from passthrough_plugin.agent import openat
from passthrough_plugin.conf import agent as agent_conf

with warnings.catch_warnings():
    # oslo.privsep's daemon imports eventlet, which warns on import; keep
    # that off the agent's stderr, where operators read one-line errors.
    warnings.simplefilter('ignore')
    from oslo_privsep import priv_context

# No capabilities at all: the daemon keeps uid 0, and every attribute it
# writes (bind, unbind, new_id, remove_id, driver_override, drivers_probe,
# sriov_numvfs) is a file owned by uid 0 with its owner-write bit set, and
# the kernel's handlers for them check no capability. Without
# CAP_DAC_OVERRIDE even a write that escaped every check below could not
# touch a file that uid 0 may not write by its mode bits.
sysfs_admin = priv_context.PrivContext(
    'passthrough_plugin',
    cfg_section='passthrough_agent_privileged',
    pypath=__name__ + '.sysfs_admin',
    capabilities=[],
)

PCI_ADDRESS = re.compile(r'^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$')
# A driver name or a directory name on the way to a device in /sys/devices
# (pci0000:00, 0000:00:01.0, ...): never '.', '..' or empty.
NAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}$')
IDS = re.compile(r'^[0-9a-fA-F]{1,4} [0-9a-fA-F]{1,4}$')
MAX_VALUE = 64

# The allow-list: bus/pci/<attr>, bus/pci/drivers/<driver>/<attr>,
# bus/pci/devices/<address>/<attr> and .../<address>/driver/unbind.
BUS_ATTRS = frozenset(('drivers_probe',))
DRIVER_ATTRS = frozenset(('bind', 'unbind', 'new_id', 'remove_id'))
DEVICE_ATTRS = frozenset(('driver_override', 'sriov_numvfs'))
_WRITE = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY


class _Root:
    """The privileged side's sysfs root: an open directory, pinned."""

    def __init__(self, path: str) -> None:
        if not os.path.isabs(path):
            raise PermissionError('sysfs root %r is not absolute' % path)
        self.path = os.path.realpath(path)
        self.fd = os.open(self.path, openat.DIR_FLAGS)

    def close(self) -> None:
        os.close(self.fd)


class _Pin:
    lock = threading.Lock()
    root: _Root | None = None


def pin_root(path: str) -> None:
    """Fix the privileged side's root (not an entrypoint: not remote).

    The daemon calls it on its first write with ``[agent] sysfs_root`` from
    its own configuration; tests that run the entrypoints in-process call
    it with their fake tree.
    """
    with _Pin.lock:
        if _Pin.root is not None:
            _Pin.root.close()
        _Pin.root = _Root(path)


def unpin_root() -> None:
    with _Pin.lock:
        if _Pin.root is not None:
            _Pin.root.close()
        _Pin.root = None


def _pinned() -> _Root:
    with _Pin.lock:
        if _Pin.root is None:
            # The daemon's own configuration: privsep-helper's
            # --config-file (pinned in sudoers), or the forking agent's.
            agent_conf.register_opts(cfg.CONF)
            _Pin.root = _Root(cfg.CONF.agent.sysfs_root)
        return _Pin.root


def _refuse(relpath: str, why: str) -> PermissionError:
    return PermissionError('refusing to write %r: %s' % (relpath[:200], why))


def check_value(relpath: str, attr: str, value: str) -> None:
    """Each attribute takes only the values the agent writes to it.

    :raises: PermissionError naming the attribute.
    """
    text = value.strip()
    if len(value) > MAX_VALUE or '\0' in value:
        raise _refuse(relpath, 'the value is longer than %d characters or '
                      'holds a NUL' % MAX_VALUE)
    if attr in ('bind', 'unbind', 'drivers_probe'):
        ok = bool(PCI_ADDRESS.match(text))
    elif attr == 'driver_override':
        ok = text == '' or bool(NAME.match(text))
    elif attr == 'sriov_numvfs':
        ok = text.isdigit() and len(text) <= 5
    else:
        ok = bool(IDS.match(text))
    if not ok:
        raise _refuse(relpath, 'value %r is not valid for %s' % (
            value[:MAX_VALUE], attr))


def resolve(root_fd: int, relpath: str) -> tuple[list[str], str]:
    """The attribute's real path below the root, as components.

    ``bus/pci/devices/<address>`` is a symlink into ``devices/``; it is the
    one link followed, by hand: its target must stay under ``devices/``
    and end in the address. ``<address>/driver`` is followed the same way
    to ``bus/pci/drivers/<driver>``. Every other component is opened with
    no symlink allowed.

    :returns: (components of the parent directory, attribute name)
    :raises: PermissionError for a path off the allow-list.
    """
    parts = relpath.split('/')
    if parts[:2] != ['bus', 'pci'] or len(parts) < 3:
        raise _refuse(relpath, 'only PCI attributes under bus/pci are '
                      'written')
    rest = parts[2:]
    if len(rest) == 1 and rest[0] in BUS_ATTRS:
        return ['bus', 'pci'], rest[0]
    if (len(rest) == 3 and rest[0] == 'drivers' and NAME.match(rest[1])
            and rest[2] in DRIVER_ATTRS):
        return ['bus', 'pci', 'drivers', rest[1]], rest[2]
    if len(rest) >= 3 and rest[0] == 'devices' and PCI_ADDRESS.match(
            rest[1]):
        device = _device_dir(root_fd, relpath, rest[1])
        if len(rest) == 3 and rest[2] in DEVICE_ATTRS:
            return device, rest[2]
        if rest[2:] == ['driver', 'unbind']:
            driver = _link_target(root_fd, device, 'driver', relpath)
            if (len(driver) < 4 or driver[-4:-1] != ['bus', 'pci', 'drivers']
                    or not NAME.match(driver[-1])
                    or any(p != '..' for p in driver[:-4])):
                raise _refuse(relpath, 'its driver link does not point to '
                              'a PCI driver')
            return ['bus', 'pci', 'drivers', driver[-1]], 'unbind'
    raise _refuse(relpath, 'not an attribute on the allow-list (%s)' % (
        ', '.join(sorted(BUS_ATTRS | DRIVER_ATTRS | DEVICE_ATTRS))))


def _link_target(root_fd: int, parent: list[str], name: str,
                 relpath: str) -> list[str]:
    fd = openat.open_beneath(root_fd, parent, openat.DIR_FLAGS)
    try:
        target = os.readlink(name, dir_fd=fd)
    except OSError as exc:
        raise _refuse(relpath, '%s is not a symlink (%s)' % (
            '/'.join(parent + [name]), exc.strerror)) from None
    finally:
        os.close(fd)
    if target.startswith('/'):
        raise _refuse(relpath, 'its link points to an absolute path')
    return target.split('/')


def _device_dir(root_fd: int, relpath: str, address: str) -> list[str]:
    target = _link_target(root_fd, ['bus', 'pci', 'devices'], address,
                          relpath)
    # bus/pci/devices/<a> -> ../../../devices/pci0000:00/.../<a>
    inside = target[3:]
    if (target[:3] != ['..', '..', '..'] or len(inside) < 2
            or inside[0] != 'devices' or inside[-1] != address
            or not all(NAME.match(p) for p in inside[1:])):
        raise _refuse(relpath, 'bus/pci/devices/%s does not point into '
                      'the devices tree' % address)
    return inside


def write_below(root_fd: int, relpath: str, value: str) -> None:
    """The privileged write itself, on a root directory descriptor.

    :raises: PermissionError (refused), OSError (from the kernel, or ELOOP
        when a symlink appeared in the path).
    """
    parent, attr = resolve(root_fd, relpath)
    check_value(relpath, attr, value)
    fd = openat.open_beneath(root_fd, parent + [attr], _WRITE)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise _refuse(relpath, 'it is not a plain attribute file')
        if st.st_size:
            # A fake tree's regular file; sysfs ignores the size.
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
        data = value.encode()
        if os.write(fd, data) != len(data):
            raise OSError(errno.EIO, 'short write', relpath)
    finally:
        os.close(fd)


@sysfs_admin.entrypoint
def write_attr(relpath: str, value: str) -> None:
    """Write ``value`` to the PCI attribute ``relpath`` below the root.

    The root is the privileged side's own (``[agent] sysfs_root`` of the
    daemon's configuration), never the caller's. One ``write(2)``, as the
    kernel's attribute handlers expect.

    :raises: PermissionError for a path or value off the allow-list;
        OSError as the kernel (or a refused symlink: ELOOP) returns it.
    """
    if not isinstance(relpath, str) or not isinstance(value, str):
        raise PermissionError('refusing to write: path and value must be '
                              'strings')
    write_below(_pinned().fd, relpath, value)


@sysfs_admin.entrypoint
def sysfs_root() -> str:
    """The root the privileged side writes under (resolved)."""
    return _pinned().path


def ensure_started() -> None:
    """Start the privileged daemon before the first write, if needed.

    As root it is forked from this process; otherwise oslo.privsep starts
    it on the first call through ``[passthrough_agent_privileged]
    helper_command`` (default ``sudo privsep-helper``). Tests that run the
    entrypoints in-process (client mode off) start nothing.
    """
    if (sysfs_admin.client_mode and sysfs_admin.channel is None
            and os.geteuid() == 0):
        sysfs_admin.start(priv_context.Method.FORK)
