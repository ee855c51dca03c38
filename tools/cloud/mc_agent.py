"""passthrough-agent for mc-compute: its fake sysfs, its daemons, its wait."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import mc_api
import mc_configs
import mc_procs
from mc_settings import COMPUTE_HOST, Settings

HOSTDEVS = Path(__file__).resolve().parent / 'mc_hostdevs.py'
# Marks the agent's providers (passthrough_plugin/store/placement/mapping.py).
DEVICE_TRAIT = 'CUSTOM_PASSTHROUGH_DEVICE'


def hostdevs_command(s: Settings) -> str:
    """The hook the tempest test runs with ``remove`` or ``restore``."""
    return f"{s.bin('python')} {HOSTDEVS} --base {s.base}"


def build_trees(s: Settings, env: Mapping[str, str]) -> None:
    """The fake sysfs trees (the venv has the plugin's FakeSysfs)."""
    assert s.fake_pci_ids  # noqa: S101 - set whenever s.plugin is
    mc_procs.run([s.bin('python'), str(HOSTDEVS), 'build', '--base',
                  str(s.base), '--ids', s.fake_pci_ids],
                 'building the fake sysfs of ' + COMPUTE_HOST, env=env,
                 log_file=s.logs / 'setup.log')


def start(s: Settings, api: mc_api.Api, env: Mapping[str, str]) -> None:
    """Start one agent per store after nova made the compute node provider.

    Before it, the placement agent would create the compute node provider
    itself, and nova-compute's own (another uuid, the same name) would then
    be refused.
    """
    build_trees(s, env)
    s.reports_dir.mkdir(parents=True, exist_ok=True)
    for store in mc_configs.AGENT_STORES:
        mc_procs.spawn(f'extra-agent_{store}', [
            s.bin('passthrough-agent'), 'run', '--config-file',
            str(mc_configs.agent_conf_path(s, store))], s.run, s.logs,
            env=env)
    report = s.reports_dir / f'{COMPUTE_HOST}.json'
    devices: list[dict[str, object]] = []

    def published() -> bool:
        try:
            devices[:] = json.loads(report.read_text())['devices']
        except (OSError, ValueError, KeyError):
            return False
        return bool(devices)

    mc_procs.wait_for('agent report (file store)', published, s.timeout,
                      name='extra-agent_file', run_dir=s.run,
                      log_file=s.logs / 'extra-agent_file.out', interval=0.5)
    want = len(expected_providers(devices))
    mc_procs.wait_for(
        f'{want} agent providers in Placement',
        lambda: len(device_providers(api)) >= want, s.timeout,
        name='extra-agent_placement', run_dir=s.run,
        log_file=s.logs / 'extra-agent_placement.out', interval=0.5)


def expected_providers(devices: list[dict[str, object]]) -> set[object]:
    """One provider per PF with listed VFs and per PF/PCI device listed
    (doc/placement.rst), so hooks that change device_spec still wait right.
    """
    return {d['parent_address'] if d['dev_type'] == 'type-VF'
            else d['address'] for d in devices}


def device_providers(api: mc_api.Api) -> list[dict[str, object]]:
    """The agent's providers; none while its trait does not exist yet.

    The agent creates the trait on its first publish; until then
    Placement answers the query with 400 "No such trait".
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

