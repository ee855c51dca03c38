"""The agent service: publish reports, re-apply desired state, rescan."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.agent import binding
from passthrough_plugin.agent import hotplug_pool
from passthrough_plugin.agent import hotplug_watch
from passthrough_plugin.agent import journal as journal_mod
from passthrough_plugin.agent import pool_history
from passthrough_plugin.agent import sriov
from passthrough_plugin.agent import sysfs as sysfs_mod
from passthrough_plugin.agent import vf_settings
from passthrough_plugin.pci import address as addr
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base as store_base

LOG = logging.getLogger(__name__)
StoreFactory = Callable[[cfg.ConfigOpts], store_base.ReportStore]


def default_store(conf: cfg.ConfigOpts) -> store_base.ReportStore:
    from passthrough_plugin.store import loader

    return loader.load_store(conf)


def fingerprint(report: report_mod.HostReport) -> str:
    """What must change for a report to be worth publishing again."""
    data = report.to_dict()
    data.pop('reported_at', None)
    data.pop('generation', None)
    return json.dumps(data, sort_keys=True)


class Agent:
    """One compute host's agent, on ``conf`` (registered groups: pci,
    report_store, agent, sriov)."""

    def __init__(self, conf: cfg.ConfigOpts, fs: sysfs_mod.Sysfs,
                 store_factory: StoreFactory = default_store,
                 binder_loader: binding.BinderLoader | None = None, *,
                 state_path: str | None = None,
                 binder: str | None = None) -> None:
        self.conf = conf
        self.fs = fs
        self.state_path = state_path or conf.agent.state_path
        self.binder = binder or conf.agent.binder
        # nova's regex reading when asked (the group is the scheduler's:
        # registered by passthrough-agent too).
        self.specs = device_spec.DeviceSpecList.from_config(
            conf.pci.device_spec, nova_compatible=bool(
                'passthrough_scheduler' in conf
                and conf.passthrough_scheduler.nova_compatible_matching))
        self.hotplug_specs = hotplug_pool.specs(conf)
        self.watch = hotplug_watch.DeviceWatch.from_conf(conf)
        self.desired_vfs = sriov.parse_desired(conf.sriov.vf_count)
        self.vf_settings = vf_settings.parse(conf.sriov.vf_settings)
        self.desired_bound = [
            addr.normalize(a, '[agent] bind_devices')
            for a in conf.agent.bind_devices]
        self._store_factory = store_factory
        self._store: store_base.ReportStore | None = None
        self._binder_loader = binder_loader
        self.last: str | None = None
        # nova-compute's pool history, carried across reports.
        self.history = pool_history.PoolHistory(
            pool_history.path_for(self.state_path))

    @property
    def store(self) -> store_base.ReportStore:
        if self._store is None:
            self._store = self._store_factory(self.conf)
        return self._store

    def group_binding(self, force: bool = False) -> binding.GroupBinding:
        kwargs = {}
        if self._binder_loader is not None:
            kwargs['loader'] = self._binder_loader
        return binding.GroupBinding(
            self.fs, journal_mod.Journal(self.state_path),
            specs=self.specs, binder=self.binder, force=force,
            **kwargs)

    def held_devices(self) -> dict[str, str]:
        """``{address: owner}`` of the devices the report store says an
        instance holds on this host (claimed or allocated)."""
        try:
            report = self.store.get(self.conf.agent.host)
        except exception.HostReportNotFound:
            return {}
        except exception.PassthroughException as exc:
            LOG.warning('cannot read which devices instances hold (%s); '
                        'only drivers show which VFs are in use',
                        exc.message)
            return {}
        return {d.address: d.owner for d in report.devices
                if d.status in report_mod.IN_USE and d.owner}

    def report(self) -> report_mod.HostReport:
        return hotplug_pool.build_report(self.fs, self.specs,
                                         self.hotplug_specs,
                                         self.conf.agent.host)

    def publish(self, report: report_mod.HostReport | None = None) -> int:
        """:raises: StoreError"""
        report = report if report is not None else self.report()
        if not pool_history.stamped(report):
            self.history.stamp(report, self.store)
        generation = self.store.publish(report)
        self.last = fingerprint(report)
        LOG.info('published %d devices of %s, generation %d',
                 len(report.devices), report.host, generation)
        return generation

    def apply_desired(self) -> list[str]:
        """Recover, then set VF counts and bindings; return the problems.

        Each item is applied on its own: one broken PF does not keep the
        others from coming up at boot.
        """
        problems = []
        gb = self.group_binding()
        try:
            recovered = gb.recover()
            if recovered:
                LOG.warning('recovered: %s', recovered)
        except exception.PassthroughException as exc:
            problems.append(exc.message)
        try:
            problems.extend(
                'restore still fails: %s' % p for p in gb.retry_failed(
                    skip=self.desired_bound))
        except exception.PassthroughException as exc:
            problems.append(exc.message)
        held = self.held_devices() if self.desired_vfs else {}
        for key, count in self.desired_vfs:
            try:
                pf = sriov.resolve_pf(self.fs, key, '[sriov] vf_count')
                sriov.configure_vfs(self.fs, pf, count,
                                    self.conf.sriov.vf_timeout, held=held)
            except exception.PassthroughException as exc:
                problems.append(exc.message)
        # New VFs start with the driver's defaults: settings come after
        # the counts, each PF on its own.
        for item in self.vf_settings:
            try:
                vf_settings.apply(self.fs, [item])
            except exception.PassthroughException as exc:
                problems.append(exc.message)
        for address in self.desired_bound:
            if self.fs.driver(address) == gb.binder.driver:
                continue
            try:
                gb.bind([address])
            except exception.PassthroughException as exc:
                problems.append(exc.message)
        for problem in problems:
            LOG.error('desired state not applied: %s', problem)
        return problems

    def tick(self) -> bool:
        """Scan once; publish if the report changed. True if published."""
        report = self.history.stamp(self.report(), self.store)
        # Devices that came or went (host-side hotplug); lost held ones
        # close their ledger intervals.
        self.watch.observe(report)
        if fingerprint(report) == self.last:
            return False
        try:
            self.publish(report)
        except exception.StoreError as exc:
            # Keep self.last: the next tick tries again.
            LOG.error('cannot publish the report: %s', exc.message)
            return False
        return True

    def run(self, iterations: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> None:
        """Apply the desired state, then scan and publish until stopped."""
        # A start of the service is nova-compute's start for the pool
        # order: the history begins again.
        self.history.reset()
        self.apply_desired()
        done = 0
        while iterations is None or done < iterations:
            self.tick()
            done += 1
            if iterations is None or done < iterations:
                sleep(self.conf.agent.scan_interval)
