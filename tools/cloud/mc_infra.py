"""What runs outside Python: the venv install, MariaDB and RabbitMQ."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mc_procs
from mc_procs import CloudError, log
from mc_settings import PASSWORD, PIP_PACKAGES, Settings

RABBIT_SERVER = Path('/usr/lib/rabbitmq/bin/rabbitmq-server')
NOVA_DBS = ('nova_api', 'nova', 'nova_cell0', 'placement')


def install(s: Settings) -> None:
    """Everything `setup` needs: Debian packages, then the venv."""
    install_debian(s)
    install_venv(s)


def install_venv(s: Settings) -> None:
    """Create the harness venv and pip-install the services and our repo."""
    pip_log = s.logs / 'pip.log'
    if not (s.venv / 'bin' / 'python').exists():
        mc_procs.run([sys.executable, '-m', 'venv', str(s.venv)],
                     'creating the venv', log_file=pip_log)
    pip = [s.bin('python'), '-m', 'pip', 'install', '-q',
           '--disable-pip-version-check']
    # pip needs 10-30 s to find everything already satisfied: skip it when
    # this venv already got exactly these requirements.
    marker = s.venv / '.minicloud-services'
    wanted = '\n'.join(PIP_PACKAGES) + '\n'
    if not marker.exists() or marker.read_text() != wanted:
        mc_procs.run(pip + ['-U', 'pip'], 'upgrading pip', retries=3,
                     log_file=pip_log)
        mc_procs.run(pip + PIP_PACKAGES, 'pip install of the services',
                     retries=3, log_file=pip_log)
        marker.write_text(wanted)
    extra = list(s.extra_pip)
    if s.repo is not None:
        extra = ['-e', str(s.repo)] + extra
    if extra:
        # Constrain by the services' pins, so a repo or plugin requirement
        # cannot silently move nova or SQLAlchemy.
        mc_procs.run(pip + extra + [p for p in PIP_PACKAGES if '=' in p],
                     'pip install of {}'.format(' '.join(extra)), retries=3,
                     log_file=pip_log)


def install_debian(s: Settings) -> None:
    """apt-get the broker and the database if absent; never start them."""
    missing = []
    if not RABBIT_SERVER.exists():
        missing.append('rabbitmq-server')
    if not shutil.which('mariadbd'):
        missing.append('mariadb-server')
    if not missing:
        return
    if os.geteuid() != 0:
        raise CloudError('{} missing and not root: run `apt-get install {}` '
                         'or rerun as root'.format(', '.join(missing),
                                               ' '.join(missing)))
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    # The package scripts would start the system services; a policy-rc.d
    # answering 101 forbids that for the time of the install.
    policy = Path('/usr/sbin/policy-rc.d')
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text('#!/bin/sh\nexit 101\n')
        policy.chmod(0o755)
    try:
        apt_log = s.logs / 'apt.log'
        mc_procs.run(['apt-get', 'update', '-q'], 'apt-get update', env=env,
                     retries=3, log_file=apt_log)
        mc_procs.run(['apt-get', 'install', '-y', '-q',
                      '--no-install-recommends'] + missing,
                     'apt-get install {}'.format(' '.join(missing)), env=env,
                     retries=2, log_file=apt_log)
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


# -- MariaDB -------------------------------------------------------------

def _mysql_cnf(s: Settings) -> Path:
    return s.base / 'mysql' / 'my.cnf'


def _mysql(s: Settings, *args: str, password: bool = True) -> list[str]:
    cmd = [args[0], f'--defaults-file={_mysql_cnf(s)}', '-uroot']
    if password:
        cmd.append(f'-p{PASSWORD}')
    return cmd + list(args[1:])


def _mysql_pinged(s: Settings, password: bool = True) -> bool:
    return subprocess.run(
        _mysql(s, 'mariadb-admin', 'ping', password=password),
        capture_output=True, check=False).returncode == 0


def start_mysql(s: Settings, template: str) -> None:
    """Start a private mariadbd on 127.0.0.1; create the DBs on first use."""
    if mc_procs.recorded(s.run, 'mysqld') and _mysql_pinged(s):
        return
    datadir = s.base / 'mysql' / 'data'
    datadir.parent.mkdir(parents=True, exist_ok=True)
    _mysql_cnf(s).write_text(template)
    fresh = not (datadir / 'mysql').exists()
    if fresh:
        mc_procs.run(['mariadb-install-db',
                      f'--defaults-file={_mysql_cnf(s)}',
                      '--auth-root-authentication-method=normal',
                      '--skip-test-db'], 'mariadb-install-db',
                     log_file=s.logs / 'mysql-install.log')
    mc_procs.spawn('mysqld', ['mariadbd', f'--defaults-file={_mysql_cnf(s)}'],
                   s.run, s.logs)
    mc_procs.wait_for('mariadb', lambda: _mysql_pinged(s, not fresh),
                      60, name='mysqld', run_dir=s.run,
                      log_file=s.logs / 'mysqld.err')
    if fresh:
        sql = []
        for host in ('localhost', '127.0.0.1'):
            user = f"'root'@'{host}'"
            sql += [f"CREATE USER IF NOT EXISTS {user};",
                    f"ALTER USER {user} IDENTIFIED BY '{PASSWORD}';",
                    f"GRANT ALL ON *.* TO {user} WITH GRANT OPTION;"]
        sql += [f'CREATE DATABASE {db};' for db in NOVA_DBS]
        mc_procs.run(_mysql(s, 'mariadb', '-e', ' '.join(sql),
                            password=False), 'creating the databases')


def mysql_cmd(s: Settings, sql: str) -> list[str]:
    return _mysql(s, 'mariadb', '-N', '-B', '-e', sql)


def mysql_query(s: Settings, sql: str) -> str:
    """Tab-separated rows of ``sql``, '' if the server does not answer."""
    proc = subprocess.run(_mysql(s, 'mariadb', '-N', '-B', '-e', sql),
                          capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else ''


# -- RabbitMQ ------------------------------------------------------------

def rabbit_env(s: Settings) -> dict[str, str]:
    home = s.base / 'rabbit'
    return dict(
        os.environ,
        HOME=str(home),
        RABBITMQ_NODENAME='rabbit@localhost',
        RABBITMQ_NODE_IP_ADDRESS='127.0.0.1',
        RABBITMQ_NODE_PORT=str(s.port('rabbit')),
        RABBITMQ_DIST_PORT=str(s.port('rabbit-dist')),
        ERL_EPMD_ADDRESS='127.0.0.1',
        ERL_EPMD_PORT=str(s.port('epmd')),
        # The distribution listener too: loopback only.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
            '-kernel inet_dist_use_interface {127,0,0,1}'),
        RABBITMQ_MNESIA_BASE=str(home / 'mnesia'),
        RABBITMQ_LOG_BASE=str(s.logs / 'rabbit'),
        RABBITMQ_PID_FILE=str(s.run / 'rabbit.beam.pid'),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(home / 'enabled_plugins'),
        RABBITMQ_CONFIG_FILE=str(home / 'rabbitmq'),
    )


def start_rabbit(s: Settings) -> None:
    """Spawn rabbitmq-server; :func:`wait_rabbit` waits for it."""
    if mc_procs.recorded(s.run, 'rabbit'):
        return
    home = s.base / 'rabbit'
    home.mkdir(parents=True, exist_ok=True)
    (home / 'enabled_plugins').write_text('[].\n')
    (home / 'rabbitmq.conf').write_text('loopback_users = none\n')
    epmd_before = mc_procs.listener_pid(s.port('epmd'))
    mc_procs.spawn('rabbit', [str(RABBIT_SERVER)], s.run, s.logs,
                   env=rabbit_env(s))
    (s.run / 'epmd.before').write_text(str(epmd_before or ''))


def wait_rabbit(s: Settings, retries: int = 1) -> None:
    """Wait for the broker; a broker that dies while booting gets one
    more start (Erlang boot races), then the error names its log."""
    port = s.port('rabbit')
    try:
        mc_procs.wait_for('rabbitmq', lambda: mc_procs.tcp_open(port),
                          s.timeout, name='rabbit', run_dir=s.run,
                          log_file=s.logs / 'rabbit.out', interval=0.5)
    except CloudError as exc:
        if retries < 1:
            raise
        log('rabbitmq failed to start, retrying once: %s',
            str(exc).splitlines()[0])
        stop_rabbit(s)
        start_rabbit(s)
        wait_rabbit(s, retries - 1)
        return
    # epmd daemonizes out of our process group: remember it if it is ours.
    before = (s.run / 'epmd.before').read_text().strip()
    for _ in range(20):
        pid = mc_procs.listener_pid(s.port('epmd'))
        if pid:
            if str(pid) != before:
                mc_procs.record('epmd', pid, s.run)
            break
        time.sleep(0.2)


def stop_rabbit(s: Settings) -> None:
    if mc_procs.recorded(s.run, 'rabbit'):
        ctl = RABBIT_SERVER.with_name('rabbitmqctl')
        subprocess.run([str(ctl), '-q', 'shutdown'], env=rabbit_env(s),
                       capture_output=True, check=False, timeout=60)
        mc_procs.stop('rabbit', s.run, grace=15)
    mc_procs.stop('epmd', s.run, grace=5)
