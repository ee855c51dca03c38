"""nova's in-process functional stack with the plugin enabled.

Importing nova's functional test package monkey-patches the whole process
with eventlet, which breaks the threads and servers of every other
functional test in that process. Test discovery imports every module it
finds, so these modules are loaded only when PASSTHROUGH_NOVA_TESTS=1 (tox's
functional env runs them in an stestr run of their own with it set).
"""

from __future__ import annotations

import os
import unittest


def load_tests(loader: unittest.TestLoader, tests: unittest.TestSuite,
               pattern: str | None) -> unittest.TestSuite:
    if os.environ.get('PASSTHROUGH_NOVA_TESTS') != '1':
        return tests
    # Patch first, as nova's own runs do: a test module that imports
    # nova.tests.fixtures before nova.tests.functional leaves nova's
    # fixtures half-patched (nova's SR-IOV port tests then lose ports).
    import nova.tests.functional  # noqa: F401
    here = os.path.dirname(__file__)
    top = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    tests.addTests(loader.discover(start_dir=here, pattern=pattern or
                                   'test*.py', top_level_dir=top))
    return tests
