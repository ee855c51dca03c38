"""The ``file`` report store: a directory of JSON host reports and a lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import limits
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base

LOG = logging.getLogger(__name__)

STORE = 'file'
SUFFIX = '.json'
INDEX = '.index.json'
LOCK = '.lock'
TMP_PREFIX = '.tmp-'
# The directory is created with this mode whatever the umask: the store's
# readers (schedulers) may share a group, nobody else writes there.
DIR_MODE = 0o750
# Open nothing through a symlink: a link swapped in for .lock or a report
# would redirect the store's reads and writes.
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def check_host(host: str) -> str:
    """:raises: Invalid when ``host`` cannot name a report file."""
    problem = limits.host_problem(host)
    if problem is not None:
        raise exception.Invalid(reason=problem)
    return host


class FileReportStore(base.ReportStore):
    """One ``<host>.json`` per host under ``[file_store] path``.

    Every write takes an exclusive ``flock`` on ``.lock`` in the directory,
    re-reads the host's file under it, and replaces the file atomically
    (temp file, fsync, rename), so concurrent claimers in several processes
    serialise and never hand out one device twice, and a reader never sees
    half a file. ``.index.json`` maps each host to its generation and the
    inode of the file that generation was written to, so
    :meth:`generations` costs one directory scan and one small read.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        store_conf.register_opts(conf)
        self.path = os.path.abspath(conf.file_store.path)

    # -- paths and low-level I/O -------------------------------------------

    def _file(self, host: str) -> str:
        return os.path.join(self.path, check_host(host) + SUFFIX)

    def _unavailable(self, exc: OSError) -> exception.StoreUnavailable:
        return exception.StoreUnavailable(
            store=STORE, reason='%s: %s' % (self.path, exc.strerror or exc))

    def _directory(self) -> None:
        """Create the store directory (mode 0750), or check the one there.

        :raises: StoreUnavailable for a directory any user may write to, or
            one that is a symlink.
        """
        try:
            os.mkdir(self.path, DIR_MODE)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), DIR_MODE, exist_ok=True)
            os.mkdir(self.path, DIR_MODE)
        else:
            # mkdir's mode passes through the umask (000 would leave it
            # world-writable if we asked for more); say it exactly.
            os.chmod(self.path, DIR_MODE)
        info = os.lstat(self.path)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise exception.StoreUnavailable(
                store=STORE, reason='%s is not a directory (a symlink or a '
                'file); [file_store] path must name a real directory'
                % self.path)
        if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
            raise exception.StoreUnavailable(
                store=STORE, reason='%s is writable by every user (mode '
                '%04o): anyone could replace a host report; chmod o-w it'
                % (self.path, stat.S_IMODE(info.st_mode)))

    def _clean_stale(self) -> None:
        """Remove temp files of writers killed mid-write.

        Every writer writes its temp files under the lock, so any left
        while we hold it belong to a writer that died.
        """
        try:
            entries = list(os.scandir(self.path))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                LOG.info('Removing %s, left by a writer that died',
                         entry.path)
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store-wide write lock (an flock on ``.lock``)."""
        lock = os.path.join(self.path, LOCK)
        try:
            self._directory()
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise exception.StoreUnavailable(
                    store=STORE, reason='%s is a symlink; refusing to follow '
                    'it (remove it, the store recreates it)' % lock
                ) from None
            raise self._unavailable(exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise exception.StoreUnavailable(
                    store=STORE, reason='%s is not a regular file' % lock)
            deadline = time.monotonic() + self.conf.file_store.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise exception.StoreUnavailable(
                            store=STORE, reason='%s: lock held by another '
                            'process for more than %.1f s ([file_store] '
                            'lock_timeout)' % (
                                os.path.join(self.path, LOCK),
                                self.conf.file_store.lock_timeout)) from None
                    time.sleep(0.005)
            self._clean_stale()
            yield
        finally:
            # Closing the descriptor drops the flock.
            os.close(fd)

    def _write(self, name: str, text: str) -> int:
        """Atomically replace ``name`` in the store; return its new inode."""
        final = os.path.join(self.path, name)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=TMP_PREFIX)
            try:
                with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                # The rename itself must survive a crash too.
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return os.stat(final).st_ino
        except OSError as exc:
            raise self._unavailable(exc) from None

    def _read_index(self) -> dict[str, list[int]]:
        try:
            with open(os.path.join(self.path, INDEX), encoding='utf-8') as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # The index is only a cache of the files: rebuilt on next write.
            LOG.warning('Ignoring unreadable report store index in %s: %s',
                        self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {h: v for h, v in data.items()
                if isinstance(v, list) and len(v) == 2}

    def _load(self, host: str) -> tuple[report_mod.HostReport, int]:
        """Read and validate a host's file; return it with its inode."""
        path = self._file(host)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            raise exception.HostReportNotFound(host=host,
                                               store=STORE) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise exception.InvalidHostReport(
                    host=host, path=path, reason='the file is a symlink; '
                    'the store reads only its own files') from None
            raise self._unavailable(exc) from None
        with os.fdopen(fd, 'rb') as handle:
            info = os.fstat(handle.fileno())
            inode = info.st_ino
            if not stat.S_ISREG(info.st_mode):
                raise exception.InvalidHostReport(
                    host=host, path=path, reason='not a regular file')
            if info.st_size > limits.MAX_REPORT_BYTES:
                raise exception.InvalidHostReport(
                    host=host, path=path, reason='the file is %d bytes; at '
                    'most %d' % (info.st_size, limits.MAX_REPORT_BYTES))
            try:
                text = handle.read(limits.MAX_REPORT_BYTES + 1)
            except OSError as exc:
                raise self._unavailable(exc) from None
        try:
            report = report_mod.HostReport.from_json(text, source=host)
        except exception.InvalidHostReport as exc:
            raise exception.InvalidHostReport(
                host=host, path=path, reason=exc.message) from None
        except (ValueError, TypeError, RecursionError, MemoryError) as exc:
            # Whatever a hostile file holds, only this host fails.
            raise exception.InvalidHostReport(
                host=host, path=path, reason='unreadable report: %s'
                % limits.excerpt(str(exc), 200)) from None
        if report.host != host:
            raise exception.InvalidHostReport(
                host=host, path=path,
                reason='the file holds the report of host %r' % report.host)
        return report, inode

    def _save(self, report: report_mod.HostReport,
              index: dict[str, list[int]]) -> int:
        report.generation = index.get(report.host, [0, 0])[0] + 1
        inode = self._write(report.host + SUFFIX, report.to_json())
        index[report.host] = [report.generation, inode]
        self._write(INDEX, json.dumps(index, sort_keys=True))
        return report.generation

    def _current(self, host: str, index: dict[str, list[int]]
                 ) -> report_mod.HostReport:
        """A host's report under the lock, its generation from the index."""
        report, inode = self._load(host)
        entry = index.get(host)
        if entry is None or entry[1] != inode:
            # Written outside the store: adopt it, above any old generation.
            index[host] = [max(report.generation,
                               entry[0] if entry else 0), inode]
        report.generation = index[host][0]
        return report

    # -- the contract --------------------------------------------------------

    def publish(self, report: report_mod.HostReport) -> int:
        check_host(report.host)
        try:
            data = report.to_dict()
        except (AttributeError, TypeError, ValueError) as exc:
            raise exception.InvalidHostReport(
                host=report.host, path='$', reason='not a host report: %s'
                % limits.excerpt(str(exc), 200)) from None
        # Validate before serialising (to_json() of a 5,000-digit number
        # would raise on its own); claims are merged into this copy, never
        # into the caller's report.
        report = report_mod.HostReport.from_dict(data, report.host)
        with self._locked():
            index = self._read_index()
            try:
                old: report_mod.HostReport | None = self._current(
                    report.host, index)
            except exception.HostReportNotFound:
                old = None
            except exception.InvalidHostReport as exc:
                LOG.warning('Replacing the corrupt report of %s: %s',
                            report.host, exc.message)
                old = None
            if old is not None:
                _carry_claims(old, report)
            generation = self._save(report, index)
        LOG.debug('Published report of %s, generation %d', report.host,
                  generation)
        return generation

    def get(self, host: str) -> report_mod.HostReport:
        report, inode = self._load(host)
        entry = self._read_index().get(host)
        if entry is not None and entry[1] == inode:
            report.generation = entry[0]
        return report

    def generations(self) -> dict[str, int]:
        """Hosts' generations; a file changed outside the store gets a
        negative token (minus its inode) so caches still see the change.
        """
        index = self._read_index()
        result: dict[str, int] = {}
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._unavailable(exc) from None
        for entry in entries:
            name = entry.name
            if not name.endswith(SUFFIX) or name.startswith('.'):
                continue
            host = name[:-len(SUFFIX)]
            if limits.host_problem(host) is not None:
                # Not ours (an operator's copy, a hostile name): skipping
                # it keeps every reader of the store working.
                LOG.warning('Ignoring %s in the report store: not a valid '
                            'host name', limits.excerpt(name))
                continue
            known = index.get(host)
            if known is not None and known[1] == entry.inode():
                result[host] = known[0]
            else:
                result[host] = -entry.inode()
        return result

    def claim(self, host: str, consumer: str, devices: Sequence[str],
              expected_generation: int | None = None,
              source: str = 'flavor') -> int:
        check_host(host)
        base.check_consumer(consumer)
        if not devices:
            raise exception.ClaimFailed(consumer=consumer, host=host,
                                        reason='no devices to claim')
        with self._locked():
            index = self._read_index()
            report = self._current(host, index)
            if (expected_generation is not None
                    and expected_generation != report.generation):
                raise exception.GenerationConflict(
                    host=host, expected=expected_generation,
                    actual=report.generation)
            pools = pools_mod.HostPools.from_report(report)
            wanted = _with_group_mates(pools, host, consumer, devices)
            fit = pools_mod.Fit(True, (tuple(wanted),))
            pools.consume(fit, consumer, source)
            generation = self._save(report, index)
        LOG.info('Consumer %s claimed %s on %s (generation %d)', consumer,
                 ', '.join(wanted), host, generation)
        return generation

    def release(self, host: str, consumer: str) -> list[str]:
        check_host(host)
        base.check_consumer(consumer)
        with self._locked():
            index = self._read_index()
            report = self._current(host, index)
            released = []
            for dev in report.devices:
                if dev.owner == consumer:
                    released.append(dev.address)
                    if dev.status in report_mod.IN_USE:
                        dev.status = 'available'
                    dev.owner = None
                    dev.source = None
            if released:
                self._save(report, index)
        if released:
            LOG.info('Consumer %s released %s on %s', consumer,
                     ', '.join(released), host)
        return released

    def remove(self, host: str) -> None:
        with self._locked():
            try:
                os.unlink(self._file(host))
            except FileNotFoundError:
                raise exception.HostReportNotFound(host=host,
                                                   store=STORE) from None
            except OSError as exc:
                raise self._unavailable(exc) from None
            index = self._read_index()
            # Keep the generation so a re-added host continues above it.
            self._write(INDEX, json.dumps(index, sort_keys=True))


