"""The ``file`` report store: a directory of JSON host reports and a lock."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.conf import store as store_conf
from passthrough_plugin.pci import pools as pools_mod
from passthrough_plugin.pci import report as report_mod
from passthrough_plugin.store import base

LOG = logging.getLogger(__name__)

STORE = 'file'
SUFFIX = '.json'
INDEX = '.index.json'
LOCK = '.lock'
# Host names become file names: keep them to what a hostname may hold.
_HOST = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$')


def check_host(host: str) -> str:
    """:raises: Invalid when ``host`` cannot name a report file."""
    if not isinstance(host, str) or not _HOST.match(host):
        raise exception.Invalid(
            reason='host name %r is not a valid host name (letters, digits, '
            '".", "_" and "-", starting with a letter or digit)' % (host,))
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

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store-wide write lock (an flock on ``.lock``)."""
        try:
            os.makedirs(self.path, exist_ok=True)
            fd = os.open(os.path.join(self.path, LOCK),
                         os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._unavailable(exc) from None
        try:
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
            yield
        finally:
            # Closing the descriptor drops the flock.
            os.close(fd)

    def _write(self, name: str, text: str) -> int:
        """Atomically replace ``name`` in the store; return its new inode."""
        final = os.path.join(self.path, name)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix='.tmp-')
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
            with open(path, 'rb') as handle:
                inode = os.fstat(handle.fileno()).st_ino
                text = handle.read()
        except FileNotFoundError:
            raise exception.HostReportNotFound(host=host,
                                               store=STORE) from None
        except OSError as exc:
            raise self._unavailable(exc) from None
        try:
            report = report_mod.HostReport.from_json(text, source=host)
        except exception.InvalidHostReport as exc:
            raise exception.InvalidHostReport(
                host=host, path=path, reason=exc.message) from None
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
        report_mod.validate(report.to_dict(), report.host)
        # Claims are merged into our copy, never into the caller's report.
        report = copy.deepcopy(report)
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
            known = index.get(host)
            if known is not None and known[1] == entry.inode():
                result[host] = known[0]
            else:
                result[host] = -entry.inode()
        return result

    def claim(self, host: str, consumer: str, devices: Sequence[str],
              expected_generation: int | None = None,
              source: str = 'flavor') -> int:
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
