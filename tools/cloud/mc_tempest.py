"""The tempest workspace and the admin openrc of the mini cloud."""

from __future__ import annotations

import subprocess

import mc_agent
import mc_configs
from mc_procs import CloudError
from mc_settings import PASSWORD, REGION, Settings

PCI_FLAVOR = 'pt-vf1'
PCI_FLAVOR_PF = 'pt-pf1'
# nova alone (stock fake driver): 2 VFs in all; with the plugin: 4 a host.
PCI_FLAVOR_OVER = {False: 'pt-vf3', True: 'pt-vf5'}
PCI_FLAVOR_REJECT = 'pt-vf1-hp4'
PCI_FLAVOR_ANTI_AFFINITY = 'pt-vf2-aa'
# What the plugin's tests may expect in Placement, by report_in_placement.
PLACEMENT_EXPECTATIONS = {
    True: {'resource_classes': 'CUSTOM_FAKE_VF,CUSTOM_FAKE_PF',
           'traits': 'CUSTOM_FAKE_PCI'},
    False: {'resource_classes': '', 'traits': ''},
}
# nova's own PCI providers carry this trait.
NOVA_PCI_TRAIT = 'COMPUTE_MANAGED_PCI_DEVICE'


def passthrough_values(s: Settings) -> dict[str, str]:
    """The ``[passthrough]`` section's values for this cloud."""
    nova = mc_configs.parse_ini((s.etc / 'nova' / 'nova.conf').read_text())
    enabled = ','.join(v for k, v in nova.get('filter_scheduler', [])
                       if k == 'enabled_filters')
    values = {'pci_flavor': PCI_FLAVOR,
              'pci_flavor_over': PCI_FLAVOR_OVER[s.plugin],
              'pci_flavor_reject': '', 'pci_flavor_pf': '',
              'pci_flavor_anti_affinity': '', 'agent_enabled': 'False',
              'inventory': 'own', 'device_change_command': '',
              'map_command': '', 'report_command': '',
              'plugin_scheduler': str('PciPoolFilter' in enabled)}
    values.update(PLACEMENT_EXPECTATIONS[mc_configs.pci_in_placement(s)])
    if s.plugin:
        hooks = mc_agent.hostdevs_command(s)
        values.update({
            # nova's own providers: the agents write none.
            'resource_classes': '{},{}'.format(
                s.resource_class('vf'), s.resource_class('pf')),
            'traits': NOVA_PCI_TRAIT,
            'agent_enabled': 'True',
            'inventory': 'nova',
            'device_change_command': hooks,
            'map_command': hooks + ' map',
            'report_command': hooks + ' report',
            'pci_flavor_reject': PCI_FLAVOR_REJECT,
            'pci_flavor_pf': PCI_FLAVOR_PF,
            'pci_flavor_anti_affinity': PCI_FLAVOR_ANTI_AFFINITY})
    return values


def write_workspace(s: Settings, image_id: str) -> None:
    """What `tempest init` makes, without its ~/.tempest registry.

    `tempest init` records every workspace in ~/.tempest/workspace.yaml and
    refuses a second one at the same path; a CI run from empty needs none
    of that, so the harness writes the few files itself.
    """
    ws = s.tempest_dir
    for sub in ('etc', 'logs', 'tempest_lock'):
        (ws / sub).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [s.bin('python'), '-c',
         'import os, tempest; print(os.path.dirname(tempest.__file__))'],
        capture_output=True, text=True, check=False)
    if proc.returncode:
        raise CloudError(f'tempest is not importable in {s.venv}: '
                         f'{proc.stderr.strip()[-300:]}')
    site = proc.stdout.strip()
    (ws / '.stestr.conf').write_text(
        f'[DEFAULT]\ntest_path={site}/test_discover\ntop_dir={site}\n'
        'group_regex=([^\\.]*\\.)*\n')
    (ws / 'etc' / 'tempest.conf').write_text(mc_configs.render(
        'tempest.conf', s, image_id=image_id, **passthrough_values(s)))
    (s.base / 'admin-openrc').write_text(
        'export OS_AUTH_URL={} OS_USERNAME=admin OS_PASSWORD={}\n'
        'export OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default\n'
        'export OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3\n'
        'export OS_REGION_NAME={} PYTHONWARNINGS=ignore\n'
        'export PATH={}/bin:$PATH\n'.format(
            s.url('keystone'), PASSWORD, REGION, s.venv))
