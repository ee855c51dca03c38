"""The console wrapper: a main run inside another leaves the exit to it."""

from __future__ import annotations

import io

import fixtures
import testtools

from passthrough_plugin.cmd import common


class NestedConsoleTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.err = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.err))
        self.after: list[str] = []

        @common.console('inner')
        def inner() -> int:
            raise KeyboardInterrupt

        @common.console('outer')
        def outer() -> int:
            inner()
            self.after.append('the outer main went on')
            return 0

        self.inner, self.outer = inner, outer

    def test_inner_main_leaves_the_exit_to_the_outer(self) -> None:
        # The demo runs the scheduler's main: guarded there too, a closed
        # pipe or Ctrl-C ended the inner main only and the demo exited 0.
        self.assertEqual(common.EXIT_INTERRUPTED, self.outer())
        self.assertEqual([], self.after)
        self.assertEqual('outer: interrupted\n', self.err.getvalue())

    def test_main_alone_is_guarded(self) -> None:
        self.assertEqual(common.EXIT_INTERRUPTED, self.outer())
        self.assertEqual(common.EXIT_INTERRUPTED, self.inner())
        self.assertEqual('outer: interrupted\ninner: interrupted\n',
                         self.err.getvalue())
