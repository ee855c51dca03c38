"""Fetch and unpack QEMU, busybox, kmod and a Debian kernel into a cache.

Everything comes from Debian's archive through a private apt configuration
(own sources.list, lists and package cache under the cache dir) and is
unpacked with ``dpkg -x``: nothing is installed system-wide and the system's
apt sources are left alone.  QEMU comes from bookworm-backports because the
emulated Intel 82576 (``igb``) needs QEMU >= 8.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

DEFAULT_KERNEL_PACKAGE = "linux-image-amd64"
CACHE_ENV = "PASSTHROUGH_KERNEL_CACHE"
KERNEL_PACKAGE_ENV = "PASSTHROUGH_KERNEL_PACKAGE"
# Bump when the layout or the tool set changes so old caches are redone.
_LAYOUT = 1
_TOOL_PACKAGES = ("busybox-static", "kmod", "libkmod2")
_QEMU_PACKAGE = "qemu-system-x86"
_QEMU_DEVICES = ("igb", "nvme", "intel-iommu", "pcie-pci-bridge", "e1000")
_INST_RE = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)")


class AssetsUnavailable(Exception):
    """The guest assets cannot be fetched here (no apt, no archive access)."""


class AssetsBroken(Exception):
    """Assets were fetched but do not work; a real failure, never a skip."""


@dataclasses.dataclass(frozen=True)
class Assets:
    """Paths of the unpacked tools and kernel, all inside the cache dir."""

    cache_dir: pathlib.Path
    tools_root: pathlib.Path
    kernel_root: pathlib.Path
    kernel_version: str
    qemu_version: str

    @property
    def qemu(self) -> pathlib.Path:
        return self.tools_root / "usr/bin/qemu-system-x86_64"

    @property
    def busybox(self) -> pathlib.Path:
        return self.tools_root / "bin/busybox"

    @property
    def kmod(self) -> pathlib.Path:
        return self.tools_root / "bin/kmod"

    @property
    def vmlinuz(self) -> pathlib.Path:
        return self.kernel_root / "boot" / ("vmlinuz-" + self.kernel_version)

    @property
    def modules_dir(self) -> pathlib.Path:
        return self.kernel_root / "lib/modules" / self.kernel_version

    def lib_dirs(self) -> list[str]:
        """Library dirs of the unpacked packages, for LD_LIBRARY_PATH."""
        found: list[str] = []
        for pattern in ("usr/lib/*-linux-gnu", "lib/*-linux-gnu"):
            found.extend(str(p) for p in sorted(self.tools_root.glob(pattern)))
        return found

    def tool_env(self) -> dict[str, str]:
        """Environment for running an unpacked binary (QEMU, kmod)."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(
            self.lib_dirs() + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        return env

    def qemu_command(self) -> list[str]:
        """argv prefix for QEMU, with its firmware dirs."""
        return [str(self.qemu),
                "-L", str(self.tools_root / "usr/share/qemu"),
                "-L", str(self.tools_root / "usr/share/seabios")]


def default_cache_dir() -> pathlib.Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("~/.cache/passthrough-plugin/kernel").expanduser()


def default_kernel_package() -> str:
    return os.environ.get(KERNEL_PACKAGE_ENV) or DEFAULT_KERNEL_PACKAGE


