"""Fuzz targets of the parsers, the report store and the domain XML."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from hypothesis import strategies as st
from oslo_config import cfg

from passthrough_plugin import conf as conf_pkg
from passthrough_plugin import exception
from passthrough_plugin.lifecycle import mapping
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.pci import request as request_mod
from passthrough_plugin.scheduler import engine as engine_mod
from passthrough_plugin.scheduler import examples
from passthrough_plugin.store import file as file_store
from tests.fuzz import harness
from tests.fuzz import strategies as fz_st

ALIASES = alias_mod.parse_aliases(list(examples.alias_values()))
READ_HOST = 'fz-read'


def store_conf(path: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf_pkg.register_all(conf)
    conf([], project='passthrough-plugin', default_config_files=[])
    conf.set_override('driver', 'file', group='report_store')
    conf.set_override('path', path, group='file_store')
    conf.set_override('alias', list(examples.alias_values()), group='pci')
    return conf


def check_device_spec(values: list[str]) -> str:
    try:
        device_spec.DeviceSpecList.from_config(values)
    except exception.InvalidDeviceSpec as exc:
        return harness.refused(exc)
    return harness.ACCEPTED


def check_alias(values: list[str]) -> str:
    try:
        alias_mod.parse_aliases(values)
    except exception.InvalidAlias as exc:
        return harness.refused(exc)
    return harness.ACCEPTED


def check_extra_specs(specs: dict[str, Any]) -> str:
    try:
        request_mod.RequestSet.from_extra_specs(specs, ALIASES)
    except exception.InvalidExtraSpec as exc:
        return harness.refused(exc)
    return harness.ACCEPTED


def check_domain_xml(data: str | bytes) -> str:
    try:
        mapping.parse_domain_xml(data, 'fuzz')
    except exception.DomainXmlError as exc:
        return harness.refused(exc)
    return harness.ACCEPTED


def _set(data: Any, path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


# Where a mutation lands in a report (dict form); -1: add a new key.
REPORT_PATHS = (
    ['host'], ['generation'], ['version'], ['reported_at'], ['devices'],
    ['numa_cells'], ['iommu'], ['iommu', 'foreign_members'],
    ['devices', 0, 'address'], ['devices', 0, 'numa_node'],
    ['devices', 0, 'iommu_group'], ['devices', 0, 'owner'],
    ['devices', 0, 'status'], ['devices', 0, 'driver'],
    ['devices', 0, 'tags'], ['devices', 0, 'resource_class'],
    ['devices', 0, 'traits'], ['devices', 1, 'parent_address'],
    ['devices', 1, 'vendor_id'], ['numa_cells', 0, 'id'],
    ['devices', 0, 'fz_extra'])


class ReportTargets:
    """Reports into a file store: refused ones must change nothing."""

    def __init__(self, workdir: str) -> None:
        self.path = os.path.join(workdir, 'store')
        self.conf = store_conf(self.path)
        self.store = file_store.FileReportStore(self.conf)
        self.base = examples.hosts()[0]
        for report in examples.hosts():
            self.store.publish(report)
        self.others = [r.host for r in examples.hosts()]
        self.reads = 0

    def mutations(self) -> st.SearchStrategy[Any]:
        return st.lists(st.tuples(st.sampled_from(REPORT_PATHS),
                                  fz_st.values), min_size=1, max_size=3)

    def _mutated(self, changes: list[tuple[list[Any], Any]]
                 ) -> dict[str, Any]:
        data = self.base.to_dict()
        data['host'] = 'fz-host'
        for path, value in changes:
            try:
                _set(data, path, value)
            except (KeyError, IndexError, TypeError):
                pass
        return data

    def check_parse(self, changes: list[tuple[list[Any], Any]]) -> str:
        """A peer's JSON through HostReport.from_json."""
        data = self._mutated(changes)
        try:
            text = json.dumps(data)
        except (ValueError, TypeError):
            text = '{"version": 1, "host": "h", "devices": [], ' \
                '"generation": 1%s}' % ('0' * 5000)
        try:
            report_mod.HostReport.from_json(text, source='fuzz')
        except exception.InvalidHostReport as exc:
            return harness.refused(exc)
        return harness.ACCEPTED

    def check_publish(self, changes: list[tuple[list[Any], Any]]) -> str:
        """A report object, its fields set past validation, published."""
        report = copy.deepcopy(self.base)
        report.host = 'fz-host'
        for path, value in changes:
            target: Any = report
            try:
                for key in path[:-1]:
                    target = (target[key] if isinstance(key, int)
                              else getattr(target, key))
                name = path[-1]
                if isinstance(name, int):
                    target[name] = value
                else:
                    setattr(target, {'class': 'class_code'}.get(name, name),
                            value)
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        before = harness.snapshot(self.path)
        try:
            self.store.publish(report)
        except (exception.Invalid, exception.StoreError) as exc:
            if harness.snapshot(self.path) != before:
                raise harness.Finding('state: the store changed although '
                                      'the publish was refused') from None
            return harness.refused(exc)
        return harness.ACCEPTED

    def check_read(self, changes: list[tuple[list[Any], Any]]) -> str:
        """A hostile file on disk: that host fails, the others answer."""
        data = self._mutated(changes)
        data['host'] = READ_HOST
        try:
            text = json.dumps(data)
        except (ValueError, TypeError):
            text = '{"host": "%s", "n": 1%s}' % (READ_HOST, '0' * 5000)
        with open(os.path.join(self.path, READ_HOST + '.json'), 'w',
                  encoding='utf-8') as handle:
            handle.write(text)
        self.reads += 1
        try:
            self.store.get(READ_HOST)
            outcome = harness.ACCEPTED
        except exception.InvalidHostReport as exc:
            outcome = harness.refused(exc)
        if self.reads % 25 == 1:
            # The scheduler's view: a fresh engine, every host explained.
            engine = engine_mod.Engine(self.conf)
            engine.refresh()
            request = engine.request({'pci_passthrough:alias': 'vf:1'})
            hosts = {a.host for a in engine.explain(request, None,
                                                    exact=True)}
            missing = set(self.others) - hosts
            if missing:
                raise harness.Finding('message: explain lost hosts %s'
                                      % sorted(missing))
        return outcome
