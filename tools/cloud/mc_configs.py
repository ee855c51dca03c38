"""Render the services' configuration files from templates/ and the hooks."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

from mc_procs import CloudError
from mc_settings import (
    COMPUTE_HOST, COMPUTE_HOSTS, PASSWORD, REGION, Settings)

TEMPLATES = Path(__file__).resolve().parent / 'templates'
# nova loads compute drivers only from the nova.virt package: with
# --fake-pci-ids, mc_fakevirt.py is linked into the harness venv's nova.virt.
HEX_MODULE = 'minicloud_hexpci'
HEX_DRIVER = HEX_MODULE + '.HexPciFakeDriver'

# name -> (module, env var of its config dir, config dir below etc/)
WSGI_APPS = {
    'keystone': ('keystone.wsgi.api', 'OS_KEYSTONE_CONFIG_DIR', 'keystone'),
    'placement': ('placement.wsgi.api', 'OS_PLACEMENT_CONFIG_DIR',
                  'placement'),
    'glance': ('glance.wsgi.api', 'OS_GLANCE_CONFIG_DIR', 'glance'),
    'nova-api': ('nova.wsgi.osapi_compute', 'OS_NOVA_CONFIG_DIR', 'nova'),
}

# Keystone's WSGI loader parses sys.argv with oslo.config, and gunicorn's
# own arguments break that: the wrapper clears argv before importing it.
WSGI_WRAPPER = '''"""WSGI entry of %(name)s for gunicorn (by minicloud)."""
import os
import sys

sys.argv = sys.argv[:1]
os.environ.setdefault(%(var)r, %(dir)r)
from %(module)s import application  # noqa: E402,F401
'''


def render(template: str, s: Settings, **extra: str) -> str:
    values = template_values(s)
    values.update(extra)
    text = (TEMPLATES / template).read_text()
    try:
        return string.Template(text).substitute(values)
    except KeyError as exc:
        raise CloudError(
            f'template {template} uses unknown ${{{exc.args[0]}}}') from None


def template_values(s: Settings) -> dict[str, str]:
    v = {
        'base': str(s.base), 'etc': str(s.etc), 'data': str(s.data),
        'logs': str(s.logs), 'run': str(s.run), 'password': PASSWORD,
        'region': REGION, 'compute_host': COMPUTE_HOST,
        'tempest_dir': str(s.tempest_dir),
        'keystone_url': s.url('keystone'), 'glance_url': s.url('glance'),
        'rabbit_port': str(s.port('rabbit')),
        'mysql_port': str(s.port('mysql')),
        'placement_db': s.mysql_url('placement'),
        'nova_api_db': s.mysql_url('nova_api'),
        'nova_db': s.mysql_url('nova'),
        'compute_driver': (HEX_DRIVER if s.fake_pci_ids
                           else 'fake.FakeDriverWithPciResources'),
        'hosts': str(s.hosts_dir), 'reports': str(s.reports_dir),
        'ledger': s.ledger_url,
    }
    v['pci_vendor'], v['pci_pf'], v['pci_vf'] = s.pci_ids
    for user in ('placement', 'glance', 'nova'):
        v['authtoken_' + user] = _auth_section(
            s, 'keystone_authtoken', user, www=True)
    for group in ('placement', 'neutron'):
        v['ksa_' + group] = _auth_section(s, group, 'nova')
    return v


def _auth_section(s: Settings, group: str, user: str,
                  www: bool = False) -> str:
    lines = [f'[{group}]']
    if www:
        lines.append('www_authenticate_uri = {}'.format(s.url('keystone')))
    lines += [
        'auth_url = {}'.format(s.url('keystone')),
        'auth_type = password',
        f'username = {user}',
        f'password = {PASSWORD}',
        'project_name = service',
        'user_domain_name = Default',
        'project_domain_name = Default',
        f'region_name = {REGION}',
    ]
    if group == 'neutron':
        # The stand-in is not in the catalog under a name nova guesses.
        lines.append('endpoint_override = {}'.format(s.url('neutron-stub')))
    return '\n'.join(lines)


def pci_in_placement(s: Settings) -> bool:
    """Whether the written nova.conf reports PCI devices to Placement."""
    nova = parse_ini((s.etc / 'nova' / 'nova.conf').read_text())
    return any(k == 'report_in_placement' and v.lower() == 'true'
               for k, v in nova.get('pci', []))


def _link_fake_driver(s: Settings) -> None:
    virt = sorted(s.venv.glob('lib/python3*/site-packages/nova/virt'))
    if not virt:
        raise CloudError(f'no nova/virt in {s.venv}: run install first')
    link = virt[-1] / (HEX_MODULE + '.py')
    target = TEMPLATES.parent / 'mc_fakevirt.py'
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


# -- INI merging (keeps repeated keys: nova's MultiStrOpts) -----------------

Section = list[tuple[str, str]]


def parse_ini(text: str, origin: str = 'nova.conf') -> dict[str, Section]:
    """Sections in order, each a list of (key, raw value) with repeats."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    for num, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in '#;':
            continue
        if stripped.startswith('[') and stripped.endswith(']'):
            current = sections.setdefault(stripped[1:-1].strip(), [])
        elif line[0] in ' \t' and current:
            key, value = current[-1]
            current[-1] = (key, value + '\n ' + stripped)
        elif '=' in stripped and current is not None:
            key, _, value = stripped.partition('=')
            current.append((key.strip(), value.strip()))
        else:
            raise CloudError(f'{origin} line {num}: expected [section] or '
                             f'key = value, got {line!r}')
    return sections


