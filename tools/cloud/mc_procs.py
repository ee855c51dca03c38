"""Start, watch and stop the cloud's processes through pid files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class CloudError(Exception):
    """A failure the operator can act on; printed without a traceback."""


def log(msg: str, *args: object) -> None:
    text = msg % args if args else msg
    print('[minicloud {}] {}'.format(time.strftime('%H:%M:%S'), text),
          file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 25) -> str:
    """The end of a log file, to put into an error message."""
    try:
        text = path.read_text(errors='replace').splitlines()
    except OSError:
        return f'(no log at {path})'
    return '\n'.join('    ' + line for line in text[-lines:])


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a pid: guards pid files against reuse."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    fields = stat.rsplit(')', 1)[1].split()
    if fields[0] == 'Z':
        return None
    return fields[19]


def alive(pid: int) -> bool:
    return _start_time(pid) is not None


def spawn(name: str, argv: Sequence[str], run_dir: Path, log_dir: Path, *,
          env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start a detached daemon in its own session; record ``<name>.pid``."""
    with open(log_dir / (f'{name}.out'), 'ab') as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=dict(env) if env else None,
            cwd=cwd, start_new_session=True)
    record(name, proc.pid, run_dir)
    return proc.pid


def record(name: str, pid: int, run_dir: Path) -> None:
    (run_dir / (f'{name}.pid')).write_text(
        f"{pid} {_start_time(pid) or '?'}\n")


def recorded(run_dir: Path, name: str) -> int | None:
    """The pid in ``<name>.pid`` if that very process still runs."""
    path = run_dir / (f'{name}.pid')
    try:
        pid_s, start = path.read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_s)
    now = _start_time(pid)
    if now is None or start not in ('?', now):
        return None
    return pid


def stop(name: str, run_dir: Path, grace: float = 30.0) -> bool:
    """SIGTERM the process group of ``name``, SIGKILL it after ``grace``."""
    pid = recorded(run_dir, name)
    pidfile = run_dir / (f'{name}.pid')
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        log('%s (pid %d) ignored SIGTERM for %.0fs: SIGKILL', name, pid, grace)
    else:
        log('%s (pid %d) stopped in %.1fs', name, pid,
            grace - (deadline - time.monotonic()))
    # The group may hold children (gunicorn workers, beam's helpers).
    _signal(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def _signal(pid: int, sig: int) -> None:
    """Signal the group ``pid`` leads (spawn's daemons), else just ``pid``.

    A daemon that forked itself away (epmd) leads no group of its own.
    """
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str:
    """'pid N (cmd)' of whoever listens on ``port``, for error messages."""
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == '0A' and int(cols[1].rsplit(':', 1)[1], 16) == port:
                inodes.add(f'socket:[{cols[9]}]')
    for proc in Path('/proc').iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = [os.readlink(fd) for fd in (proc / 'fd').iterdir()]
            cmd = (proc / 'cmdline').read_bytes().replace(b'\0', b' ')
        except OSError:
            continue
        if inodes.intersection(fds):
            return f'pid {proc.name} ({cmd.decode()[:80].strip()})'
    return 'an unknown process'


def listener_pid(port: int) -> int | None:
    holder = port_holder(port)
    return int(holder.split()[1]) if holder.startswith('pid ') else None


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def wait_for(what: str, check: Callable[[], bool], timeout: float, *,
             name: str | None = None, run_dir: Path | None = None,
             log_file: Path | None = None, interval: float = 0.3) -> float:
    """Poll ``check`` until true; fail at once if the daemon ``name`` died.

    :returns: the seconds it took.
    :raises CloudError: on timeout or when the process exited, with the
        end of its log.
    """
    t0 = time.monotonic()
    while True:
        if check():
            took = time.monotonic() - t0
            log('%s up after %.1fs', what, took)
            return took
        if name and run_dir and recorded(run_dir, name) is None:
            raise CloudError('{} exited while starting; end of {}:\n{}'.format(
                name, log_file, tail(log_file) if log_file else ''))
        if time.monotonic() - t0 > timeout:
            raise CloudError('{} not up after {:.0f}s; end of {}:\n{}'.format(
                what, timeout, log_file, tail(log_file) if log_file else ''))
        time.sleep(interval)


def http_up(url: str) -> Callable[[], bool]:
    def check() -> bool:
        code = http_status(url)
        # Any answer below 500 means the WSGI app is loaded and serving.
        return code is not None and code < 500
    return check


def run(argv: Sequence[str], what: str, *,
        env: Mapping[str, str] | None = None,
        retries: int = 1, delay: float = 2.0,
        log_file: Path | None = None) -> str:
    """Run a command to completion; its output goes to ``log_file``.

    :raises CloudError: naming the command and the end of its output.
    """
    out = ''
    for attempt in range(1, retries + 1):
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, check=False,
            env=dict(env) if env else None)
        out = proc.stdout + proc.stderr
        if log_file:
            with open(log_file, 'a') as fh:
                fh.write('$ {}\n{}\n'.format(' '.join(argv), out))
        if proc.returncode == 0:
            return proc.stdout
        if attempt < retries:
            log('%s failed (attempt %d/%d), retrying', what, attempt, retries)
            time.sleep(delay)
    lines = '\n'.join('    ' + x for x in out.splitlines()[-25:])
    raise CloudError('{} failed: {}\n{}'.format(what, ' '.join(argv), lines))
