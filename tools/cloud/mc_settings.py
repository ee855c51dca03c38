"""Settings of one mini cloud: where it lives, its ports and its hooks."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

# The services and their default ports on 127.0.0.1; ``--port-offset``
# shifts them all, so two clouds (or a developer's own services) can coexist.
DEFAULT_PORTS: dict[str, int] = {
    'keystone': 5000,
    'placement': 8778,
    'glance': 9292,
    'nova-api': 8774,
    'neutron-stub': 9696,
    'mysql': 3306,
    'rabbit': 5672,
    'rabbit-dist': 25672,
    'epmd': 4369,
}

REPO_DEFAULT = Path(__file__).resolve().parents[2]
# Every account of the throw-away loopback cloud; not a secret.
PASSWORD = 'secret'  # noqa: S105
REGION = 'RegionOne'
# Two compute hosts, each its own nova-compute (the service name of its
# pid file and log) with nova's fake PCI driver, its own fake sysfs tree
# and its own passthrough-agent.
COMPUTE_SERVICES = {'mc-compute': 'nova-compute',
                    'mc-compute2': 'nova-compute2'}
COMPUTE_HOSTS = tuple(COMPUTE_SERVICES)
COMPUTE_HOST = COMPUTE_HOSTS[0]

# What the harness venv gets; pip resolves keystone/glance/tempest to the
# releases that go with these pins.
PIP_PACKAGES = [
    'nova==34.0.0',
    'openstack-placement==16.0.0',
    'SQLAlchemy>=2.0,<2.1',
    'keystone',
    'glance',
    'tempest',
    'gunicorn',
    'PyMySQL',
    'python-openstackclient',
]


DEFAULT_PCI_IDS = '8086:1528:1515'


def parse_pci_ids(text: str) -> tuple[str, str, str]:
    """``VENDOR:PF_PRODUCT:VF_PRODUCT`` as three 4-hex-digit strings.

    :raises ValueError: naming the value and the expected form.
    """
    parts = text.lower().split(':')
    if len(parts) != 3 or not all(
            len(p) == 4 and all(c in '0123456789abcdef' for c in p)
            for p in parts):
        raise ValueError(f'{text!r} is not VENDOR:PF_PRODUCT:VF_PRODUCT '
                         f'with 4 hex digits each, e.g. {DEFAULT_PCI_IDS}')
    return parts[0], parts[1], parts[2]


@dataclasses.dataclass
class Settings:
    """Everything a subcommand needs; saved as ``$BASE/minicloud.json``."""

    base: Path
    venv: Path
    repo: Path | None = REPO_DEFAULT
    port_offset: int = 0
    extra_pip: list[str] = dataclasses.field(default_factory=list)
    nova_conf_extra: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    # name -> command line of an extra daemon (e.g. passthrough-agent),
    # started after nova-compute with the services' env, stopped first.
    services: dict[str, str] = dataclasses.field(default_factory=dict)
    timeout: int = 180
    # Reuse the migrated databases of an earlier setup with the same configs
    # and packages ($BASE/cache); --no-cache always migrates.
    use_cache: bool = True
    # VENDOR:PF_PRODUCT:VF_PRODUCT: run mc_fakevirt.HexPciFakeDriver, the
    # same fake devices with hex ids; None: nova's stock fake ids.
    fake_pci_ids: str | None = None
    # The plugin-enabled cloud (the default): hex ids, nova reporting PCI
    # in Placement, PciPoolFilter/PciPoolWeigher in nova-scheduler, and a
    # passthrough-agent per compute host in nova-inventory mode (no
    # providers of its own; its reports in the file store, see
    # mc_agent.py). False: nova alone, with [pci] report_in_placement.
    plugin: bool = True

    @property
    def pci_ids(self) -> tuple[str, str, str]:
        """(vendor, PF product, VF product) the fake devices report."""
        if self.fake_pci_ids:
            return parse_pci_ids(self.fake_pci_ids)
        return ('fake-vendor_id', 'fake-product_id', 'fake-product_id')

    def resource_class(self, which: str) -> str:
        """The agent's default class of the fake 'pf' or 'vf' devices."""
        vendor, pf, vf = self.pci_ids
        return 'CUSTOM_PCI_{}_{}'.format(
            vendor, pf if which == 'pf' else vf).upper()

    @property
    def etc(self) -> Path:
        return self.base / 'etc'

    @property
    def data(self) -> Path:
        return self.base / 'data'

    @property
    def logs(self) -> Path:
        return self.base / 'logs'

    @property
    def run(self) -> Path:
        return self.base / 'run'

    @property
    def hosts_dir(self) -> Path:
        """The compute hosts' fake sysfs trees (mc_hostdevs.py), one
        directory per host."""
        return self.data / 'hosts'

    def host_tree(self, host: str) -> Path:
        return self.hosts_dir / host

    @property
    def domains_dir(self) -> Path:
        """Per host, one libvirt-style domain XML per running server
        (written by mc_fakevirt: what libvirt would show)."""
        return self.data / 'domains'

    @property
    def ledger_url(self) -> str:
        """The agents' ledger ([lifecycle] connection)."""
        return f'sqlite:///{self.data}/ledger.sqlite'

    @property
    def reports_dir(self) -> Path:
        """The plugin's file report store (scheduler and agent share it)."""
        return self.data / 'reports'

    @property
    def tempest_dir(self) -> Path:
        return self.base / 'tempest'

    @property
    def state_file(self) -> Path:
        return self.base / 'minicloud.json'

    def port(self, service: str) -> int:
        return DEFAULT_PORTS[service] + self.port_offset

    def url(self, service: str) -> str:
        suffix = {'keystone': '/v3', 'nova-api': '/v2.1'}.get(service, '')
        return f'http://127.0.0.1:{self.port(service)}{suffix}'

    def bin(self, name: str) -> str:
        return str(self.venv / 'bin' / name)

    def mysql_url(self, db: str) -> str:
        return (f'mysql+pymysql://root:{PASSWORD}@127.0.0.1:'
                f'{self.port("mysql")}/{db}?charset=utf8')

    def to_json(self) -> str:
        d: dict[str, Any] = dataclasses.asdict(self)
        for key in ('base', 'venv', 'repo'):
            d[key] = None if d[key] is None else str(d[key])
        return json.dumps(d, indent=2, sort_keys=True)

    def save(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(self.to_json() + '\n')


def default_base() -> Path:
    return Path(os.environ.get('MINICLOUD_BASE') or Path(
        os.environ.get('TMPDIR', '/tmp')) / 'passthrough-cloud')  # noqa: S108


def load(base: Path) -> dict[str, Any]:
    """The settings saved by an earlier subcommand, or {} for a new BASE."""
    path = base / 'minicloud.json'
    if not path.exists():
        return {}
    saved: dict[str, Any] = json.loads(path.read_text())
    return saved
