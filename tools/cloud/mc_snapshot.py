"""A copy of the freshly migrated databases, so the next setup skips the
migrations (the slow part of setup) when nothing they depend on changed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mc_procs import log
from mc_settings import Settings

# Everything setup's migrations and bootstraps write, relative to $BASE.
CONTENT = ('data/keystone.db', 'data/glance.db', 'data/fernet-keys',
           'data/credential-keys', 'mysql/data')
KEEP = 2
CONFIGS = ('keystone/keystone.conf', 'placement/placement.conf',
           'glance/glance-api.conf', 'nova/nova.conf')


def key(s: Settings, my_cnf: str) -> str:
    """Changes with the rendered configs and the venv's package versions."""
    digest = hashlib.sha256(my_cnf.encode())
    for rel in CONFIGS:
        digest.update((s.etc / rel).read_bytes())
    # The project's own version changes with every commit and touches no
    # schema: leave it out, or each commit would miss the cache.
    dists = sorted(p.name for p in s.venv.glob(
        'lib/python3*/site-packages/*.dist-info')
        if not p.name.startswith('passthrough_plugin-'))
    digest.update('\n'.join(dists).encode())
    return digest.hexdigest()[:16]


def _dir(s: Settings, snap_key: str) -> Path:
    return s.base / 'cache' / ('pristine-' + snap_key)


def restore(s: Settings, snap_key: str) -> bool:
    """Lay the snapshot over the empty state; False if there is none."""
    src = _dir(s, snap_key)
    if not (src / 'complete').exists():
        return False
    for rel in CONTENT:
        path = src / rel
        dst = s.base / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dst)
        else:
            shutil.copy2(path, dst)
    log('restored the migrated databases from %s', src)
    return True


def save(s: Settings, snap_key: str) -> None:
    """Keep the state of a completed setup (mysqld must be stopped)."""
    dst = _dir(s, snap_key)
    shutil.rmtree(dst, ignore_errors=True)
    for rel in CONTENT:
        path = s.base / rel
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dst / rel)
        else:
            shutil.copy2(path, dst / rel)
    (dst / 'complete').write_text(snap_key + '\n')
    # ~200 MB each: keep the two newest (e.g. stock and hex PCI ids).
    snaps = sorted(dst.parent.glob('pristine-*'),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in snaps[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