def _with_group_mates(pools: pools_mod.HostPools, host: str, consumer: str,
                      devices: Sequence[str]) -> list[str]:
    """``devices`` plus their IOMMU group mates: groups go whole."""
    wanted: list[str] = []
    for address in devices:
        index = pools.by_address.get(address)
        if index is None:
            raise exception.ClaimFailed(
                consumer=consumer, host=host,
                reason='device %s is not in the host report' % address)
        for mate in pools.groups[pools.group_of[index]]:
            mate_address = pools.devices[mate].address
            if mate_address not in wanted:
                wanted.append(mate_address)
    return wanted


def _carry_claims(old: report_mod.HostReport,
                  new: report_mod.HostReport) -> None:
    """Keep the store's claims across an agent's re-publish."""
    present = {d.address: d for d in new.devices}
    for dev in old.devices:
        fresh = present.get(dev.address)
        kept_before = dev.status == 'unavailable' and fresh is None
        if not dev.owner or not (dev.status == 'claimed' or kept_before):
            continue
        if fresh is None:
            # The device vanished: keep the claim visible until released.
            LOG.warning('Device %s of %s claimed by %s vanished from the '
                        'report; keeping it unavailable until released',
                        dev.address, new.host, dev.owner)
            kept: dict[str, Any] = dev.to_dict()
            kept['status'] = 'unavailable'
            new.devices.append(report_mod.Device.from_dict(kept))
            continue
        if fresh.status == 'available':
            fresh.status, fresh.owner, fresh.source = (
                'claimed', dev.owner, dev.source)
        elif fresh.owner != dev.owner:
            LOG.warning('Device %s of %s claimed by %s is reported %s by '
                        'the agent for %s; the agent wins', dev.address,
                        new.host, dev.owner, fresh.status, fresh.owner)
