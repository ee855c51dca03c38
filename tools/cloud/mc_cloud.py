"""Setup, start, stop and status of the whole cloud."""

from __future__ import annotations

import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable

import mc_agent
import mc_api
import mc_configs
import mc_infra
import mc_procs
import mc_smoke
import mc_snapshot
import mc_tempest
from mc_procs import CloudError, log
from mc_settings import (
    COMPUTE_HOSTS, COMPUTE_SERVICES, DEFAULT_PORTS, PASSWORD, REGION,
    Settings)

# Stop order: API users first, the broker and database last.
SERVICES = [*COMPUTE_SERVICES.values(), 'nova-scheduler', 'nova-conductor',
            'nova-api', 'glance', 'placement', 'neutron-stub', 'keystone']
# gunicorn apps: name -> (workers, threads)
GUNICORN = {'keystone': (1, 1), 'placement': (2, 1), 'glance': (1, 4),
            'nova-api': (1, 4)}
STATE_DIRS = ('etc', 'data', 'mysql', 'rabbit', 'run', 'tempest', 'wsgi')
STARTED_MARK = 'started-once'


def _service_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS='ignore',
               PATH=f"{s.venv / 'bin'}:{os.environ.get('PATH', '')}",
               MINICLOUD_BASE=str(s.base))
    if s.fake_pci_ids:
        # nova.virt.minicloud_hexpci (a link to mc_fakevirt.py) imports
        # mc_settings from here.
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [
            str(mc_configs.TEMPLATES.parent), env.get('PYTHONPATH')]))
        env['MINICLOUD_FAKE_PCI_IDS'] = s.fake_pci_ids
    env.update(s.env)
    return env


def _extras(s: Settings) -> list[str]:
    """Pid-file names of the --service daemons, saved or still running."""
    names = {'extra-' + n for n in s.services}
    names.update(p.stem for p in s.run.glob('extra-*.pid'))
    return sorted(names)


def running(s: Settings) -> list[str]:
    names = _extras(s) + SERVICES + ['rabbit', 'epmd', 'mysqld']
    return [n for n in names if mc_procs.recorded(s.run, n)]


def _parallel(*steps: Callable[[], None]) -> None:
    """Run steps in threads; re-raise the first failure."""
    errors: list[BaseException] = []

    def wrap(step: Callable[[], None]) -> None:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(st,)) for st in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# -- setup ----------------------------------------------------------------

def setup(s: Settings) -> None:
    """Wipe all state (never the venv), write configs, create the DBs."""
    if not (s.venv / 'bin' / 'nova-manage').exists():
        raise CloudError(
            f'{s.venv} has no nova: run `minicloud.py install` first')
    busy = running(s)
    if busy:
        raise CloudError(f'still running: {", ".join(busy)}; run '
                         '`minicloud.py stop` first')
    # The fake virt driver keeps no node identity: a restarted nova-compute
    # refuses an old DB, so every setup starts from empty.
    for sub in STATE_DIRS:
        shutil.rmtree(s.base / sub, ignore_errors=True)
    for item in s.logs.glob('*'):
        if item.name not in ('pip.log', 'apt.log'):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    s.run.mkdir(parents=True, exist_ok=True)
    mc_configs.write_all(s)
    my_cnf = mc_configs.render('my.cnf', s)
    snap_key = mc_snapshot.key(s, my_cnf)
    if s.use_cache and mc_snapshot.restore(s, snap_key):
        return
    _parallel(lambda: _setup_sqlite_services(s), lambda: _setup_mysql(s))
    if s.use_cache:
        # A clean shutdown leaves consistent InnoDB files to copy; `start`
        # starts mysqld again in under a second.
        mc_procs.stop('mysqld', s.run)
        mc_snapshot.save(s, snap_key)


