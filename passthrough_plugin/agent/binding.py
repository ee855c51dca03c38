"""Whole-IOMMU-group binding with rollback, through a binder plugin."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import binders
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import safety
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.agent.binders import base
from passthrough_plugin.pci import device_spec

LOG = logging.getLogger(__name__)
BinderLoader = Callable[[str, sysfs_mod.Sysfs], base.Binder]


def _message(exc: Exception) -> str:
    return str(getattr(exc, 'message', None) or exc)


def _failed_text(failed: Sequence[tuple[base.DeviceRecord, str]],
                 what: str = 'RESTORE') -> str:
    if not failed:
        return ''
    return ('%s FAILED (%s); the journal keeps them until a restore '
            'works: fix the cause, then run "passthrough-agent unbind %s" '
            '("passthrough-agent doctor" lists them)' % (
                what, '; '.join('%s: %s' % (r.address, e) for r, e in failed),
                ' '.join(r.address for r, _e in failed)))


class GroupBinding:
    """Binds and unbinds whole IOMMU groups, all or nothing."""

    def __init__(self, fs: sysfs_mod.Sysfs, journal: journal_mod.Journal,
                 *, specs: device_spec.DeviceSpecList | None = None,
                 binder: str = 'vfio-pci', force: bool = False,
                 loader: BinderLoader = binders.load) -> None:
        self.fs = fs
        self.journal = journal
        self.specs = specs or device_spec.DeviceSpecList([])
        self.loader = loader
        self.binder = loader(binder, fs)
        self.force = force

    # -- planning ------------------------------------------------------------
    def plan(self, addresses: Sequence[str]
             ) -> tuple[list[str], discovery.Scan]:
        """Every device to bind: the named ones and their groups.

        :raises: DeviceNotFound, BindError, GroupNotViable, DeviceBusy
        """
        scan = discovery.scan(self.fs)
        for address in addresses:
            if address not in scan.devices:
                self.fs.require_device(address)
        allowed = set(addresses) | {
            info.address for info in scan.devices.values()
            if discovery.spec_for(self.specs, info, scan) is not None}
        members: set[str] = set()
        for address in addresses:
            group = scan.devices[address].iommu_group
            if group is None:
                if self.binder.driver == 'vfio-pci':
                    raise exception.BindError(
                        address=address, driver=self.binder.driver,
                        reason='it has no IOMMU group, so the IOMMU is off; '
                        'boot with intel_iommu=on or amd_iommu=on (see '
                        '"passthrough-agent doctor")')
                members.add(address)
                continue
            for member in scan.members(group):
                if scan.devices[member].is_bridge:
                    continue
                if member not in allowed:
                    raise exception.GroupNotViable(
                        address=address, driver=self.binder.driver,
                        group=group, member=member,
                        reason='is neither whitelisted by [pci] device_spec '
                        'nor named on the command line; binding takes the '
                        'whole group, so name it too or whitelist it')
                members.add(member)
        if not self.force:
            usage = safety.HostUsage(self.fs)
            for member in sorted(members):
                why = safety.reasons(usage, scan.devices[member])
                if why:
                    raise exception.DeviceBusy(
                        address=member, driver=self.binder.driver,
                        reason='; '.join(why))
        return sorted(members), scan

    # -- bind / unbind -------------------------------------------------------
    def bind(self, addresses: Sequence[str],
             progress: Callable[[int, int], None] | None = None
             ) -> list[str]:
        """Bind the devices and their groups; roll back on any failure.

        ``progress(bound, total)`` is called as each device is bound.

        :returns: every address now on the binder's driver.
        :raises: DeviceNotFound, BindError and its subclasses
        """
        with self.journal.locked():
            self._recover()
            members, scan = self.plan(addresses)
            self.binder.check_ready()
            records = []
            adopted = []
            for m in members:
                # A device whose earlier restore failed keeps the original
                # driver recorded then, not the half-restored state now.
                kept = self.journal.failed.get(m)
                if scan.devices[m].driver == self.binder.driver:
                    if kept is not None:
                        adopted.append(kept[0])
                    continue
                records.append(kept[0] if kept is not None else
                               base.DeviceRecord(
                                   m, self.binder.name,
                                   scan.devices[m].driver,
                                   self.fs.driver_override(m)))
            if not records:
                if adopted:
                    self.journal.finish(bound=adopted)
                return members
            self.journal.begin('bind', self.binder.name, records)
            done: list[base.DeviceRecord] = []
            try:
                for record in records:
                    done.append(record)
                    self.binder.bind(record, self._saver(record))
                    if progress is not None:
                        progress(len(done), len(records))
            except Exception as exc:
                # Anything at all (a kernel error, a full disk under the
                # journal): put every device back before reporting it.
                failed = self._restore(self.binder, list(reversed(done)))
                lost = {r.address for r, _error in failed}
                self.journal.finish(
                    released=[r.address for r in done
                              if r.address not in lost], failed=failed)
                raise exception.BindError(
                    address=record.address, driver=self.binder.driver,
                    reason='%s; %s' % (_message(exc),
                                       _failed_text(failed, 'ROLLBACK')
                                       or 'every device is back on its '
                                       'original driver')) from None
            self.journal.finish(bound=records + adopted)
            return members

    def unbind(self, addresses: Sequence[str]) -> list[str]:
        """Return the devices and the rest of their groups to their drivers.

        :returns: the released addresses.
        :raises: DeviceNotFound, BindError
        """
        with self.journal.locked():
            self._recover()
            scan = discovery.scan(self.fs)
            targets: set[str] = set()
            for address in addresses:
                if address not in scan.devices:
                    self.fs.require_device(address)
                group = scan.devices[address].iommu_group
                targets.add(address)
                targets.update(
                    m for m in scan.members(group)
                    if m in self.journal.bound or m in self.journal.failed
                    or scan.devices[m].driver == self.binder.driver)
            records = []
            for address in sorted(targets):
                record = self.journal.bound.get(address)
                if record is None and address in self.journal.failed:
                    record = self.journal.failed[address][0]
                if record is None:
                    if scan.devices[address].driver != self.binder.driver:
                        continue
                    # Not bound by us: unbind it and let the kernel probe.
                    record = base.DeviceRecord(address, self.binder.name,
                                               None)
                records.append(record)
            if not records:
                return []
            self.journal.begin('unbind', self.binder.name, records)
            failed = self._restore(None, records)
            lost = {r.address for r, _error in failed}
            released = [r.address for r in records if r.address not in lost]
            self.journal.finish(released=released, failed=failed)
            if failed:
                raise exception.AgentError(reason=_failed_text(failed))
            return released

    def retry_failed(self, skip: Sequence[str] = ()) -> list[str]:
        """Restore every device whose earlier restore failed (but those in
        ``skip``, about to be bound anyway); return what still fails."""
        with self.journal.locked():
            self._recover()
            records = [r for a, (r, _e) in sorted(self.journal.failed.items())
                       if a not in skip]
            if not records:
                return []
            failed = self._restore(None, records)
            lost = {r.address for r, _error in failed}
            self.journal.finish(
                released=[r.address for r in records
                          if r.address not in lost], failed=failed)
            return ['%s: %s' % (r.address, error) for r, error in failed]

    def recover(self) -> str | None:
        """Finish or roll back what an interrupted agent left pending."""
        with self.journal.locked():
            return self._recover()

    # -- internals -----------------------------------------------------------
    def _saver(self, record: base.DeviceRecord) -> base.Save:
        return lambda: self.journal.update(record)

    def _restore(self, binder: base.Binder | None,
                 records: Sequence[base.DeviceRecord]
                 ) -> list[tuple[base.DeviceRecord, str]]:
        """Release each device (with ``binder``, or the one each record
        names); return the ones that failed, with the error."""
        problems = []
        for record in records:
            try:
                each = binder
                if each is None:
                    each = (self.binder if record.binder == self.binder.name
                            else self.loader(record.binder, self.fs))
                each.release(record, self._saver(record))
            except Exception as exc:
                LOG.error('restoring %s failed: %s', record.address,
                          _message(exc))
                problems.append((record, _message(exc)))
        return problems

    def _release_all(self, records: Sequence[base.DeviceRecord]) -> None:
        for record in records:
            binder = (self.binder if record.binder == self.binder.name
                      else self.loader(record.binder, self.fs))
            binder.release(record, self._saver(record))

    def _recover(self) -> str | None:
        pending = self.journal.pending
        if pending is None:
            return None
        records = self.journal.pending_records()
        action = pending.get('action')
        LOG.warning('finishing an interrupted %s of %s', action,
                    ', '.join(r.address for r in records))
        try:
            # A bind is rolled back (the desired state is re-applied by
            # "run" afterwards); an unbind is completed.
            self._release_all(list(reversed(records)) if action == 'bind'
                              else records)
        except exception.PassthroughException as exc:
            raise exception.AgentError(
                reason='cannot recover the interrupted %s recorded in %s: '
                '%s' % (action, self.journal.path, exc.message)) from None
        self.journal.finish(released=[r.address for r in records])
        return '%s of %s %s' % (action, ', '.join(
            r.address for r in records),
            'rolled back' if action == 'bind' else 'finished')
