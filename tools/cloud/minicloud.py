#!/usr/bin/env python3
"""A local OpenStack cloud on 127.0.0.1 for the plugin's tempest tests.

Real Keystone, Placement, Glance and nova-api/conductor/scheduler/compute
(``fake.FakeDriverWithPciResources``: three PFs with one VF each), Debian's
MariaDB and RabbitMQ as plain processes, and a read-only Neutron stand-in.
By default the plugin is enabled: PciPoolFilter and PciPoolWeigher in
nova-scheduler, passthrough-agent publishing mc-compute's fake sysfs to the
file store and to Placement (``--no-plugin``: nova alone).
Stdlib only: runs with any python3 >= 3.10; the services run in their own
venv.  See README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mc_cloud  # noqa: E402
import mc_infra  # noqa: E402
from mc_procs import CloudError, log  # noqa: E402
from mc_settings import (  # noqa: E402
    DEFAULT_PCI_IDS, Settings, default_base, load, parse_pci_ids)


def _settings(args: argparse.Namespace) -> Settings:
    base = Path(args.base).resolve() if args.base else default_base()
    saved = load(base)
    if args.clear_hooks:
        for key in ('nova_conf_extra', 'env', 'services', 'extra_pip'):
            saved.pop(key, None)
    venv = args.venv or saved.get('venv') or base / 'venv'
    repo: Path | None
    if args.no_repo:
        repo = None
    elif args.repo:
        repo = Path(args.repo).resolve()
    elif 'repo' in saved:
        repo = Path(saved['repo']) if saved['repo'] else None
    else:
        repo = Settings.repo
    env = dict(saved.get('env', {}))
    for item in args.env:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise CloudError(f'--env {item!r}: expected KEY=VALUE')
        env[key] = value
    services = dict(saved.get('services', {}))
    for item in args.service:
        key, sep, value = item.partition('=')
        if not sep or not key.isidentifier() or not value.strip():
            raise CloudError(f'--service {item!r}: expected NAME=COMMAND '
                             'with NAME made of letters, digits and _')
        services[key] = value
    extra_nova = list(saved.get('nova_conf_extra', []))
    for item in args.nova_conf_extra:
        text = Path(item).read_text() if os.path.isfile(item) else item
        if '[' not in text:
            raise CloudError(f'--nova-conf-extra {item!r}: not a file and '
                             'not INI text with a [section]')
        extra_nova.append(text)
    if 'MINICLOUD_NOVA_CONF_EXTRA' in os.environ:
        extra_nova.append(Path(
            os.environ['MINICLOUD_NOVA_CONF_EXTRA']).read_text())
    s = Settings(
        base=base, venv=Path(venv), repo=repo,
        port_offset=(args.port_offset if args.port_offset is not None
                     else saved.get('port_offset', 0)),
        extra_pip=saved.get('extra_pip', []) + [
            p for p in args.pip if p not in saved.get('extra_pip', [])],
        nova_conf_extra=extra_nova, env=env, services=services,
        timeout=args.timeout or saved.get('timeout', 180),
        use_cache=not args.no_cache,
        fake_pci_ids=_fake_pci_ids(args, saved),
        plugin=(args.plugin if args.plugin is not None
                else bool(saved.get('plugin', True))))
    if s.plugin:
        if s.repo is None:
            raise CloudError('the plugin-enabled cloud installs this '
                             'checkout: drop --no-repo or pass --no-plugin')
        # The agent's HostReport and nova's aliases need 4-hex ids.
        s.fake_pci_ids = s.fake_pci_ids or DEFAULT_PCI_IDS
    return s


def _fake_pci_ids(args: argparse.Namespace,
                  saved: dict[str, object]) -> str | None:
    value = args.fake_pci_ids
    if value is None:
        kept = saved.get('fake_pci_ids')
        return str(kept) if kept and not args.clear_hooks else None
    if value in ('', 'stock'):
        return None
    try:
        return ':'.join(parse_pci_ids(value))
    except ValueError as exc:
        raise CloudError(f'--fake-pci-ids: {exc}') from None


def _timed(timings: dict[str, float], name: str,
           step: Callable[[], None]) -> None:
    t0 = time.monotonic()
    step()
    timings[name] = round(time.monotonic() - t0, 1)
    log('%s done in %.1fs', name, timings[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='install: venv + pip (+ apt rabbitmq/mariadb); setup: wipe '
               'state, configs, db syncs; start: services, catalog, image, '
               'flavors, tempest workspace; smoke: boot+delete a PCI server; '
               'stop: kill what start started; all: install+setup+start.')
    parser.add_argument('command', choices=[
        'install', 'setup', 'start', 'stop', 'status', 'smoke', 'all'])
    parser.add_argument('--base', help='state dir (default $MINICLOUD_BASE '
                        'or ${TMPDIR:-/tmp}/passthrough-cloud)')
    parser.add_argument('--venv', help='services venv (default $BASE/venv)')
    parser.add_argument('--repo', help='project checkout to pip install -e '
                        '(default: the one holding this script)')
    parser.add_argument('--no-repo', action='store_true',
                        help='do not install a project checkout')
    parser.add_argument('--pip', action='append', default=[],
                        metavar='SPEC', help='extra pip requirement for the '
                        'services venv (repeatable)')
    parser.add_argument('--nova-conf-extra', action='append', default=[],
                        metavar='FILE_OR_INI', help='INI file or text merged '
                        'into nova.conf: a key given here replaces every '
                        'default value of that key (repeatable; also '
                        '$MINICLOUD_NOVA_CONF_EXTRA=FILE)')
    parser.add_argument('--env', action='append', default=[],
                        metavar='KEY=VALUE', help='extra environment of the '
                        'OpenStack services (repeatable)')
    parser.add_argument('--service', action='append', default=[],
                        metavar='NAME=COMMAND', help='extra daemon started '
                        'after nova-compute with the services\' env, e.g. '
                        'agent="passthrough-agent --config-file F" '
                        '(repeatable; $BASE/venv/bin is first on its PATH)')
    parser.add_argument('--clear-hooks', action='store_true',
                        help='forget the saved --nova-conf-extra, --env, '
                        '--service and --pip values')
    parser.add_argument('--fake-pci-ids', metavar='VENDOR:PF:VF',
                        help='run mc_fakevirt.HexPciFakeDriver: the same '
                        'fake PFs/VFs with these hex ids (e.g. '
                        '8086:1528:1515); "stock" goes back to nova\'s '
                        'fake ids')
    plugin = parser.add_mutually_exclusive_group()
    plugin.add_argument('--plugin', dest='plugin', action='store_true',
                        default=None, help='the plugin-enabled cloud (the '
                        'default): hex fake PCI ids, PciPoolFilter and '
                        'PciPoolWeigher in nova-scheduler, passthrough-agent '
                        'publishing mc-compute to the file store and '
                        'Placement')
    plugin.add_argument('--no-plugin', dest='plugin', action='store_false',
                        help='nova alone: its PCI devices in Placement '
                        '([pci] report_in_placement), no agent')
    parser.add_argument('--no-cache', action='store_true',
                        help='setup: run every migration even if '
                        '$BASE/cache holds their result for these configs')
    parser.add_argument('--port-offset', type=int, default=None,
                        help='add this to every port (default 0)')
    parser.add_argument('--timeout', type=int, default=None,
                        help='seconds to wait for each service (default 180)')
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    try:
        s = _settings(args)
        s.base.mkdir(parents=True, exist_ok=True)
        s.logs.mkdir(parents=True, exist_ok=True)
        s.run.mkdir(parents=True, exist_ok=True)
        cmd = args.command
        if cmd not in ('status', 'smoke'):
            s.save()
        if cmd in ('setup', 'start', 'all') and (
                s.nova_conf_extra or s.env or s.services or s.fake_pci_ids):
            # Hooks are saved in $BASE/minicloud.json: say they apply.
            log('hooks: %d nova.conf extra(s), env %s, services %s, fake '
                'PCI ids %s (--clear-hooks forgets them)',
                len(s.nova_conf_extra), sorted(s.env), sorted(s.services),
                s.fake_pci_ids or 'stock')
        if cmd in ('setup', 'start', 'all'):
            log('profile: %s', 'plugin (--no-plugin: nova alone)'
                if s.plugin else 'nova alone (--plugin: with the plugin)')
        if cmd in ('install', 'all'):
            _timed(timings, 'install', lambda: mc_infra.install(s))
        if cmd in ('setup', 'all'):
            _timed(timings, 'setup', lambda: mc_cloud.setup(s))
        if cmd in ('start', 'all'):
            _timed(timings, 'start', lambda: mc_cloud.start(s))
        if cmd == 'smoke':
            _timed(timings, 'smoke', lambda: mc_cloud.smoke(s))
        if cmd == 'stop':
            _timed(timings, 'stop', lambda: mc_cloud.stop(s))
        if cmd == 'status':
            return 0 if mc_cloud.status(s) else 1
        if timings:
            _save_timings(s, timings)
    except CloudError as exc:
        log('ERROR: %s', exc)
        return 1
    except KeyboardInterrupt:
        log('interrupted; `%s stop` stops what was started', sys.argv[0])
        return 130
    return 0


def _save_timings(s: Settings, timings: dict[str, float]) -> None:
    path = s.base / 'timings.json'
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(timings)
    path.write_text(json.dumps(old, indent=2, sort_keys=True) + '\n')
    log('timings: %s',
        ', '.join(f'{k} {v:.1f}s' for k, v in timings.items()))


if __name__ == '__main__':
    sys.exit(main())