def _setup_sqlite_services(s: Settings) -> None:
    conf = ['--config-file', str(s.etc / 'keystone' / 'keystone.conf')]
    km = [s.bin('keystone-manage')] + conf
    lf = s.logs / 'setup.log'
    mc_procs.run(km + ['db_sync'], 'keystone db_sync', log_file=lf)
    for what in ('fernet_setup', 'credential_setup'):
        mc_procs.run(km + [what, '--keystone-user', 'root',
                           '--keystone-group', 'root'], what, log_file=lf)
    ks = s.url('keystone')
    mc_procs.run(km + [
        'bootstrap', '--bootstrap-password', PASSWORD,
        '--bootstrap-username', 'admin', '--bootstrap-project-name', 'admin',
        '--bootstrap-role-name', 'admin',
        '--bootstrap-service-name', 'keystone',
        '--bootstrap-region-id', REGION, '--bootstrap-admin-url', ks,
        '--bootstrap-public-url', ks, '--bootstrap-internal-url', ks],
        'keystone bootstrap', log_file=lf)
    mc_procs.run([s.bin('glance-manage'), '--config-file',
                  str(s.etc / 'glance' / 'glance-api.conf'), 'db_sync'],
                 'glance db_sync', log_file=lf)


def _setup_mysql(s: Settings) -> None:
    mc_infra.start_mysql(s, mc_configs.render('my.cnf', s))
    lf = s.logs / 'setup.log'
    mc_procs.run([s.bin('placement-manage'), '--config-file',
                  str(s.etc / 'placement' / 'placement.conf'), 'db', 'sync'],
                 'placement db sync', log_file=lf)
    nm = [s.bin('nova-manage'), '--config-file',
          str(s.etc / 'nova' / 'nova.conf')]
    mc_procs.run(nm + ['api_db', 'sync'], 'nova api_db sync', log_file=lf)
    mc_procs.run(nm + ['cell_v2', 'map_cell0', '--database_connection',
                       s.mysql_url('nova_cell0')], 'map_cell0', log_file=lf)
    mc_procs.run(nm + ['cell_v2', 'create_cell', '--name', 'cell1'],
                 'create_cell', log_file=lf)
    mc_procs.run(nm + ['db', 'sync'], 'nova db sync', log_file=lf)
    # FakeDriverWithPciResources reports vendor_id 'fake-vendor_id' and
    # product_id 'fake-product_id', longer than nova's VARCHAR(4) columns:
    # MySQL refuses the rows (or, non-strict, truncates them, and then the
    # devices read back no longer pool with the driver's).  Widen the columns
    # of this throw-away DB so it stores what the driver reports.
    for db in ('nova', 'nova_cell0'):
        sql = (f'ALTER TABLE {db}.pci_devices MODIFY vendor_id VARCHAR(32) '
               'NOT NULL, MODIFY product_id VARCHAR(32) NOT NULL')
        mc_procs.run(mc_infra.mysql_cmd(s, sql), f'widening {db}.pci_devices')


# -- start ----------------------------------------------------------------

def _gunicorn(s: Settings, name: str) -> None:
    workers, threads = GUNICORN[name]
    mc_procs.spawn(name, [
        s.bin('gunicorn'), '--chdir', str(s.base / 'wsgi'),
        '--bind', f'127.0.0.1:{s.port(name)}',
        '--workers', str(workers), '--threads', str(threads),
        '--timeout', '300', '--access-logfile',
        str(s.logs / (f'{name}-access.log')),
        '{}_app:application'.format(name.replace('-', '_'))],
        s.run, s.logs, env=_service_env(s))


def _wait_http(s: Settings, name: str) -> None:
    mc_procs.wait_for(name, mc_procs.http_up(s.url(name) + '/'), s.timeout,
                      name=name, run_dir=s.run,
                      log_file=s.logs / f'{name}.out')


def _check_ports(s: Settings) -> None:
    skip = {'mysql'} if mc_procs.recorded(s.run, 'mysqld') else set()
    for name in _ports():
        if name in skip:
            continue
        port = s.port(name)
        if not mc_procs.port_free(port):
            raise CloudError(
                f'port {port} ({name}) is in use by '
                f'{mc_procs.port_holder(port)}; stop it or pass --port-offset')


def _ports() -> list[str]:
    return list(DEFAULT_PORTS)


