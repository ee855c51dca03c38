"""Open a path below a directory descriptor without following any symlink."""

from __future__ import annotations

import ctypes
import errno
import os
import platform

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# openat2(2), Linux 5.6: one number on every architecture but alpha.
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE = (RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS
           | RESOLVE_BENEATH)


class _OpenHow(ctypes.Structure):
    _fields_ = [('flags', ctypes.c_uint64), ('mode', ctypes.c_uint64),
                ('resolve', ctypes.c_uint64)]


class _State:
    # None: not tried yet; the first ENOSYS (old kernel, seccomp) turns it
    # off for the life of the process.
    openat2: bool | None = None
    libc: ctypes.CDLL | None = None


def openat2_available() -> bool:
    if _State.openat2 is None:
        _State.openat2 = (platform.system() == 'Linux'
                          and platform.machine() in ('x86_64', 'aarch64'))
        if _State.openat2:
            _State.libc = ctypes.CDLL(None, use_errno=True)
    return bool(_State.openat2)


def use_openat2(enabled: bool) -> None:
    """Tests: force the component walk (False) or try openat2 again."""
    _State.openat2 = False if not enabled else None


def _openat2(dir_fd: int, path: str, flags: int) -> int:
    assert _State.libc is not None
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE)
    fd = _State.libc.syscall(
        ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)), ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def _walk(dir_fd: int, parts: list[str], flags: int) -> int:
    """openat() one component at a time, each with O_NOFOLLOW."""
    fd = dir_fd
    try:
        for part in parts[:-1]:
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            if fd != dir_fd:
                os.close(fd)
            fd = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=fd)
    finally:
        if fd != dir_fd:
            os.close(fd)


def open_beneath(dir_fd: int, parts: list[str], flags: int) -> int:
    """A descriptor for ``dir_fd/parts...``; no symlink, no '..', no mount.

    :raises: OSError (ELOOP for a symlink anywhere in the path, EXDEV for
        an escape or a mount crossing under openat2).
    """
    if not parts or any(p in ('', '.', '..') or '/' in p for p in parts):
        raise PermissionError('refusing to open %r' % '/'.join(parts))
    if openat2_available():
        try:
            return _openat2(dir_fd, '/'.join(parts), flags)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            # No openat2 here (old kernel, or a seccomp filter that does
            # not know it): the walk gives the same guarantees.
            _State.openat2 = False
    return _walk(dir_fd, parts, flags)