@contextlib.contextmanager
def cache_lock(path: pathlib.Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock so concurrent test processes fetch once."""
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssetsBroken(
                        f"timed out after {timeout}s waiting for lock "
                        f"{path}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mirrors() -> tuple[str, str | None]:
    """The Debian mirror (and security mirror) this machine is set up with."""
    uris: list[str] = []
    deb822 = pathlib.Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        uris += re.findall(r"^URIs:\s*(\S+)", deb822.read_text(), re.M)
    classic = pathlib.Path("/etc/apt/sources.list")
    if classic.exists():
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)",
                           classic.read_text(), re.M)
    # Only Debian archives: other vendors' lists may sit beside them.
    uris = [u for u in uris if "debian" in u]
    main = [u for u in uris if "security" not in u]
    security = [u for u in uris if "security" in u]
    return (main[0] if main else "http://deb.debian.org/debian",
            security[0] if security else None)


class _PrivateApt:
    """apt-get with its own sources, lists and cache under ``root``."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        for sub in ("lists/partial", "cache/archives/partial"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        mirror, security = _mirrors()
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        opt = f" [signed-by={keyring}]" if os.path.exists(keyring) else ""
        lines = [f"deb{opt} {mirror} bookworm main",
                 f"deb{opt} {mirror} bookworm-updates main",
                 f"deb{opt} {mirror} bookworm-backports main"]
        if security:
            lines.append(f"deb{opt} {security} bookworm-security main")
        (root / "sources.list").write_text("\n".join(lines) + "\n")
        self.options = [
            "-o", "Dir::Etc::sourcelist=%s" % (root / "sources.list"),
            "-o", "Dir::Etc::sourceparts=/nonexistent",
            "-o", "Dir::State::Lists=%s" % (root / "lists"),
            "-o", "Dir::Cache=%s" % (root / "cache"),
            # The _apt sandbox user could not write into our cache dir.
            "-o", "APT::Sandbox::User=root",
        ]

    def run(self, args: Sequence[str], timeout: float,
            cwd: pathlib.Path | None = None) -> str:
        argv = ["apt-get", *self.options, *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=timeout, cwd=cwd, check=False)
        except FileNotFoundError as exc:
            raise AssetsUnavailable("apt-get is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise AssetsUnavailable(
                f"apt-get {args[0]} timed out after {timeout}s") from exc
        if proc.returncode != 0:
            raise AssetsUnavailable(
                f"apt-get {' '.join(args)} failed (rc {proc.returncode}): "
                f"{proc.stderr.strip()[-800:]}")
        return proc.stdout

    def simulate(self, packages: Sequence[str],
                 timeout: float) -> list[tuple[str, str]]:
        """(name, version) of what installing ``packages`` would add here."""
        out = self.run(["-s", "install", "--no-install-recommends",
                        *packages], timeout)
        return [(m.group(1), m.group(2))
                for m in map(_INST_RE.match, out.splitlines()) if m]


def _unpack(debs: Sequence[pathlib.Path], dest: pathlib.Path,
            timeout: float) -> None:
    """dpkg -x the debs into a fresh dir, then move it into place."""
    # We hold the cache lock: any .tmp-* sibling is left by a killed run.
    for stale in dest.parent.glob(f"{dest.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True,
                       timeout=timeout, capture_output=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _download(apt: _PrivateApt, pins: Sequence[str], dest: pathlib.Path,
              timeout: float) -> list[pathlib.Path]:
    dest.mkdir(parents=True, exist_ok=True)
    wanted = []
    for pin in pins:
        name, _, version = pin.partition("=")
        # apt-get download names files NAME_VERSION_ARCH.deb with ':' as %3a.
        pattern = "{}_{}_*.deb".format(name, version.replace(":", "%3a"))
        have = sorted(dest.glob(pattern))
        if have:
            wanted.append(have[0])
            continue
        apt.run(["download", "-qq", pin], timeout, cwd=dest)
        got = sorted(dest.glob(pattern))
        if not got:
            raise AssetsBroken(
                f"apt-get download {pin} left no {pattern} in {dest}")
        wanted.append(got[0])
    return wanted


def _check_qemu(assets: Assets, timeout: float) -> str:
    env = assets.tool_env()
    try:
        version = subprocess.run(
            [*assets.qemu_command(), "--version"], capture_output=True,
            text=True, timeout=timeout, env=env, check=True).stdout
        devices = subprocess.run(
            [*assets.qemu_command(), "-device", "help"], capture_output=True,
            text=True, timeout=timeout, env=env, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise AssetsBroken(f"unpacked QEMU does not run: {exc}") from exc
    missing = [d for d in _QEMU_DEVICES if f'"{d}"' not in devices]
    if missing:
        raise AssetsBroken("QEMU {} lacks devices {}".format(
            version.strip(), ", ".join(missing)))
    return version.splitlines()[0].strip()


def _read_stamp(path: pathlib.Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("layout") != _LAYOUT:
        return None
    return {str(k): str(v) for k, v in data.items()}


def _write_stamp(path: pathlib.Path, data: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**data, "layout": _LAYOUT}, indent=1))
    tmp.rename(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text)


def prepare(cache_dir: pathlib.Path | None = None,
            kernel_package: str | None = None,
            timeout: float = 900.0) -> Assets:
    """Make sure QEMU, busybox, kmod and the kernel are unpacked; reuse them.

    Safe to call again and from several processes at once: a lock
    serialises the work, and stamps written last mark what is complete, so
    a run killed half way is simply redone.

    :raises AssetsUnavailable: apt is missing or the archive is unreachable.
    :raises AssetsBroken: things were fetched but do not work.
    """
    cache = cache_dir or default_cache_dir()
    kpkg = kernel_package or default_kernel_package()
    cache.mkdir(parents=True, exist_ok=True)
    tools_stamp = cache / "tools.json"
    kernel_stamp = cache / (f"kernel-{_slug(kpkg)}.json")
    with cache_lock(cache / ".lock", timeout):
        tools = _read_stamp(tools_stamp)
        kernel = _read_stamp(kernel_stamp)
        qemu = cache / "tools" / "usr/bin/qemu-system-x86_64"
        if (tools is None or kernel is None or not qemu.exists()
                or not pathlib.Path(kernel["root"]).is_dir()):
            tools, kernel = _fetch(cache, kpkg, tools, kernel, timeout,
                                   tools_stamp, kernel_stamp)
    return Assets(cache_dir=cache, tools_root=cache / "tools",
                  kernel_root=pathlib.Path(kernel["root"]),
                  kernel_version=kernel["version"],
                  qemu_version=tools["qemu_version"])


def _fetch(cache: pathlib.Path, kpkg: str, tools: dict[str, str] | None,
           kernel: dict[str, str] | None, timeout: float,
           tools_stamp: pathlib.Path,
           kernel_stamp: pathlib.Path) -> tuple[dict[str, str],
                                                dict[str, str]]:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise AssetsUnavailable("apt-get/dpkg not found: not a Debian host")
    started = time.monotonic()
    apt = _PrivateApt(cache / "apt")
    LOG.info("kernel harness: apt-get update (private lists in %s)",
             apt.root)
    apt.run(["update", "-qq"], timeout)
    debs = cache / "debs"
    if tools is None or not (cache / "tools/usr/bin/qemu-system-x86_64"
                             ).exists():
        # What QEMU needs beyond this host's installed packages, plus our
        # small tools (downloaded by name even when the host has them).
        pins = ["{}={}".format(*nv) for nv in apt.simulate(
            ["-t", "bookworm-backports", _QEMU_PACKAGE], timeout)]
        pins += ["{}={}".format(*nv) for nv in apt.simulate(
            ["--reinstall", *_TOOL_PACKAGES], timeout)
            if nv[0] in _TOOL_PACKAGES]
        if not any(p.startswith(_QEMU_PACKAGE + "=") for p in pins):
            raise AssetsBroken(f"apt did not offer {_QEMU_PACKAGE}")
        LOG.info("kernel harness: downloading %d packages", len(pins))
        files = _download(apt, pins, debs, timeout)
        _unpack(files, cache / "tools", timeout)
        probe = Assets(cache, cache / "tools", cache, "", "")
        tools = {"qemu_version": _check_qemu(probe, 60),
                 "packages": " ".join(pins)}
        _write_stamp(tools_stamp, tools)
    if kernel is None or not pathlib.Path(kernel["root"]).is_dir():
        image = [nv for nv in apt.simulate(["--reinstall", kpkg], timeout)
                 if re.match(r"linux-image-\d", nv[0])]
        if not image:
            raise AssetsBroken(f"{kpkg} resolves to no linux-image package")
        name, version = image[0]
        files = _download(apt, [f"{name}={version}"], debs, timeout)
        kver = name[len("linux-image-"):]
        root = cache / "kernels" / _slug(f"{kver}_{version}")
        root.parent.mkdir(parents=True, exist_ok=True)
        _unpack(files, root, timeout)
        kernel = {"version": kver, "root": str(root), "package": name,
                  "package_version": version}
        _write_stamp(kernel_stamp, kernel)
    LOG.info("kernel harness: assets ready in %.0fs",
             time.monotonic() - started)
    return tools, kernel
