"""Boot a QEMU (TCG) guest with IOMMU and SR-IOV devices; run a script in it.

The guest kernel is Debian's; its userspace is the host's own root, shared
read-only over 9p with a tmpfs overlay on top, so a script in the guest can
run the host's python, venvs and this repository, with a writable out dir
shared back.  Assets (QEMU from bookworm-backports, busybox, kmod, the
kernel) are fetched once into ``${PASSTHROUGH_KERNEL_CACHE:-~/.cache/
passthrough-plugin/kernel}`` by a private apt configuration (see assets.py);
the guest devices are described in topology.py.

How to run our agent inside the guest
-------------------------------------
Install the project into a venv on the host (``tox -e functional`` does,
editable; or ``pip install -e .`` into ``/work/venv``) and hand that venv's
python to the guest; its ``bin`` comes first on PATH there, so the
``passthrough-agent`` console script (and ``privsep-helper``) are found::

    import json, sys
    import testtools
    from tests.functional.kernel import harness

    class AgentInGuestTest(testtools.TestCase):
        def test_discover_and_bind(self):
            guest = self.useFixture(harness.KernelGuest(
                python=sys.executable))      # or "/work/venv/bin/python"
            result = guest.run(
                "set -e\n"
                "passthrough-agent discover --format json"
                " > \"$PT_OUT/discover.json\"\n"
                "passthrough-agent doctor > \"$PT_OUT/doctor.txt\"\n",
                timeout=600, env={"OS_DEBUG": "1"})
            self.assertEqual(0, result.rc, result.output)
            report = json.loads(
                (result.out_dir / "discover.json").read_text())

In the guest the script runs as root under ``/bin/sh`` (``shell=`` picks
another), in ``cwd`` (default: the repository root, so ``python -m ...``
of the work tree works too), with these variables set: ``PT_PYTHON`` (the
python given), ``PT_OUT`` (the out dir, ``result.out_dir`` on the host),
``PT_REPO`` (the repository root), ``VIRTUAL_ENV`` (when ``python`` is in a
venv), plus ``env``.  The guest has its own ``/proc``, ``/sys`` and ``/dev``
(``/dev/vfio/N`` appear there); ``modprobe`` finds the guest kernel's
modules (kmod from the cache stands in if the host has none); everything
written outside ``$PT_OUT`` lives in RAM and is gone at power-off.  Each
``run`` is one fresh boot: ~10-20 s under TCG before the script starts, so
put several checks into one script and assert on files in ``$PT_OUT``.
The device layout and module list are in topology.py; the guest's result
line and console are in ``result.log``, the script's own output alone in
``result.output``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import fixtures
import testtools
from oslo_log import log as logging

from tests.functional.kernel import assets as assets_mod
from tests.functional.kernel import initramfs
from tests.functional.kernel import topology

LOG = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
REQUIRED_ENV = "PASSTHROUGH_KERNEL_REQUIRED"
ACCEL_ENV = "PASSTHROUGH_KERNEL_ACCEL"
_HIDDEN_PREFIXES = ("/proc", "/sys", "/dev")
_KMOD_TOOLS = ("modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod")
_BOOT_ATTEMPTS = 3


class GuestError(Exception):
    """The guest did not report a result; carries the end of the log."""

    def __init__(self, reason: str, log: str,
                 run_dir: pathlib.Path | None = None) -> None:
        tail = "\n".join(log.splitlines()[-60:])
        super().__init__(f"{reason}; last serial lines:\n{tail}")
        self.log = log
        self.run_dir = run_dir


class _EarlyPanic(GuestError):
    """The guest kernel panicked during boot, before our script ran.

    Seen under TCG on a busy host: the boot-time check that the timer
    interrupt arrives through the interrupt-remapped IO-APIC misses its
    ticks and the kernel panics ("timer doesn't work through
    Interrupt-remapped IO-APIC").  ``no_timer_check`` only turns that into
    a guest whose CPU gets no timer ticks and hangs. ``-icount`` (see
    ``KernelGuest._clock_args``) removes the cause under TCG; booting
    again stays as the last resort.
    """

    def __init__(self, panic: str, log: str,
                 run_dir: pathlib.Path | None) -> None:
        super().__init__(f"guest kernel panicked at boot: {panic}", log,
                         run_dir)
        self.panic = panic


@dataclasses.dataclass(frozen=True)
class GuestResult:
    """What one guest run gave back."""

    rc: int
    log: str
    out_dir: pathlib.Path
    seconds: float
    boots: int = 1

    @property
    def output(self) -> str:
        """The script's own output: the log between our start/end lines."""
        lines = self.log.splitlines()
        start = next((i for i, line in enumerate(lines)
                      if line.startswith("PT-HARNESS: running ")), -1)
        end = next((i for i, line in enumerate(lines)
                    if line.startswith("PT-HARNESS-RC ")), len(lines))
        return "\n".join(lines[start + 1:end])


def _die_with_parent(argv: list[str]) -> list[str]:
    """Make QEMU die with the test process, even if that is SIGKILLed.

    util-linux's setpriv sets the parent-death signal and execs; no
    preexec_fn (unsafe with the reader threads) is needed.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def _checked_path(field: str, value: str | os.PathLike[str]) -> str:
    path = os.path.abspath(os.fspath(value))
    if re.search(r"\s", path):
        raise ValueError(f"{field}={path!r}: paths given to the guest may "
                         "not contain whitespace")
    if any(path == p or path.startswith(p + "/") for p in _HIDDEN_PREFIXES):
        raise ValueError("{}={!r}: the guest mounts its own {} over the host "
                         "share; use a path elsewhere".format(
                             field, path, ", ".join(_HIDDEN_PREFIXES)))
    return path


class KernelGuest(fixtures.Fixture):
    """A QEMU guest with VT-d, igb and NVMe SR-IOV; see the module doc.

    Use as a fixture (assets are prepared in setUp, a missing apt archive
    skips the test unless ``$PASSTHROUGH_KERNEL_REQUIRED`` is set, and run
    dirs are removed at cleanUp) or bare: ``prepare()`` then ``run()``.
    """

    def __init__(self, python: str | os.PathLike[str] | None = None,
                 cache_dir: pathlib.Path | None = None,
                 kernel_package: str | None = None,
                 accel: str | None = None, memory_mb: int = 1536,
                 cpus: int = 1, extra_qemu_args: Sequence[str] = (),
                 extra_modules: Sequence[str] = (),
                 kernel_args: Sequence[str] = (),
                 prepare_timeout: float = 900.0,
                 keep_runs: bool = False) -> None:
        super().__init__()
        self.python = _checked_path("python", python or sys.executable)
        if not os.access(self.python, os.X_OK):
            raise ValueError(f"python={self.python!r} is not an executable "
                             "file; give the python of a venv, e.g. "
                             "/work/venv/bin/python")
        self.cache_dir = cache_dir
        self.kernel_package = kernel_package
        self.accel = accel or os.environ.get(ACCEL_ENV) or "tcg"
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.extra_qemu_args = list(extra_qemu_args)
        self.extra_modules = list(extra_modules)
        self.kernel_args = list(kernel_args)
        self.prepare_timeout = prepare_timeout
        self.keep_runs = keep_runs
        self.assets: assets_mod.Assets | None = None
        self.initrd: pathlib.Path | None = None
        self._runs: list[pathlib.Path] = []

    # -- fixture -------------------------------------------------------------

    def setUp(self) -> None:
        # Prepared before Fixture.setUp on purpose: fixtures wraps anything
        # _setUp raises together with a SetupError, which would turn the
        # skip into an error.
        try:
            self.prepare()
        except assets_mod.AssetsUnavailable as exc:
            if os.environ.get(REQUIRED_ENV):
                raise
            raise testtools.TestCase.skipException(
                f"kernel test assets cannot be fetched: {exc}") from exc
        super().setUp()

    def _setUp(self) -> None:
        self.addCleanup(self.close)

    def close(self) -> None:
        """Remove the run dirs made so far (unless ``keep_runs``)."""
        if self.keep_runs:
            return
        for run_dir in self._runs:
            shutil.rmtree(run_dir, ignore_errors=True)
        self._runs.clear()

    # -- assets --------------------------------------------------------------

    def prepare(self) -> assets_mod.Assets:
        """Fetch/unpack assets and build the initramfs; cheap when cached.

        :raises AssetsUnavailable: no apt or no archive access (skip).
        :raises AssetsBroken: fetched but unusable (a failure).
        """
        if self.assets is None or self.initrd is None:
            found = assets_mod.prepare(self.cache_dir, self.kernel_package,
                                       self.prepare_timeout)
            with assets_mod.cache_lock(found.cache_dir / ".lock",
                                       self.prepare_timeout):
                self.initrd = initramfs.build(
                    found, list(topology.EXTRA_MODULES) + self.extra_modules,
                    topology.LOAD_MODULES)
            self.assets = found
        return self.assets

    # -- running -------------------------------------------------------------

    def run(self, script: str, timeout: float = 600.0,
            env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None,
            out_dir: str | os.PathLike[str] | None = None,
            shell: str = "/bin/sh",
            echo: Callable[[str], None] | None = None) -> GuestResult:
        """Boot, run ``script`` chrooted in host userspace, power off.

        :param timeout: seconds for the whole boot + script + power-off.
        :param out_dir: host dir shared writable as ``$PT_OUT`` (default: a
            new temp dir, removed at fixture cleanup).
        :param echo: called with each serial line as it arrives.
        :raises GuestError: no result line within ``timeout`` or QEMU died.
            A kernel panic before the script starts is retried (up to 3
            boots in all, within ``timeout``); ``result.boots`` counts them.
        """
        assets = self.prepare()
        assert self.initrd is not None
        run_dir = pathlib.Path(tempfile.mkdtemp(prefix="pt-kernel-run-"))
        self._runs.append(run_dir)
        ctl = run_dir / "ctl"
        ctl.mkdir()
        out = pathlib.Path(_checked_path(
            "out_dir", out_dir or run_dir / "out"))
        out.mkdir(parents=True, exist_ok=True)
        workdir = _checked_path("cwd", cwd or REPO_ROOT)
        (ctl / "script.sh").write_text(script)
        (ctl / "run.sh").write_text(self._run_sh(
            assets, ctl, out, workdir, shell, env or {}))
        deadline = time.monotonic() + timeout
        for boot in range(1, _BOOT_ATTEMPTS + 1):
            nonce = secrets.token_hex(8)
            argv = self._qemu_argv(assets, self.initrd, ctl, out, nonce)
            LOG.debug("kernel harness: %s", " ".join(map(shlex.quote, argv)))
            try:
                result = self._boot(argv, assets, run_dir, out, nonce,
                                    deadline, timeout, echo)
            except _EarlyPanic as exc:
                # The script never started, so booting again hides nothing
                # about it; see _EarlyPanic for the cause.
                if boot == _BOOT_ATTEMPTS or time.monotonic() > deadline:
                    raise
                LOG.warning("kernel harness: guest kernel panicked before "
                            "the script started (boot %d); booting again: "
                            "%s", boot, exc.panic)
                continue
            return dataclasses.replace(result, boots=boot)
        raise AssertionError("unreachable")

    def _run_sh(self, assets: assets_mod.Assets, ctl: pathlib.Path,
                out: pathlib.Path, workdir: str, shell: str,
                env: Mapping[str, str]) -> str:
        bindir = os.path.dirname(self.python)
        values = {"PT_PYTHON": self.python, "PT_OUT": str(out),
                  "PT_REPO": str(REPO_ROOT), "HOME": "/root",
                  "LANG": "C.UTF-8",
                  "PATH": bindir + ":/usr/local/sbin:/usr/local/bin:"
                          "/usr/sbin:/usr/bin:/sbin:/bin"}
        if (pathlib.Path(bindir).parent / "pyvenv.cfg").exists():
            values["VIRTUAL_ENV"] = str(pathlib.Path(bindir).parent)
        values.update(env)
        for key in values:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(
                    f"env key {key!r} is not a shell variable name")
        lines = ["# generated by tests/functional/kernel/harness.py"]
        lines += [f"export {k}={shlex.quote(v)}"
                  for k, v in values.items()]
        # A host without kmod still gets modprobe & co. in the guest: the
        # unpacked kmod in the cache is visible through the root share.
        libs = ":".join(assets.lib_dirs())
        links = assets.tools_root / "kmod-links"
        for tool in _KMOD_TOOLS:
            initramfs.kmod_tool(assets, tool)
        lines.append("if ! command -v modprobe >/dev/null 2>&1; then")
        lines.append("  mkdir -p /usr/local/sbin")
        for tool in _KMOD_TOOLS:
            lines.append(
                f"  printf '#!/bin/sh\\nLD_LIBRARY_PATH={libs} exec "
                f"{links / tool} \"$@\"\\n' > /usr/local/sbin/{tool}"
                f" && chmod +x /usr/local/sbin/{tool}")
        lines.append("fi")
        lines.append("[ -x \"$PT_PYTHON\" ] || echo \"PT-HARNESS: "
                     "$PT_PYTHON is not visible in the guest\"")
        lines.append(f"cd {shlex.quote(workdir)} || exit 126")
        lines.append("{} {}".format(shlex.quote(shell),
                                shlex.quote(str(ctl / "script.sh"))))
        return "\n".join(lines) + "\n"

    def _qemu_argv(self, assets: assets_mod.Assets, initrd: pathlib.Path,
                   ctl: pathlib.Path, out: pathlib.Path,
                   nonce: str) -> list[str]:
        cmdline = ["console=ttyS0", "intel_iommu=on", "iommu=pt", "panic=-1",
                   "quiet", "loglevel=4", *self.kernel_args,
                   "pt.nonce=" + nonce, "pt.ctl=" + str(ctl),
                   "pt.out=" + str(out)]
        return [
            *assets.qemu_command(),
            "-accel", self.accel, *self._clock_args(),
            "-machine", "q35,kernel-irqchip=split",
            "-cpu", "max", "-smp", str(self.cpus), "-m", str(self.memory_mb),
            "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot",
            *topology.device_args(),
            "-virtfs", ("local,path=/,mount_tag=hostroot,security_model=none,"
                        "readonly=on,multidevs=remap"),
            "-virtfs", (f"local,path={out},mount_tag=outshare,"
                        "security_model=none"),
            *self.extra_qemu_args,
            "-kernel", str(assets.vmlinuz), "-initrd", str(initrd),
            "-append", " ".join(cmdline),
        ]

    def _clock_args(self) -> list[str]:
        """Guest time from instructions executed, not the host's clock.

        Under TCG on a busy host the guest's boot-time timer check (ticks
        through the interrupt-remapped IO-APIC while it busy-waits) misses
        its ticks and the kernel panics: 2 of 3 boots at load 22 here.
        With ``-icount`` the guest's clock advances with the instructions
        it runs, so the check sees the same ticks however loaded the host
        is (3 of 3 at the same load). The guest's idle time stays real
        time (``sleep=on``): a guest waiting for the host, such as the
        hotplug test's ``device_add``, must not see its timeout warp by.
        KVM keeps real time.
        """
        if self.accel.split(",")[0] != "tcg":
            return []
        return ["-icount", "shift=auto,sleep=on"]

    def _boot(self, argv: list[str], assets: assets_mod.Assets,
              run_dir: pathlib.Path, out: pathlib.Path, nonce: str,
              deadline: float, timeout: float,
              echo: Callable[[str], None] | None) -> GuestResult:
        marker = re.compile(rf"PT-HARNESS-RC {nonce} (-?\d+)")
        lines: list[str] = []
        done = threading.Event()
        started = time.monotonic()
        proc = subprocess.Popen(
            _die_with_parent(argv), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=assets.tool_env())

        def pump() -> None:
            assert proc.stdout is not None
            with open(run_dir / "serial.log", "wb") as copy:
                for raw in proc.stdout:
                    copy.write(raw)
                    copy.flush()
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    lines.append(line.replace("\r", ""))
                    if echo is not None:
                        echo(lines[-1])
                    if marker.search(line):
                        done.set()
            done.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            if not done.wait(max(1.0, deadline - time.monotonic())):
                timed_out = True
            else:
                # Power-off follows the result line; give it a moment.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            reader.join(10)
        log = "\n".join(lines)
        if timed_out:
            # The log once QEMU is gone and the reader has read all it
            # printed, not only the lines read by the deadline.
            raise GuestError(f"guest gave no result within {timeout}s", log,
                             run_dir)
        found = [m for m in map(marker.search, lines) if m]
        if not found:
            panic = next((line for line in lines if "Kernel panic" in line),
                         None)
            if panic is not None and not any(
                    line.startswith("PT-HARNESS: running ") for line in lines):
                raise _EarlyPanic(panic, log, run_dir)
            why = "the guest kernel panicked" if panic else "no result line"
            raise GuestError(f"QEMU exited (rc {proc.returncode}): {why}",
                             log, run_dir)
        seconds = time.monotonic() - started
        LOG.info("kernel harness: guest rc %s in %.1fs", found[-1].group(1),
                 seconds)
        return GuestResult(rc=int(found[-1].group(1)), log=log, out_dir=out,
                           seconds=seconds)


def venv_python() -> str:
    """The test's own virtualenv python (its ``bin/python``, not the
    interpreter it links to): the guest runs the project with it."""
    venv = os.path.join(os.path.dirname(sys.executable), "python")
    return venv if os.access(venv, os.X_OK) else sys.executable


def results_json(result: GuestResult) -> dict[str, object]:
    """The ``results.json`` a guest script wrote to ``$PT_OUT``.

    :raises AssertionError: with the end of the script's output when it
        wrote none.
    """
    path = result.out_dir / "results.json"
    if not path.exists():
        raise AssertionError(
            "the guest script wrote no results.json (guest rc %s); the end "
            "of its output:\n%s" % (result.rc, result.output[-4000:]))
    found: dict[str, object] = json.loads(path.read_text())
    return found


class SharedRun:
    """One guest run for every test of a module in one process.

    The first test that asks boots it (the guest is that test's fixture);
    the others read the same state. A failed run is kept and raised to
    each test, never booted again.
    """

    def __init__(self, boot: Callable[[testtools.TestCase],
                                      dict[str, object]]) -> None:
        self._boot = boot
        self._lock = threading.Lock()
        self._state: dict[str, object] = {}
        self._error: BaseException | None = None

    def state(self, test: testtools.TestCase) -> dict[str, object]:
        with self._lock:
            if self._error is not None:
                raise self._error
            if not self._state:
                try:
                    self._state = self._boot(test)
                except BaseException as exc:
                    self._error = exc
                    raise
            return self._state
