"""Host readiness checks for passthrough: IOMMU, interrupts, vfio, SR-IOV."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from oslo_config import cfg

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import nova_spec
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.pci import device_spec as device_spec_mod
from passthrough_plugin.pci import report as report_mod

PASS, WARN, FAIL = 'pass', 'warn', 'fail'
NOVA_CONF = '/etc/nova/nova.conf'
# Devices named in one check's detail; the rest are counted.
SHOWN = 10
# VT-d extended capability register: bit 3 is Interrupt Remapping support.
ECAP_IR = 1 << 3


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    hint: str = ''

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def check_acpi(fs: sysfs_mod.Sysfs) -> Check:
    tables = set(fs.listdir('firmware/acpi/tables'))
    found = sorted(tables & {'DMAR', 'IVRS'})
    if found:
        return Check('iommu-firmware', PASS,
                     'ACPI %s table present' % '/'.join(found))
    return Check('iommu-firmware', FAIL,
                 'no DMAR (Intel VT-d) or IVRS (AMD-Vi) ACPI table',
                 'enable VT-d / AMD-Vi (IOMMU) in the firmware setup')


def check_cmdline(fs: sysfs_mod.Sysfs) -> Check:
    words = (fs.proc('cmdline') or '').split()
    if 'intel_iommu=on' in words:
        return Check('iommu-cmdline', PASS, 'intel_iommu=on')
    amd = [w for w in words if w.startswith('amd_iommu')]
    if amd and 'amd_iommu=off' not in amd:
        return Check('iommu-cmdline', PASS, ' '.join(amd))
    if 'intel_iommu=off' in words or 'amd_iommu=off' in words:
        return Check('iommu-cmdline', FAIL,
                     'the IOMMU is switched off on the kernel command line',
                     'remove intel_iommu=off / amd_iommu=off')
    hint = ('add intel_iommu=on (Intel) to GRUB_CMDLINE_LINUX in '
            '/etc/default/grub, run update-grub and reboot')
    if discovery.iommu_enabled(fs):
        return Check('iommu-cmdline', WARN,
                     'no intel_iommu=on/amd_iommu on the command line; the '
                     'IOMMU is on by the kernel default', hint)
    return Check('iommu-cmdline', FAIL,
                 'neither intel_iommu=on nor amd_iommu on the kernel '
                 'command line', hint)


def check_groups(fs: sysfs_mod.Sysfs) -> Check:
    groups = fs.listdir('kernel/iommu_groups')
    if groups:
        return Check('iommu-groups', PASS,
                     '%d IOMMU groups in /sys/kernel/iommu_groups'
                     % len(groups))
    return Check('iommu-groups', FAIL,
                 '/sys/kernel/iommu_groups is empty: the IOMMU is off',
                 'fix the two IOMMU checks above and reboot')


def check_interrupt_remapping(fs: sysfs_mod.Sysfs) -> Check:
    state = discovery.interrupt_remapping(fs)
    if state:
        return Check('interrupt-remapping', PASS,
                     'remapped MSI interrupts (IR-) in /proc/interrupts')
    supported = False
    for unit in fs.listdir('class/iommu'):
        ecap = fs.read_int('class/iommu/%s/intel-iommu/ecap' % unit, 16)
        supported = supported or bool(ecap is not None and ecap & ECAP_IR)
    if supported:
        return Check('interrupt-remapping', WARN,
                     'the IOMMU supports interrupt remapping but no '
                     'interrupt uses it',
                     'remove intremap=off / nointremap from the kernel '
                     'command line')
    return Check('interrupt-remapping', FAIL,
                 'no interrupt remapping: a guest could inject interrupts',
                 'enable interrupt remapping (x2APIC/IR) in the firmware; '
                 'vfio refuses such hosts unless vfio_iommu_type1 '
                 'allow_unsafe_interrupts=1, which is unsafe')


def check_modules(fs: sysfs_mod.Sysfs) -> Check:
    missing = [m for m in ('vfio', 'vfio_pci')
               if not fs.exists('module/' + m)]
    if not missing:
        return Check('vfio-modules', PASS, 'vfio and vfio_pci are loaded')
    return Check('vfio-modules', FAIL,
                 'not loaded: %s' % ', '.join(missing),
                 'modprobe vfio-pci; to load at boot: echo vfio-pci > '
                 '/etc/modules-load.d/vfio-pci.conf')


def check_sriov(fs: sysfs_mod.Sysfs) -> Check:
    scan = discovery.scan(fs)
    pfs = [i for i in scan.devices.values() if i.total_vfs > 0]
    if not pfs:
        return Check('sriov-pfs', WARN, 'no SR-IOV capable PF',
                     'only needed for VFs; check the card supports SR-IOV '
                     'and SR-IOV is enabled in the firmware setup')
    return Check('sriov-pfs', PASS, '; '.join(
        '%s%s %d/%d VFs' % (i.address, ' (%s)' % i.devname if i.devname
                            else '', i.num_vfs, i.total_vfs)
        for i in pfs))


def check_journal(path: str) -> Check:
    """Devices the agent changed and could not put back, from its journal.
    """
    try:
        journal = journal_mod.Journal(path)
    except exception.PassthroughException as exc:
        return Check('agent-journal', FAIL, exc.message,
                     'move the file away; then check the drivers of the '
                     'devices the agent bound by hand')
    if journal.failed:
        return Check('agent-journal', FAIL, 'restore failed for %s' % (
            '; '.join('%s (to %s): %s' % (a, r.original_driver or
                                          'the kernel\'s choice', e)
                      for a, (r, e) in sorted(journal.failed.items()))),
            'fix the cause, then "passthrough-agent unbind %s" (or '
            '"passthrough-agent run" retries it)' % ' '.join(
                sorted(journal.failed)))
    if journal.pending is not None:
        return Check('agent-journal', WARN, 'an interrupted %s of %s is '
                     'pending' % (journal.pending['action'], ', '.join(
                         sorted(journal.pending.get('devices') or {}))),
                     'the next bind, unbind or run finishes it')
    return Check('agent-journal', PASS, '%d devices bound by the agent, '
                 'none left half-restored' % len(journal.bound))


def nova_device_spec(path: str) -> list[str]:
    """The ``[pci] device_spec`` values of the nova.conf at ``path``
    (nova's old name ``passthrough_whitelist`` too).

    :raises: Invalid naming the file and what is wrong.
    """
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.MultiStrOpt('device_spec', default=[],
                                      deprecated_name='passthrough_whitelist'),
                      group='pci')
    if not os.path.isfile(path):
        raise exception.Invalid(
            reason='nova configuration %s: no such file' % path)
    try:
        conf(args=[], project='nova', default_config_files=[path],
             default_config_dirs=[], use_env=False)
        return list(conf.pci.device_spec)
    except (cfg.Error, OSError) as exc:
        raise exception.Invalid(
            reason='nova configuration %s: %s' % (path, exc)) from None


def check_nova_device_spec(fs: sysfs_mod.Sysfs,
                           report: report_mod.HostReport,
                           path: str = NOVA_CONF) -> Check:
    """Does nova.conf's ``[pci] device_spec`` cover a device the agent
    says can never be assigned? nova would hand it to a guest (and with
    VFs the plugin cannot steer nova off it: it refuses their PF)."""
    hint = ('list only assignable devices: "passthrough-agent '
            'nova-device-spec" prints the [pci] device_spec lines for '
            'nova.conf')
    try:
        specs = device_spec_mod.DeviceSpecList.from_config(
            nova_device_spec(path), option='%s [pci] device_spec' % path,
            nova_compatible=True)
    except exception.Invalid as exc:
        return Check('nova-device-spec', FAIL, exc.message,
                     'fix %s, or pass --nova-config' % path)
    never = nova_spec.not_assignable(report)
    reported = {d.address for d in report.devices}
    scan_ = discovery.scan(fs)
    covered = 0
    problems: list[str] = []
    for info in scan_.devices.values():
        spec = discovery.spec_for(specs, info, scan_)
        if spec is None:
            continue
        covered += 1
        why = never.get(info.address)
        if why is None and info.address not in reported:
            why = ('the agent\'s [pci] device_spec leaves it out, so the '
                   'plugin knows nothing of it')
        if why is not None:
            problems.append('%s (%s) is covered by %s but cannot be '
                            'assigned: %s' % (info.address, info.dev_type,
                                              spec.item, why))
    if not problems:
        return Check('nova-device-spec', PASS, '%s [pci] device_spec covers '
                     '%d device(s), all assignable' % (path, covered))
    more = len(problems) - SHOWN
    detail = '; '.join(problems[:SHOWN]) + (
        '; and %d more' % more if more > 0 else '')
    return Check('nova-device-spec', WARN, detail, hint)


CHECKS: tuple[Callable[[sysfs_mod.Sysfs], Check], ...] = (
    check_acpi, check_cmdline, check_groups, check_interrupt_remapping,
    check_modules, check_sriov)


def run(fs: sysfs_mod.Sysfs, journal_path: str | None = None
        ) -> list[Check]:
    checks = [check(fs) for check in CHECKS]
    if journal_path is not None:
        checks.append(check_journal(journal_path))
    return checks


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)
