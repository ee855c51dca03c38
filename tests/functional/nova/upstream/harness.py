"""Runs nova's own PCI test classes with PciPoolFilter and PciPoolWeigher on.

Each nova test class is subclassed with :class:`PluginMixin` in front, which
only changes configuration: when a test starts nova-scheduler, PciPoolFilter
is appended to ``[filter_scheduler] enabled_filters``, the plugin's filters
and weighers join nova's in ``available_filters`` / ``weight_classes``, the
report store is an empty file store in a temp dir (no agent reports) and
``[passthrough_scheduler] missing_report = pass``. The tests themselves run
as nova ships them.

``PASSTHROUGH_NOVA_UPSTREAM=baseline`` gives the same classes, same test
ids, without the plugin: that run is what ``baseline.json`` records.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import unittest
from collections.abc import Iterable
from typing import Any

import fixtures
import testtools
from testtools import content

MODE_ENV = 'PASSTHROUGH_NOVA_UPSTREAM'
BASELINE = os.path.join(os.path.dirname(__file__), 'baseline.json')
PLUGIN_FILTERS = 'passthrough_plugin.scheduler.filters.all_filters'
PLUGIN_WEIGHERS = 'passthrough_plugin.scheduler.weighers.all_weighers'


def plugin_enabled() -> bool:
    """False only in the baseline run (``MODE_ENV=baseline``)."""
    mode = os.environ.get(MODE_ENV, 'plugin')
    if mode not in ('plugin', 'baseline'):
        raise ValueError('%s=%r: valid values are plugin and baseline'
                         % (MODE_ENV, mode))
    return mode == 'plugin'


def load_baseline() -> dict[str, Any]:
    with open(BASELINE, encoding='utf-8') as f:
        data: dict[str, Any] = json.load(f)
    return data


class _BaselineGuard(testtools.ExtendedToOriginalDecorator):
    """Holds a test to its outcome in the baseline run without the plugin.

    A skip the baseline run did not have is a failure. A test that failed
    in the baseline run too is reported as an expected failure (its
    baseline reason attached): the plugin is not what breaks it.
    """

    def __init__(self, decorated: Any, baseline: dict[str, Any]) -> None:
        super().__init__(decorated)
        self.skipped = baseline.get('skipped', {})
        self.failing = baseline.get('failing', {})

    def addSkip(self, test: Any, reason: str | None = None,
                details: dict[str, Any] | None = None) -> None:
        if test.id() in self.skipped:
            super().addSkip(test, reason, details=details)
            return
        details = dict(details or {})
        details['unexpected-skip'] = content.text_content(
            'skipped with the plugin enabled but not in the baseline run '
            'without it (%s): %s' % (BASELINE, reason))
        super().addFailure(test, details=details)

    def _known(self, test: Any, details: dict[str, Any] | None
               ) -> dict[str, Any] | None:
        if test.id() not in self.failing:
            return None
        details = dict(details or {})
        details['baseline'] = content.text_content(
            'fails without the plugin too (%s): %s'
            % (BASELINE, self.failing[test.id()]))
        return details

    def addFailure(self, test: Any, err: Any = None,
                   details: dict[str, Any] | None = None) -> None:
        known = self._known(test, details)
        if known is None:
            super().addFailure(test, err, details=details)
        else:
            super().addExpectedFailure(test, details=known)

    def addError(self, test: Any, err: Any = None,
                 details: dict[str, Any] | None = None) -> None:
        known = self._known(test, details)
        if known is None:
            super().addError(test, err, details=details)
        else:
            super().addExpectedFailure(test, details=known)


class InstalledNovaMixin:
    """What nova's tests need when nova is installed, not a source tree.

    Both runs have it: nova's tests find api-paste.ini relative to nova's
    source tree; pip installs it under ``sys.prefix``.
    """

    def setUp(self) -> None:
        self.flags(  # type: ignore[attr-defined]
            api_paste_config=os.path.join(
                sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()  # type: ignore[misc]


class PluginMixin(InstalledNovaMixin):
    """Enables the plugin through nova.conf when nova-scheduler starts."""

    # Set by plugin_classes(): the baseline run's outcomes.
    _baseline: dict[str, Any] = {}

    def run(self, result: Any = None) -> Any:
        if result is None:
            return super().run(result)  # type: ignore[misc]
        return super().run(  # type: ignore[misc]
            _BaselineGuard(result, self._baseline))

    def start_service(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == 'scheduler':
            self._enable_plugin()
        service = super().start_service(  # type: ignore[misc]
            name, *args, **kwargs)
        if name == 'scheduler':
            assert_plugin_loaded(service)
        return service

    def _enable_plugin(self) -> None:
        import nova.conf

        from passthrough_plugin.scheduler import nova_adapter

        conf = nova.conf.CONF
        # nova registers no options of ours: the filter would on first use.
        nova_adapter.nova_conf()
        reports = self.useFixture(  # type: ignore[attr-defined]
            fixtures.TempDir()).path
        group = conf.filter_scheduler
        flags = self.flags  # type: ignore[attr-defined]
        flags(available_filters=_plus(group.available_filters,
                                      [PLUGIN_FILTERS]),
              weight_classes=_plus(group.weight_classes, [PLUGIN_WEIGHERS]),
              enabled_filters=_plus(group.enabled_filters,
                                    ['PciPoolFilter']),
              group='filter_scheduler')
        flags(driver='file', group='report_store')
        flags(path=reports, group='file_store')
        flags(missing_report='pass', group='passthrough_scheduler')



def assert_plugin_loaded(scheduler: Any) -> None:
    """The nova-scheduler just started really filters and weighs with us."""
    manager = scheduler.manager.host_manager
    names = [type(f).__name__ for f in manager.enabled_filters]
    weighers = [type(w).__name__ for w in manager.weighers]
    if 'PciPoolFilter' not in names or 'PciPoolWeigher' not in weighers:
        raise AssertionError(
            'the plugin is not enabled in nova-scheduler: filters %s, '
            'weighers %s' % (names, weighers))


def _plus(values: Iterable[str], extra: Iterable[str]) -> list[str]:
    out = list(values)
    out.extend(v for v in extra if v not in out)
    return out


def plugin_classes(into: str, module_name: str,
                   only: Iterable[str] | None = None) -> dict[str, type]:
    """The test classes of nova's ``module_name``, each with the plugin on,
    for the harness module ``into``.

    Test ids keep nova's class and method names; only the module differs.
    """
    module = importlib.import_module(module_name)
    loader = unittest.TestLoader()
    wanted = set(only) if only is not None else None
    enabled = plugin_enabled()
    baseline = load_baseline() if enabled else {}
    found: dict[str, type] = {}
    for name, cls in sorted(vars(module).items()):
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)
                and cls.__module__ == module_name):
            continue
        if wanted is not None and name not in wanted:
            continue
        if not loader.getTestCaseNames(cls):
            continue  # a base class: its tests run in its subclasses
        if not enabled:
            found[name] = type(name, (InstalledNovaMixin, cls),
                               {'__module__': into})
            continue
        found[name] = type(name, (PluginMixin, cls), {
            '__module__': into, '__doc__': cls.__doc__,
            '_baseline': baseline})
    if wanted is not None and wanted - set(found):
        raise LookupError('%s has no test classes %s'
                          % (module_name, sorted(wanted - set(found))))
    return found
