"""The ledger repository: opens the database, upgrades it, reads and writes."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Callable, Iterator, Mapping

import sqlalchemy as sa
from alembic import command as alembic_command
from alembic import config as alembic_config
from oslo_config import cfg
from oslo_log import log as logging
from sqlalchemy import orm

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import models
from passthrough_plugin.lifecycle import notifications
from passthrough_plugin.lifecycle import records

LOG = logging.getLogger(__name__)
UTC = datetime.timezone.utc
MIGRATIONS = 'passthrough_plugin.lifecycle:migrations'
# Seconds an SQLite writer waits for another's transaction to finish.
BUSY_TIMEOUT = 30

Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def _sqlite_dir(url: sa.URL) -> None:
    """Create the directory of an SQLite file so the default just works."""
    if url.get_backend_name() != 'sqlite' or not url.database \
            or url.database == ':memory:':
        return
    if str(url.query.get('uri', '')).lower() in ('true', '1'):
        # An SQLite URI ("file:...?mode=ro"): its path is not a file name,
        # and a read-only open must create nothing.
        return
    directory = os.path.dirname(os.path.abspath(url.database))
    os.makedirs(directory, mode=0o750, exist_ok=True)


def upgrade(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (alembic ``upgrade head``)."""
    config = alembic_config.Config()
    config.set_main_option('script_location', MIGRATIONS)
    # Its INFO lines: cmd.common.setup_logging keeps them for --debug.
    with engine.begin() as connection:
        config.attributes['connection'] = connection
        alembic_command.upgrade(config, 'head')


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # The driver's own transaction handling off: _sqlite_begin decides.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute('PRAGMA foreign_keys=ON')
    cursor.execute('PRAGMA busy_timeout=%d' % (BUSY_TIMEOUT * 1000))
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    """A read transaction: SQLite's lock only when it first writes."""
    connection.exec_driver_sql('BEGIN')


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    """A write transaction takes SQLite's write lock when it starts.

    Writers (threads or processes) then run one after another, so the
    check "is the device free from this instant?" and the insert that
    follows it cannot interleave with another writer's. Readers are not
    held up, and need no write access to the file.
    """
    connection.exec_driver_sql('BEGIN IMMEDIATE')


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, 'orig', None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


