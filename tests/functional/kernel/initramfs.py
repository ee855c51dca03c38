"""Build the guest initramfs: busybox, our /init and the needed modules.

Only the modules we name and their dependencies (from ``modules.dep`` and
``modules.softdep`` of the unpacked kernel) go in, so the image stays a few
MB.  The archive is written in Python (cpio "newc"), cached by content.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import lzma
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Sequence

from oslo_log import log as logging

from tests.functional.kernel import assets as assets_mod

LOG = logging.getLogger(__name__)

INIT_TEMPLATE = pathlib.Path(__file__).with_name("guest_init.sh")
_LAYOUT = 1
_KEEP_IMAGES = 6


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _modname(relpath: str) -> str:
    base = relpath.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            return _norm(base[: -len(suffix)])
    return _norm(base)


def kmod_tool(assets: assets_mod.Assets, tool: str) -> pathlib.Path:
    """kmod picks its personality from argv[0]: give it a named link."""
    links = assets.tools_root / "kmod-links"
    links.mkdir(exist_ok=True)
    link = links / tool
    if not link.is_symlink():
        # Several test processes may get here at once: first one wins.
        with contextlib.suppress(FileExistsError):
            link.symlink_to(assets.kmod)
    return link


def depmod(assets: assets_mod.Assets, base: pathlib.Path,
           version: str) -> None:
    subprocess.run([str(kmod_tool(assets, "depmod")), "-b", str(base),
                    version], check=True, capture_output=True, timeout=300,
                   env=assets.tool_env())


def module_closure(modules_dir: pathlib.Path,
                   names: Iterable[str]) -> list[str]:
    """Relative paths of ``names`` and everything they need, deps first.

    :raises AssetsBroken: a module is neither built in nor shipped.
    """
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[_modname(path)] = (path, rest.split())
    soft: dict[str, list[str]] = {}
    softfile = modules_dir / "modules.softdep"
    if softfile.exists():
        for line in softfile.read_text().splitlines():
            words = line.split()
            if len(words) > 2 and words[0] == "softdep":
                soft[_norm(words[1])] = [
                    _norm(w) for w in words[2:] if not w.endswith(":")]
    builtin = {_modname(p) for p in
               (modules_dir / "modules.builtin").read_text().split()}
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str, required: bool) -> None:
        name = _norm(name)
        if name in seen or name in builtin:
            return
        if name not in deps:
            if required:
                raise assets_mod.AssetsBroken(
                    f"module {name} is not in {modules_dir}")
            return
        seen.add(name)
        path, needs = deps[name]
        for soft_name in soft.get(name, []):
            visit(soft_name, False)
        for dep in needs:
            visit(_modname(dep), True)
        ordered.append(path)

    for wanted in names:
        visit(wanted, True)
    return ordered


class _Cpio:
    """A minimal writer of the cpio "newc" format the kernel unpacks."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                  len(encoded), 0)
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf.write(header + encoded)
        self.buf.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self.buf.write(data + b"\0" * (-len(data) % 4))

    def add_tree(self, root: pathlib.Path) -> None:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != ".":
                self._entry(rel_dir, stat.S_IFDIR | 0o755, b"")
            for fname in sorted(filenames):
                full = os.path.join(dirpath, fname)
                rel = os.path.normpath(os.path.join(rel_dir, fname))
                info = os.lstat(full)
                if stat.S_ISLNK(info.st_mode):
                    self._entry(rel, stat.S_IFLNK | 0o777,
                                os.readlink(full).encode())
                else:
                    self._entry(rel, stat.S_IFREG | (info.st_mode & 0o777),
                                pathlib.Path(full).read_bytes())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"")
        return self.buf.getvalue()


def _stage(assets: assets_mod.Assets, stage: pathlib.Path, init_text: str,
           modules: Sequence[str], load: Sequence[str]) -> None:
    kver = assets.kernel_version
    for sub in ("bin", "sbin", "proc", "sys", "dev", "tmp", "etc",
                "lib/modules/" + kver):
        (stage / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(assets.busybox, stage / "bin/busybox")
    init = stage / "init"
    init.write_text(init_text)
    init.chmod(0o755)
    (stage / "etc/modules.load").write_text("\n".join(load) + "\n")
    src = assets.modules_dir
    dst = stage / "lib/modules" / kver
    for rel in module_closure(src, modules):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".ko.xz"):
            # busybox modprobe cannot read compressed modules (6.12 ships
            # .ko.xz); depmod below then indexes the plain .ko files.
            target.with_suffix("").write_bytes(
                lzma.decompress((src / rel).read_bytes()))
        elif rel.endswith(".ko"):
            shutil.copy2(src / rel, target)
        else:
            raise assets_mod.AssetsBroken(f"cannot unpack module {rel}")
    for name in ("modules.builtin", "modules.builtin.modinfo",
                 "modules.order"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    depmod(assets, stage, kver)


def build(assets: assets_mod.Assets, modules: Sequence[str],
          load: Sequence[str], init_text: str | None = None) -> pathlib.Path:
    """Return the path of a gzipped initramfs, building it if needed.

    ``modules`` are shipped (with dependencies) so the guest can modprobe
    them; ``load`` are loaded by /init at boot, in order.
    """
    text = init_text if init_text is not None else INIT_TEMPLATE.read_text()
    key = hashlib.sha256("\0".join(
        [str(_LAYOUT), assets.kernel_version, str(assets.kernel_root), text,
         ",".join(modules), ",".join(load)]).encode()).hexdigest()[:16]
    out_dir = assets.cache_dir / "initrd"
    out_dir.mkdir(exist_ok=True)
    target = out_dir / (f"{key}.cpio.gz")
    if target.exists():
        target.touch()  # most recently used: kept by the pruning below
        return target
    if not (assets.modules_dir / "modules.dep").exists():
        LOG.info("kernel harness: depmod %s", assets.kernel_version)
        depmod(assets, assets.kernel_root, assets.kernel_version)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        stage = pathlib.Path(tmp) / "stage"
        _stage(assets, stage, text, list(modules) + list(load), load)
        archive = _Cpio()
        archive.add_tree(stage)
        part = pathlib.Path(tmp) / "initrd.part"
        part.write_bytes(gzip.compress(archive.finish(), compresslevel=6))
        part.rename(target)
    LOG.info("kernel harness: built %s", target)
    # Each change of /init or of the module list makes a new image; keep
    # the few most recently used ones (other branches may want them).
    images = sorted(out_dir.glob("*.cpio.gz"), key=lambda p: p.stat().st_mtime)
    for old in images[:-_KEEP_IMAGES]:
        old.unlink(missing_ok=True)
    return target
