"""nova's PCI regression tests, unmodified, with the plugin enabled."""

from __future__ import annotations

from tests.functional.nova.upstream import harness

# nova's regression modules about PCI devices (test_bug_2140631 also tests
# bandwidth and accelerator quotas: only its PCI class is taken).
_MODULES = {
    'test_bug_1896463': None,
    'test_bug_1983753': None,
    'test_bug_1995153': None,
    'test_bug_2098496': None,
    'test_bug_2102038': None,
    'test_bug_2111440': None,
    'test_bug_2140631': ['TestBug2140631PCI'],
}

for _module, _only in _MODULES.items():
    _found = harness.plugin_classes(
        __name__, 'nova.tests.functional.regressions.' + _module, _only)
    _clash = set(_found) & set(globals())
    if _clash:
        raise ImportError('two nova regression classes named %s'
                          % sorted(_clash))
    globals().update(_found)