class Ledger:
    """Every device assignment interval, in any SQLAlchemy database.

    Reads open their own session; writes go through :meth:`begin`, one
    transaction per lifecycle operation, and notifications are sent only
    after the transaction commits.
    """

    def __init__(self, url: str, clock: Clock | None = None,
                 notifier: notifications.Notifier | None = None) -> None:
        self.clock: Clock = clock or utcnow
        self.notifier = notifier or notifications.NullNotifier()
        try:
            parsed = sa.make_url(url)
            _sqlite_dir(parsed)
            self.engine = sa.create_engine(parsed)
            # Writes (begin()) have an engine of their own: on SQLite it
            # starts every transaction with the write lock.
            self.write_engine = self.engine
            if parsed.get_backend_name() == 'sqlite':
                self.write_engine = sa.create_engine(parsed)
                for engine, begin in ((self.engine, _sqlite_begin),
                                      (self.write_engine,
                                       _sqlite_begin_immediate)):
                    sa.event.listen(engine, 'connect', _sqlite_pragmas)
                    sa.event.listen(engine, 'begin', begin)
            upgrade(self.engine)
        except (sa.exc.SQLAlchemyError, ImportError, OSError, ValueError,
                TypeError) as exc:
            # A file that is not a database, a bad URL, a server that is
            # down: one line naming the ledger, never a traceback.
            raise exception.LedgerUnavailable(
                url=_safe(url), reason=_first_line(exc)) from None
        self.sessions = orm.sessionmaker(self.engine,
                                         expire_on_commit=False)
        self.write_sessions = orm.sessionmaker(self.write_engine,
                                               expire_on_commit=False)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  clock: Clock | None = None) -> Ledger:
        """The ledger of ``[lifecycle] connection``, with its notifier."""
        return cls(conf.lifecycle.connection, clock,
                   notifications.from_conf(conf))

    def close(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()

    def now(self) -> datetime.datetime:
        value = self.clock()
        if value.tzinfo is None:
            raise exception.LedgerError(
                reason='the clock returned a naive datetime %s' % value)
        return value.astimezone(UTC)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Transaction]:
        """One transaction; notifications go out after it commits.

        Take the operation's time (:meth:`now`) inside it: on SQLite the
        transaction holds the write lock from its start, so the times of
        one device's writes follow the order they commit in.

        :raises: LedgerError when the database refuses the writes (an
            overlapping interval) or is busy/unreachable.
        """
        try:
            with self.write_sessions() as session, session.begin():
                # Begin now (SQLite: take the write lock) so that a clock
                # read inside the block comes after every earlier writer.
                session.connection()
                txn = Transaction(session)
                yield txn
        except sa.exc.IntegrityError as exc:
            raise exception.LedgerError(
                reason='the database refused the change: %s'
                % _first_line(exc)) from None
        except sa.exc.OperationalError as exc:
            raise exception.LedgerUnavailable(
                url=_safe(self.engine.url.render_as_string()),
                reason=_first_line(exc)) from None
        for kind, interval in txn.notices:
            try:
                getattr(self.notifier, kind)(interval)
            except Exception:  # noqa: BLE001 - metering must not break us
                LOG.exception('cannot send the %s notification of '
                              'interval %s', kind, interval.id)

    # -- reads -----------------------------------------------------------

    def instance(self, uuid: str,
                 field: str = 'instance') -> records.InstanceInfo:
        """:raises: UnknownInstance naming ``field``."""
        with self.sessions() as session:
            row = session.get(models.Instance, uuid)
            if row is None:
                raise unknown_instance(uuid, field)
            return records.InstanceInfo.from_row(row)

    def instances_on(self, host: str) -> list[records.InstanceInfo]:
        with self.sessions() as session:
            rows = session.scalars(
                sa.select(models.Instance)
                .where(models.Instance.host == host,
                       models.Instance.deleted_at.is_(None))
                .order_by(models.Instance.uuid))
            return [records.InstanceInfo.from_row(r) for r in rows]

    def intervals(self, instance: str | None = None,
                  host: str | None = None, host_address: str | None = None,
                  active: bool | None = None,
                  at: datetime.datetime | None = None
                  ) -> list[records.Interval]:
        """Intervals, oldest first, filtered by the given fields.

        ``active``: open (True) or closed (False) ones; ``at``: those that
        held their device at that instant (start <= at < end).
        """
        query = sa.select(models.Assignment)
        if at is not None:
            query = query.where(
                models.Assignment.started_at <= at,
                sa.or_(models.Assignment.ended_at.is_(None),
                       models.Assignment.ended_at > at))
        if instance is not None:
            query = query.where(models.Assignment.instance_uuid == instance)
        if host is not None:
            query = query.where(models.Assignment.host == host)
        if host_address is not None:
            query = query.where(
                models.Assignment.host_address == host_address)
        if active is True:
            query = query.where(models.Assignment.ended_at.is_(None))
        elif active is False:
            query = query.where(models.Assignment.ended_at.is_not(None))
        query = query.order_by(models.Assignment.started_at,
                               models.Assignment.id)
        with self.sessions() as session:
            return [records.Interval.from_row(r)
                    for r in session.scalars(query)]

    def overlapping(self, start: datetime.datetime,
                    end: datetime.datetime,
                    project: str | None = None) -> list[records.Interval]:
        """Intervals that share at least an instant with [start, end)."""
        a = models.Assignment
        query = sa.select(a).where(
            a.started_at < end,
            sa.or_(a.ended_at.is_(None), a.ended_at > start))
        if project is not None:
            query = query.where(a.project_id == project)
        query = query.order_by(a.started_at, a.id)
        with self.sessions() as session:
            return [records.Interval.from_row(r)
                    for r in session.scalars(query)]

    def hotplugs(self, instance: str,
                 active: bool = True) -> list[records.HotplugInfo]:
        query = sa.select(models.Hotplug).where(
            models.Hotplug.instance_uuid == instance)
        if active:
            query = query.where(models.Hotplug.removed_at.is_(None))
        with self.sessions() as session:
            return [records.HotplugInfo.from_row(r) for r in session.scalars(
                query.order_by(models.Hotplug.id))]

    def pending_releases(self, host: str | None = None
                         ) -> list[records.PendingReleaseInfo]:
        query = sa.select(models.PendingRelease).where(
            models.PendingRelease.applied_at.is_(None))
        if host is not None:
            query = query.where(models.PendingRelease.host == host)
        with self.sessions() as session:
            return [records.PendingReleaseInfo.from_row(r) for r in
                    session.scalars(query.order_by(models.PendingRelease.id))]

    def events(self, instance: str) -> list[records.EventInfo]:
        with self.sessions() as session:
            rows = session.scalars(
                sa.select(models.Event)
                .where(models.Event.instance_uuid == instance)
                .order_by(models.Event.at, models.Event.id))
            return [records.EventInfo(r.instance_uuid, r.action, r.host,
                                      r.at, r.detail) for r in rows]


