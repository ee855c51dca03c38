"""The harness itself: every nova PCI test is here, with the plugin on."""

from __future__ import annotations

import unittest

import testtools

from tests.functional.nova.upstream import harness
from tests.functional.nova.upstream import test_pci_in_placement
from tests.functional.nova.upstream import test_pci_regressions
from tests.functional.nova.upstream import test_pci_sriov_servers

MODULES = (test_pci_sriov_servers, test_pci_in_placement,
           test_pci_regressions)


def _tests() -> list[unittest.TestCase]:
    loader = unittest.TestLoader()
    return [t for m in MODULES for t in _iter(loader.loadTestsFromModule(m))]


def _iter(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    found: list[unittest.TestCase] = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            found.extend(_iter(test))
        else:
            found.append(test)
    return found


class HarnessTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.baseline = harness.load_baseline()
        self.ids = [t.id() for t in _tests()]

    def test_the_baseline_is_of_this_nova(self) -> None:
        from nova import version

        self.assertEqual(self.baseline['nova'], version.version_string(),
                         'nova changed: run tox -e nova-upstream-baseline '
                         'and record its result in %s' % harness.BASELINE)

    def test_every_test_of_the_baseline_run_is_here(self) -> None:
        # A nova test lost on import (a missing test dependency makes the
        # loader yield one _FailedTest) or a class not picked up would
        # shrink the comparison silently.
        self.assertEqual(len(set(self.ids)), len(self.ids))
        self.assertEqual(self.baseline['tests'], len(self.ids))
        self.assertEqual([], [i for i in self.ids if '_FailedTest' in i])
        listed = set(self.baseline['skipped']) | set(self.baseline['failing'])
        self.assertEqual(set(), listed - set(self.ids))

    def test_every_class_runs_with_the_plugin_or_without(self) -> None:
        classes = {test.__class__ for test in _tests()}
        self.assertGreater(len(classes), 10)
        enabled = harness.plugin_enabled()
        for cls in classes:
            # Only configuration is added: nova's class comes right after.
            self.assertEqual(enabled, issubclass(cls, harness.PluginMixin),
                             cls)
            self.assertTrue(cls.__mro__[3 if enabled else 2].__module__
                            .startswith('nova.tests.functional.'), cls)
            self.assertNotIn('test_', ' '.join(vars(cls)), cls)



def _probe_class() -> type[testtools.TestCase]:
    """A stand-in for a nova test class (made here, so no loader runs it)."""

    class Probe(harness.PluginMixin, testtools.TestCase):

        def flags(self, **kw: object) -> None:
            """nova's TestCase.flags: nova's CONF is not needed here."""

        def test_skips(self) -> None:
            self.skipTest('no such hardware')

        @unittest.skip('decorated away')
        def test_decorated_skip(self) -> None:
            raise AssertionError('never runs')

        def test_fails(self) -> None:
            self.fail('broken')

        def test_passes(self) -> None:
            pass

    return Probe


class BaselineGuardTest(testtools.TestCase):

    def run_probe(self, name: str, **baseline: str) -> testtools.TestResult:
        """Run the probe's ``name`` with the baseline outcome given, e.g.
        ``skipped='why'``."""
        probe = _probe_class()(name)
        probe._baseline = {'skipped': {}, 'failing': {}}
        for outcome, reason in baseline.items():
            probe._baseline[outcome] = {probe.id(): reason}
        result = testtools.TestResult()
        probe.run(result)
        return result

    def test_a_skip_the_baseline_did_not_have_fails(self) -> None:
        for name in ('test_skips', 'test_decorated_skip'):
            result = self.run_probe(name)
            self.assertEqual(1, len(result.failures), name)
            self.assertEqual({}, result.skip_reasons, name)
            self.assertIn('not in the baseline run', result.failures[0][1])

    def test_a_skip_the_baseline_had_is_a_skip(self) -> None:
        result = self.run_probe('test_skips', skipped='why')
        self.assertEqual([], result.failures)
        self.assertEqual(['no such hardware'], list(result.skip_reasons))

    def test_a_failure_the_baseline_had_is_expected(self) -> None:
        result = self.run_probe('test_fails', failing='why')
        self.assertEqual([], result.failures)
        self.assertEqual(1, len(result.expectedFailures))
        self.assertTrue(result.wasSuccessful())

    def test_any_other_failure_fails(self) -> None:
        result = self.run_probe('test_fails', skipped='why')
        self.assertEqual(1, len(result.failures))
        self.assertFalse(result.wasSuccessful())

    def test_a_pass_passes(self) -> None:
        result = self.run_probe('test_passes')
        self.assertTrue(result.wasSuccessful())
        self.assertEqual(1, result.testsRun)
