"""passthrough-agent per compute host: fake sysfs, daemons, their reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import mc_api
import mc_configs
import mc_procs
from mc_settings import COMPUTE_HOSTS, Settings

HOSTDEVS = Path(__file__).resolve().parent / 'mc_hostdevs.py'
# Marks the agent's own providers (inventory = own): none may exist here.
DEVICE_TRAIT = 'CUSTOM_PASSTHROUGH_DEVICE'


def hostdevs_command(s: Settings) -> str:
    """The hooks of the tempest tests: ``remove`` / ``restore``, ``map
    HOST UUID``, ``report HOST``."""
    return f"{s.bin('python')} {HOSTDEVS} --base {s.base}"


def build_trees(s: Settings, env: Mapping[str, str]) -> None:
    """The fake sysfs trees (the venv has the plugin's FakeSysfs)."""
    assert s.fake_pci_ids  # noqa: S101 - set whenever s.plugin is
    mc_procs.run([s.bin('python'), str(HOSTDEVS), 'build', '--base',
                  str(s.base), '--ids', s.fake_pci_ids],
                 'building the fake sysfs of ' + ', '.join(COMPUTE_HOSTS),
                 env=env, log_file=s.logs / 'setup.log')


def service_name(host: str) -> str:
    return f'extra-agent_{host}'


def start(s: Settings, api: mc_api.Api, env: Mapping[str, str]) -> None:
    """Start one agent per compute host; wait for every host's report.

    The agents run the placement driver in nova-inventory mode: they
    write no provider (nova's are the inventory) and keep their reports
    in the file store nova-scheduler reads.
    """
    build_trees(s, env)
    s.reports_dir.mkdir(parents=True, exist_ok=True)
    for host in COMPUTE_HOSTS:
        mc_procs.spawn(service_name(host), [
            s.bin('passthrough-agent'), 'run', '--config-file',
            str(mc_configs.agent_conf_path(s, host))], s.run, s.logs,
            env=env)
    for host in COMPUTE_HOSTS:
        report = s.reports_dir / f'{host}.json'

        def published(report: Path = report) -> bool:
            try:
                return bool(json.loads(report.read_text())['devices'])
            except (OSError, ValueError, KeyError):
                return False

        mc_procs.wait_for(f'agent report of {host} (file store)', published,
                          s.timeout, name=service_name(host), run_dir=s.run,
                          log_file=s.logs / f'{service_name(host)}.out',
                          interval=0.5)
    ours = device_providers(api)
    if ours:
        raise mc_procs.CloudError(
            'the agents run with [placement_store] inventory = nova but '
            'Placement holds providers of theirs: {}'.format(
                ', '.join(str(rp['name']) for rp in ours)))


def device_providers(api: mc_api.Api) -> list[dict[str, object]]:
    """The agent's own providers; none while its trait does not exist.

    Placement answers 400 "No such trait" until some agent created it.
    """
    url = (api.s.url('placement')
           + f'/resource_providers?required={DEVICE_TRAIT}')
    status, body = api.request(
        'GET', url, headers={'OpenStack-API-Version': 'placement 1.18'})
    if status == 400 and DEVICE_TRAIT in str(body):
        return []
    if status != 200:
        raise mc_procs.CloudError(
            f'GET {url} answered {status}: {str(body)[:500]}')
    return list(body['resource_providers'])