class Transaction:
    """The writes of one lifecycle operation, in one database transaction."""

    def __init__(self, session: orm.Session) -> None:
        self.session = session
        self.notices: list[tuple[str, records.Interval]] = []

    def add_instance(self, uuid: str, project: str, host: str,
                     headroom: Mapping[str, int],
                     at: datetime.datetime) -> records.InstanceInfo:
        if self.session.get(models.Instance, uuid) is not None:
            raise exception.InvalidLedgerInput(
                field='instance', value=uuid,
                reason='the ledger already has this instance')
        row = models.Instance(uuid=uuid, project_id=project, host=host,
                              headroom=json.dumps(dict(headroom),
                                                  sort_keys=True),
                              created_at=at)
        self.session.add(row)
        self.session.flush()
        return records.InstanceInfo.from_row(row)

    def instance(self, uuid: str, field: str = 'instance') -> models.Instance:
        """The live instance row. :raises: UnknownInstance."""
        row = self.session.get(models.Instance, uuid)
        if row is None or row.deleted_at is not None:
            raise unknown_instance(uuid, field)
        return row

    def open_intervals(self, instance: str) -> list[models.Assignment]:
        return list(self.session.scalars(
            sa.select(models.Assignment)
            .where(models.Assignment.instance_uuid == instance,
                   models.Assignment.ended_at.is_(None))
            .order_by(models.Assignment.id)))

    def start(self, instance: models.Instance, host: str,
              host_address: str, *, resource_class: str, source: str,
              at: datetime.datetime, alias: str | None = None,
              hotplug_id: int | None = None,
              guest_address: str | None = None) -> records.Interval:
        """Open an interval.

        :raises: LedgerError if the device is held, or was held after
            ``at`` (the clock stepped back, or a later use was recorded
            first): intervals of one device never overlap.
        """
        a = models.Assignment
        holder = self.session.scalar(
            sa.select(a.instance_uuid).where(
                a.host == host, a.host_address == host_address,
                a.ended_at.is_(None)))
        if holder is not None:
            raise exception.LedgerError(
                reason='device %s of host %s is already held by instance '
                '%s' % (host_address, host, holder))
        later = self.session.execute(
            sa.select(a.instance_uuid, a.ended_at).where(
                a.host == host, a.host_address == host_address,
                a.ended_at > at).order_by(a.ended_at.desc()).limit(1)
        ).first()
        if later is not None:
            raise exception.LedgerError(
                reason='device %s of host %s was held by instance %s until '
                '%s, after this operation\'s time %s: the clock stepped '
                'back (check time sync on this host) or a later use was '
                'recorded first; refusing to record overlapping use' % (
                    host_address, host, later[0], later[1].isoformat(),
                    at.isoformat()))
        row = models.Assignment(
            instance_uuid=instance.uuid, project_id=instance.project_id,
            host=host, host_address=host_address,
            guest_address=guest_address, resource_class=resource_class,
            alias=alias, source=source, hotplug_id=hotplug_id,
            started_at=at)
        self.session.add(row)
        try:
            self.session.flush()
        except sa.exc.IntegrityError:
            # Another writer opened an interval on the device between our
            # check and our insert: the unique index decided.
            raise exception.LedgerError(
                reason='device %s of host %s was just taken by another '
                'writer' % (host_address, host)) from None
        interval = records.Interval.from_row(row)
        self.notices.append(('attach', interval))
        return interval

    def end(self, row: models.Assignment, at: datetime.datetime,
            reason: str) -> records.Interval:
        """:raises: LedgerError when ``at`` is before the start."""
        if at < row.started_at:
            raise exception.LedgerError(
                reason='interval %s of device %s on host %s started at %s, '
                'after this operation\'s time %s: the clock stepped back '
                '(check time sync on this host); refusing to end it before '
                'it began' % (row.id, row.host_address, row.host,
                              row.started_at.isoformat(), at.isoformat()))
        # Half-open: an interval closed at its own start held nothing.
        row.ended_at = at
        row.end_reason = reason
        self.session.flush()
        interval = records.Interval.from_row(row)
        self.notices.append(('detach', interval))
        return interval

    def add_hotplug(self, instance: str, alias: str,
                    at: datetime.datetime) -> int:
        row = models.Hotplug(instance_uuid=instance, alias=alias,
                             requested_at=at)
        self.session.add(row)
        self.session.flush()
        return row.id

    def remove_hotplug(self, hotplug_id: int, at: datetime.datetime,
                       reason: str) -> None:
        row = self.session.get(models.Hotplug, hotplug_id)
        if row is not None and row.removed_at is None:
            row.removed_at = at
            row.removed_reason = reason

    def active_hotplugs(self, instance: str) -> list[models.Hotplug]:
        return list(self.session.scalars(
            sa.select(models.Hotplug)
            .where(models.Hotplug.instance_uuid == instance,
                   models.Hotplug.removed_at.is_(None))
            .order_by(models.Hotplug.id)))

    def add_pending_release(self, instance: str, host: str,
                            addresses: list[str],
                            at: datetime.datetime) -> int:
        row = models.PendingRelease(instance_uuid=instance, host=host,
                                    addresses=json.dumps(addresses),
                                    created_at=at)
        self.session.add(row)
        self.session.flush()
        return row.id

    def mark_released(self, release_id: int, at: datetime.datetime) -> None:
        row = self.session.get(models.PendingRelease, release_id)
        if row is not None and row.applied_at is None:
            row.applied_at = at

    def set_guest_address(self, interval_id: int, guest: str) -> None:
        row = self.session.get(models.Assignment, interval_id)
        if row is not None:
            row.guest_address = guest

    def event(self, instance: str, action: str, host: str,
              at: datetime.datetime, detail: str = '') -> None:
        self.session.add(models.Event(instance_uuid=instance, action=action,
                                      host=host, at=at, detail=detail))


def unknown_instance(uuid: str, field: str) -> exception.UnknownInstance:
    return exception.UnknownInstance(
        value=uuid, field=field,
        hint=' (or it was deleted); check the UUID with "openstack server '
        'show"')


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