def merge_ini(base: str, extra: str, origin: str) -> str:
    """``base`` with ``extra`` laid over it: extra's keys replace base's."""
    merged = parse_ini(base)
    for name, items in parse_ini(extra, origin).items():
        keys = {k for k, _ in items}
        kept = [(k, v) for k, v in merged.get(name, []) if k not in keys]
        merged[name] = kept + items
    out = ['# Generated by tools/cloud/minicloud.py: template + extras.']
    for name, items in merged.items():
        out.append(f'\n[{name}]')
        out += ['{} = {}'.format(*kv) for kv in items]
    return '\n'.join(out) + '\n'


def write_all(s: Settings) -> None:
    """Write every service's config and the WSGI wrappers under $BASE."""
    for sub in ('keystone', 'placement', 'glance', 'nova'):
        (s.etc / sub).mkdir(parents=True, exist_ok=True)
    for sub in ('glance/images', 'glance/staging', 'glance/tasks',
                'nova/instances', 'locks'):
        (s.data / sub).mkdir(parents=True, exist_ok=True)
    (s.etc / 'keystone' / 'keystone.conf').write_text(
        render('keystone.conf', s))
    (s.etc / 'placement' / 'placement.conf').write_text(
        render('placement.conf', s))
    (s.etc / 'glance' / 'glance-api.conf').write_text(
        render('glance-api.conf', s))
    nova = render('nova.conf', s)
    if s.plugin:
        nova = merge_ini(nova, render('nova-plugin.conf', s),
                         'templates/nova-plugin.conf')
    for num, extra in enumerate(s.nova_conf_extra, 1):
        nova = merge_ini(nova, extra, f'--nova-conf-extra #{num}')
    (s.etc / 'nova' / 'nova.conf').write_text(nova)
    write_compute_confs(s)
    if s.plugin:
        write_agent_confs(s, nova)
    for src, dst in (('etc/glance/glance-api-paste.ini', 'glance'),
                     ('etc/nova/api-paste.ini', 'nova')):
        path = s.venv / src
        if not path.exists():
            raise CloudError(
                f'{path} missing: run `minicloud.py install` first')
        shutil.copy(path, s.etc / dst)
    if s.fake_pci_ids:
        _link_fake_driver(s)
    wsgi = s.base / 'wsgi'
    wsgi.mkdir(exist_ok=True)
    for name, (module, var, sub) in WSGI_APPS.items():
        (wsgi / ('{}_app.py'.format(name.replace('-', '_')))).write_text(
            WSGI_WRAPPER % {'name': name, 'var': var,
                            'dir': str(s.etc / sub), 'module': module})


def compute_conf_path(s: Settings, host: str) -> Path:
    """nova-compute of ``host`` reads nova.conf, then this file."""
    return s.etc / 'nova' / f'compute-{host}.conf'


def write_compute_confs(s: Settings) -> None:
    """What differs between the compute hosts: name and state dirs."""
    for host in COMPUTE_HOSTS:
        state = s.data / f'nova-{host}'
        (state / 'instances').mkdir(parents=True, exist_ok=True)
        compute_conf_path(s, host).write_text(
            f'# nova-compute of {host}, laid over nova.conf by minicloud.py.\n'
            f'[DEFAULT]\nhost = {host}\nstate_path = {state}\n'
            f'instances_path = {state}/instances\n')


def agent_conf_path(s: Settings, host: str) -> Path:
    return s.etc / 'passthrough' / f'agent-{host}.conf'


def write_agent_confs(s: Settings, nova_conf: str) -> None:
    """One passthrough-agent config per compute host, with nova's specs.

    The agent whitelists exactly what nova-compute does: the ``[pci]
    device_spec`` lines of the nova.conf just written (hooks included).
    It runs the placement driver in nova-inventory mode, as nova-scheduler
    does: no provider of its own, its report in the shared file store.
    """
    specs = [v for k, v in parse_ini(nova_conf).get('pci', [])
             if k == 'device_spec']
    if not specs:
        raise CloudError('nova.conf has no [pci] device_spec: the agent '
                         'would report no device')
    (s.etc / 'passthrough').mkdir(parents=True, exist_ok=True)
    for host in COMPUTE_HOSTS:
        agent_conf_path(s, host).write_text(render(
            'passthrough-agent.conf', s, host=host,
            host_tree=str(s.host_tree(host)),
            device_spec='\n'.join(f'device_spec = {v}' for v in specs),
            placement_auth=_auth_section(s, 'placement', 'nova')))