def start(s: Settings) -> None:
    """Start every service, seed the cloud, write the tempest workspace."""
    busy = [n for n in running(s) if n != 'mysqld']
    if busy:
        raise CloudError(f'already running: {", ".join(busy)}; '
                         '`minicloud.py stop` first')
    if (s.run / STARTED_MARK).exists() or not (s.etc / 'nova').exists():
        log('state is not fresh (fake driver: no node identity): setup')
        mc_procs.stop('mysqld', s.run)
        t0 = time.monotonic()
        setup(s)
        log('setup done in %.1fs', time.monotonic() - t0)
    _check_ports(s)
    mc_configs.write_all(s)
    (s.run / STARTED_MARK).write_text(time.strftime('%F %T\n'))
    env = _service_env(s)
    mc_infra.start_mysql(s, mc_configs.render('my.cnf', s))
    # Slow starters first: the broker boots while keystone loads.
    mc_infra.start_rabbit(s)
    _gunicorn(s, 'keystone')
    mc_procs.spawn('neutron-stub', [
        s.bin('python'), str(mc_configs.TEMPLATES.parent / 'neutron_stub.py'),
        str(s.port('neutron-stub'))], s.run, s.logs, env=env)
    _wait_http(s, 'keystone')
    api = mc_api.Api(s)
    api.login()
    # Before nova-compute starts: it needs placement in the catalog.
    api.register_catalog()
    _gunicorn(s, 'placement')
    _gunicorn(s, 'glance')
    mc_infra.wait_rabbit(s)
    _gunicorn(s, 'nova-api')
    nova_conf = str(s.etc / 'nova' / 'nova.conf')

    def nova(svc: str, name: str = '', *more: str) -> None:
        name = name or 'nova-' + svc
        mc_procs.spawn(name, [s.bin('nova-' + svc), '--config-file',
                              nova_conf, *more, '--log-file',
                              str(s.logs / (name + '.log'))],
                       s.run, s.logs, env=env)

    nova('conductor')
    nova('scheduler')
    # nova-compute creates its providers at startup and otherwise retries
    # only a periodic task later: let it find Placement answering.
    _wait_http(s, 'placement')
    for host, name in COMPUTE_SERVICES.items():
        nova('compute', name, '--config-file',
             str(mc_configs.compute_conf_path(s, host)))
    for name in ('glance', 'nova-api'):
        _wait_http(s, name)
    for name, command in s.services.items():
        mc_procs.spawn('extra-' + name, shlex.split(command), s.run, s.logs,
                       env=env)
    image = api.ensure_image()
    _seed_flavors(s, api)
    _wait_compute(s, api)
    if s.plugin:
        mc_agent.start(s, api, env)
    mc_tempest.write_workspace(s, image)
    log('cloud up: . %s/admin-openrc; tempest workspace %s',
        s.base, s.tempest_dir)


FLAVORS = [
    # id, name, ram, extra specs
    ('42', 'm1.nano', 128, {}),
    ('43', 'm1.micro', 192, {}),
    ('pt-vf1', 'pt.vf1', 128, {'pci_passthrough:alias': 'fake-vf:1'}),
    ('pt-pf1', 'pt.pf1', 128, {'pci_passthrough:alias': 'fake-pf:1'}),
    # The fake host has 2 VFs: this one never fits (NoValidHost tests).
    ('pt-vf3', 'pt.vf3', 128, {'pci_passthrough:alias': 'fake-vf:3'}),
]


def plugin_flavors(s: Settings) -> list[tuple[str, str, int,
                                               dict[str, str]]]:
    """The flavors of the plugin-enabled cloud: ``pci_passthrough:alias``
    and ``passthrough:*`` keys only. nova reports PCI in Placement and
    turns the alias into request groups itself; no ``resourcesN:`` twin.
    Each compute host has 1 whole PF and 4 VFs (2 on each of 2 PFs).
    """
    return [
        ('42', 'm1.nano', 128, {}),
        ('43', 'm1.micro', 192, {}),
        ('pt-vf1', 'pt.vf1', 128, {'pci_passthrough:alias': 'fake-vf:1'}),
        ('pt-pf1', 'pt.pf1', 128, {'pci_passthrough:alias': 'fake-pf:1'}),
        # 5 VFs: no host has them (NoValidHost from Placement).
        ('pt-vf5', 'pt.vf5', 128, {'pci_passthrough:alias': 'fake-vf:5'}),
        # Placement and nova's PciPassthroughFilter fit it (1 VF); the
        # plugin wants room for 4 more VFs to hot-plug and refuses.
        ('pt-vf1-hp4', 'pt.vf1.hp4', 128, {
            'pci_passthrough:alias': 'fake-vf:1',
            'passthrough:hotplug_headroom': 'fake-vf:4'}),
        # 2 VFs from 2 distinct PFs: the plugin keeps only such candidates.
        ('pt-vf2-aa', 'pt.vf2.aa', 128, {
            'pci_passthrough:alias': 'fake-vf:2',
            'passthrough:vf_anti_affinity': 'true'}),
    ]


