"""Host readiness checks for passthrough: IOMMU, interrupts, vfio, SR-IOV."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import sysfs as sysfs_mod

PASS, WARN, FAIL = 'pass', 'warn', 'fail'
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
