"""Issue 12's agent refusals again, with the real privsep daemon writing.

The unit tests run the privileged entrypoint in-process; these run the
same scenarios with oslo.privsep's daemon forked for real (as the agent
does as root), so every write crosses the channel and lands through the
privileged side's own root, openat2 and allow-list.
"""

from __future__ import annotations

from tests.functional.agent import fixtures as daemon_fixtures
from tests.unit.agent import test_journal
from tests.unit.agent import test_refusals
from tests.unit.agent import test_safety


class DaemonRefusalTest(test_refusals.RefusalTest):
    privileged = daemon_fixtures.PrivsepDaemon


class DaemonNetworkStackTest(test_safety.NetworkStackTest):
    privileged = daemon_fixtures.PrivsepDaemon


class DaemonBlockStackTest(test_safety.BlockStackTest):
    privileged = daemon_fixtures.PrivsepDaemon


class DaemonFailedRestoreTest(test_journal.FailedRestoreTest):
    privileged = daemon_fixtures.PrivsepDaemon
