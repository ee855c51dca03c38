"""Harness behaviour that needs no real boot: fake QEMU, skips, arguments."""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

import fixtures
import testtools

from tests.functional.kernel import assets
from tests.functional.kernel import harness

PANIC = "[    0.048000] Kernel panic - not syncing: timer is broken"


class FakeQemuGuest(harness.KernelGuest):
    """Runs a shell snippet instead of QEMU; ``{nonce}`` is filled in."""

    def __init__(self, boots: list[str], tmp: pathlib.Path) -> None:
        super().__init__(python=sys.executable, cache_dir=tmp)
        self.boots = boots
        # Pretend the assets are there: the fake never reads them.
        self.assets = assets.Assets(tmp, tmp, tmp, "0", "fake")
        self.initrd = tmp / "initrd"
        self.argvs: list[list[str]] = []

    def _qemu_argv(self, assets_: assets.Assets, initrd: pathlib.Path,
                   ctl: pathlib.Path, out: pathlib.Path,
                   nonce: str) -> list[str]:
        snippet = self.boots[len(self.argvs)].replace("{nonce}", nonce)
        self.argvs.append(["sh", "-c", snippet])
        return self.argvs[-1]


class TestBootLoop(testtools.TestCase):

    def _guest(self, *boots: str) -> FakeQemuGuest:
        tmp = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        return self.useFixture(FakeQemuGuest(list(boots), tmp))

    def test_result_line_gives_rc_and_output(self) -> None:
        guest = self._guest(
            "echo 'PT-HARNESS: running x'; echo hello;"
            " echo 'PT-HARNESS-RC {nonce} 7 uptime=1'; echo after")
        result = guest.run("true", timeout=30)
        self.assertEqual(7, result.rc)
        self.assertEqual("hello", result.output)
        self.assertEqual(1, result.boots)
        self.assertIn("after", result.log)

    def test_forged_result_line_is_ignored(self) -> None:
        guest = self._guest(
            "echo 'PT-HARNESS: running x'; echo 'PT-HARNESS-RC 00 0'")
        error = self.assertRaises(harness.GuestError, guest.run, "true",
                                  timeout=30)
        self.assertIn("no result line", str(error))

    def test_early_panic_boots_again(self) -> None:
        guest = self._guest(
            f"echo '{PANIC}'",
            "echo 'PT-HARNESS: running x'; echo 'PT-HARNESS-RC {nonce} 0'")
        result = guest.run("true", timeout=30)
        self.assertEqual(0, result.rc)
        self.assertEqual(2, result.boots)
        self.assertEqual(2, len(guest.argvs))

    def test_early_panic_gives_up_after_three_boots(self) -> None:
        guest = self._guest(*[f"echo '{PANIC}'"] * 3)
        error = self.assertRaises(harness.GuestError, guest.run, "true",
                                  timeout=30)
        self.assertIn("panicked at boot", str(error))
        self.assertEqual(3, len(guest.argvs))

    def test_panic_while_script_runs_is_not_retried(self) -> None:
        guest = self._guest(f"echo 'PT-HARNESS: running x'; echo '{PANIC}'")
        error = self.assertRaises(harness.GuestError, guest.run, "true",
                                  timeout=30)
        self.assertIn("the guest kernel panicked", str(error))
        self.assertEqual(1, len(guest.argvs))

    def test_silent_guest_is_killed_at_timeout(self) -> None:
        guest = self._guest("echo booting; exec sleep 60")
        error = self.assertRaises(harness.GuestError, guest.run, "true",
                                  timeout=2)
        self.assertIn("no result within", str(error))
        self.assertIn("booting", error.log)

    def test_env_keys_must_be_shell_names(self) -> None:
        guest = self._guest("true")
        self.assertRaisesRegex(ValueError, "'BAD-KEY'", guest.run, "true",
                               env={"BAD-KEY": "1"})


class TestKernelGuestSkip(testtools.TestCase):
    """Without apt the harness skips with a reason, or fails if required."""

    def _run_inner(self) -> testtools.TestResult:
        cache = self.useFixture(fixtures.TempDir()).path
        empty = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.EnvironmentVariable("PATH", empty))

        class Inner(testtools.TestCase):
            def test_boot(self) -> None:
                self.useFixture(harness.KernelGuest(
                    cache_dir=pathlib.Path(cache)))

        result = testtools.TestResult()
        Inner("test_boot").run(result)
        return result

    def test_skips_without_apt(self) -> None:
        self.useFixture(fixtures.EnvironmentVariable(harness.REQUIRED_ENV))
        result = self._run_inner()
        reasons = list(result.skip_reasons)
        self.assertEqual(1, len(reasons), str(result.errors))
        self.assertIn("apt-get/dpkg not found", reasons[0])

    def test_fails_without_apt_when_required(self) -> None:
        self.useFixture(fixtures.EnvironmentVariable(
            harness.REQUIRED_ENV, "1"))
        result = self._run_inner()
        self.assertEqual({}, result.skip_reasons)
        self.assertEqual(1, len(result.errors))
        self.assertIn("AssetsUnavailable", str(result.errors[0][1]))


class TestKernelGuestArguments(testtools.TestCase):
    """Bad arguments are refused with the field named, before any boot."""

    def test_python_must_exist(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "bin", "python")
            with self.assertRaisesRegex(ValueError, "python="):
                harness.KernelGuest(python=missing)

    def test_paths_hidden_by_guest_mounts_are_refused(self) -> None:
        with self.assertRaisesRegex(ValueError, "python='/proc/self/exe'"):
            harness.KernelGuest(python="/proc/self/exe")
