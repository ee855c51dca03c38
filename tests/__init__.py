"""Test packages; loads the hypothesis profile every property test runs under.

``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``): new random examples on every
run from the seed in ``PASSTHROUGH_HYPOTHESIS_SEED`` (``.ci/run`` draws and
prints one), the failing example's replay blob printed, and failures kept in
the example database (``.hypothesis/``) so the next run tries them first.
Otherwise ``dev``: derandomized, the same examples on every local run.
"""

from __future__ import annotations

import os

from hypothesis import core as _hypothesis_core
from hypothesis import database as _hypothesis_database
from hypothesis import HealthCheck as _HealthCheck
from hypothesis import settings as _settings

# Wall-clock checks fail a correct test on a busy machine (CI shares two
# cores with the services it starts): no deadline, no "too slow" check.
# The checks that judge the strategies themselves (filter_too_much,
# data_too_large ...) stay on.
_TIMING_FREE = dict(deadline=None,
                    suppress_health_check=[_HealthCheck.too_slow])

_settings.register_profile(
    'ci', derandomize=False, print_blob=True, **_TIMING_FREE,
    database=_hypothesis_database.DirectoryBasedExampleDatabase(
        os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), '.hypothesis', 'examples')))
_settings.register_profile('dev', derandomize=True, database=None,
                           print_blob=True, **_TIMING_FREE)
_settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'dev'))

_seed = os.environ.get('PASSTHROUGH_HYPOTHESIS_SEED')
if _seed and not _settings.default.derandomize:
    # What hypothesis's own pytest plugin does for --hypothesis-seed.
    _hypothesis_core.global_force_seed = int(_seed)