def flavors(s: Settings) -> list[tuple[str, str, int, dict[str, str]]]:
    return plugin_flavors(s) if s.plugin else FLAVORS


def _seed_flavors(s: Settings, api: mc_api.Api) -> None:
    for fid, name, ram, specs in flavors(s):
        api.ensure_flavor(fid, name, ram, specs)
    log('flavors: %s', ', '.join(f[1] for f in flavors(s)))


def _wait_compute(s: Settings, api: mc_api.Api) -> None:
    """Every compute up, its PCI providers in placement, the hosts in
    cell1."""
    first = next(iter(COMPUTE_SERVICES.values()))
    lf = s.logs / f'{first}.log'
    want_up = len(COMPUTE_HOSTS)
    mc_procs.wait_for(f'{want_up} nova-compute services up',
                      lambda: api.computes_up() >= want_up, s.timeout,
                      name=first, run_dir=s.run, log_file=lf, interval=1)

    in_placement = mc_configs.pci_in_placement(s)
    # Each compute node's provider, and with [pci] report_in_placement its
    # PCI children too (nova writes the whole tree in one update): PF 01,
    # PF 02 and PF 03 (the VFs' parents).
    want = want_up * (4 if in_placement else 1)

    def providers() -> bool:
        return len(api.resource_providers()) >= want

    mc_procs.wait_for('resource providers (%d+)' % want, providers,
                      s.timeout, name=first, run_dir=s.run,
                      log_file=lf, interval=1)
    # nova-scheduler maps new hosts every 2 s ([scheduler]
    # discover_hosts_in_cells_interval); asking MariaDB is instant, while a
    # nova-manage run costs seconds: run it only if the mapping lags.
    nm = [s.bin('nova-manage'), '--config-file',
          str(s.etc / 'nova' / 'nova.conf'), 'cell_v2', 'discover_hosts']
    last = [0.0]  # the first miss runs discover_hosts at once

    def mapped() -> bool:
        found = mc_infra.mysql_query(
            s, 'SELECT host FROM nova_api.host_mappings')
        if all(host in found.split() for host in COMPUTE_HOSTS):
            return True
        if time.monotonic() - last[0] > 4:
            mc_procs.run(nm, 'discover_hosts', retries=3,
                         log_file=s.logs / 'discover.log')
            last[0] = time.monotonic()
        return False

    mc_procs.wait_for('host mappings of ' + ', '.join(COMPUTE_HOSTS),
                      mapped, s.timeout, interval=0.5)


# -- stop / status ------------------------------------------------------------

def stop(s: Settings) -> None:
    """Stop what start started (pid files), then the broker and the DB."""
    stopped: list[str] = []

    def one(name: str) -> Callable[[], None]:
        def step() -> None:
            if mc_procs.stop(name, s.run):
                stopped.append(name)
        return step

    _parallel(*[one(n) for n in _extras(s)])
    _parallel(*[one(n) for n in SERVICES])
    if mc_procs.recorded(s.run, 'rabbit'):
        stopped.append('rabbit')
    mc_infra.stop_rabbit(s)
    if mc_procs.stop('mysqld', s.run):
        stopped.append('mysqld')
    busy = [n for n in _ports()
            if not mc_procs.port_free(s.port(n))]
    log('stopped: %s', ', '.join(stopped) or 'nothing was running')
    for name in busy:
        log('WARNING: port %d (%s) still in use by %s', s.port(name), name,
            mc_procs.port_holder(s.port(name)))


def smoke(s: Settings) -> None:
    mc_smoke.smoke(s)


def status(s: Settings) -> bool:
    up = True
    for name in _extras(s) + SERVICES + ['rabbit', 'mysqld']:
        pid = mc_procs.recorded(s.run, name)
        up = up and pid is not None
        print(f'{name:15} ' + (f'pid {pid}' if pid else 'stopped'))
    return up
