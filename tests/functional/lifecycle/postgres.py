"""A private PostgreSQL cluster on 127.0.0.1 for the ledger tests.

Debian's server binaries (``/usr/lib/postgresql/<v>/bin``) run ``initdb``
and ``postgres`` in a temporary directory, as the ``postgres`` user when the
tests run as root (PostgreSQL refuses root). One cluster per test process,
one fresh database per test; the server gets SIGTERM when the process
exits, and from the kernel if the process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import fixtures

PR_SET_PDEATHSIG = 1


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries, or the cluster did not start."""


def bindir() -> str:
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'),
                   key=lambda p: int(p.split('/')[4]))
    if not found:
        raise PostgresUnavailable(
            'no /usr/lib/postgresql/*/bin/initdb; apt-get install '
            'postgresql')
    return os.path.dirname(found[-1])


def driver() -> str:
    try:
        import psycopg  # noqa: F401
        return 'postgresql+psycopg'
    except ImportError:
        pass
    try:
        import psycopg2  # noqa: F401
        return 'postgresql+psycopg2'
    except ImportError:
        raise PostgresUnavailable(
            'no PostgreSQL driver: pip install "psycopg[binary]"') from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


class Cluster:
    """initdb + postgres in the foreground, stopped by :meth:`stop`."""

    def __init__(self) -> None:
        self.bin = bindir()
        self.driver = driver()
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam('postgres')
        self.dir = tempfile.mkdtemp(prefix='ledger-pg-')
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.dir, 'data')
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._start()

    def _demote(self) -> None:
        """In the child: become postgres, then die with our parent."""
        if self.user is not None:
            os.setgid(self.user.pw_gid)
            os.setgroups([])
            os.setuid(self.user.pw_uid)
        # After setuid: a credential change clears the death signal.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                signal.SIGTERM)

    def _start(self) -> None:
        log = os.path.join(self.dir, 'initdb.log')
        with open(log, 'wb') as out:
            done = subprocess.run(
                [os.path.join(self.bin, 'initdb'), '-D', self.data,
                 '-U', 'ledger', '--auth=trust', '-E', 'UTF8',
                 '--no-sync'],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                preexec_fn=self._demote, check=False)  # noqa: PLW1509
        if done.returncode:
            with open(log, encoding='utf-8', errors='replace') as text:
                raise PostgresUnavailable('initdb failed: %s' % text.read())
        self.log = open(os.path.join(self.dir, 'server.log'), 'wb')
        self.process = subprocess.Popen(
            [os.path.join(self.bin, 'postgres'), '-D', self.data,
             '-h', '127.0.0.1', '-p', str(self.port), '-k', self.dir,
             '-c', 'fsync=off', '-c', 'synchronous_commit=off',
             '-c', 'full_page_writes=off', '-c', 'timezone=Europe/Berlin'],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir,
            preexec_fn=self._demote)  # noqa: PLW1509
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(('127.0.0.1', self.port),
                                         timeout=1).close()
                if self._ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise PostgresUnavailable('postgres did not start; see %s' %
                                  os.path.join(self.dir, 'server.log'))

    def _ready(self) -> bool:
        done = subprocess.run(
            [os.path.join(self.bin, 'pg_isready'), '-h', '127.0.0.1',
             '-p', str(self.port), '-U', 'ledger', '-d', 'postgres'],
            capture_output=True, check=False)
        return done.returncode == 0

    def url(self, database: str) -> str:
        return '%s://ledger@127.0.0.1:%d/%s' % (self.driver, self.port,
                                                database)

    def admin(self, sql: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url('postgres'),
                                  isolation_level='AUTOCOMMIT')
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(sql))
        finally:
            engine.dispose()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGINT: PostgreSQL's "fast" shutdown.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, 'log', None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_CLUSTER: Cluster | None = None


def cluster() -> Cluster:
    """The process's cluster, started on first use, stopped at exit."""
    global _CLUSTER  # noqa: PLW0603 - one server per test process
    if _CLUSTER is None:
        _CLUSTER = Cluster()
        atexit.register(_CLUSTER.stop)
    return _CLUSTER


class PostgresDatabase(fixtures.Fixture):
    """A new, empty database in the shared cluster; dropped on cleanup."""

    def _setUp(self) -> None:
        server = cluster()
        name = 'ledger_%s' % uuid.uuid4().hex[:12]
        server.admin('CREATE DATABASE %s' % name)
        self.addCleanup(server.admin,
                        'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
        self.url = server.url(name)
