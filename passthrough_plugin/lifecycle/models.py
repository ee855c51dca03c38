"""SQLAlchemy models of the ledger: instances, intervals, hotplugs."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy import orm

UTC = datetime.timezone.utc


class UTCDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so naive UTC
    is stored there (its ISO strings then sort and compare in time order).
    Naive datetimes are refused: a wrong offset would bill the wrong hours.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime.datetime | None,
                           dialect: sa.Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError('naive datetime %s: the ledger stores aware '
                             'UTC timestamps' % value.isoformat())
        value = value.astimezone(UTC)
        if dialect.name == 'sqlite':
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime.datetime | None,
                             dialect: sa.Dialect
                             ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(orm.DeclarativeBase):
    pass


class Instance(Base):
    """An instance the ledger has seen, where it runs and its headroom."""

    __tablename__ = 'instances'

    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36),
                                              primary_key=True)
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255),
                                                    index=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    # JSON {alias: count}: the flavor's passthrough:hotplug_headroom.
    headroom: orm.Mapped[str] = orm.mapped_column(sa.Text, default='{}')
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    deleted_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime, nullable=True)


class Hotplug(Base):
    """One device hot-plugged into an instance, remembered until removed."""

    __tablename__ = 'hotplugs'

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True,
                                            autoincrement=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey('instances.uuid'), index=True)
    alias: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    requested_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    removed_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime, nullable=True)
    removed_reason: orm.Mapped[str | None] = orm.mapped_column(
        sa.Text, nullable=True)


class Assignment(Base):
    """A half-open interval [started_at, ended_at) of one device's use."""

    __tablename__ = 'assignments'
    __table_args__ = (
        # A host device has at most one open interval: the ledger itself
        # refuses a double allocation.
        sa.Index('uniq_assignments_open_device', 'host', 'host_address',
                 unique=True,
                 sqlite_where=sa.text('ended_at IS NULL'),
                 postgresql_where=sa.text('ended_at IS NULL')),
        sa.Index('ix_assignments_span', 'started_at', 'ended_at'),
    )

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True,
                                            autoincrement=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey('instances.uuid'), index=True)
    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255),
                                                    index=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    host_address: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    guest_address: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(16), nullable=True)
    resource_class: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    alias: orm.Mapped[str | None] = orm.mapped_column(sa.String(255),
                                                      nullable=True)
    source: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    hotplug_id: orm.Mapped[int | None] = orm.mapped_column(
        sa.ForeignKey('hotplugs.id'), nullable=True)
    started_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    ended_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime, nullable=True)
    end_reason: orm.Mapped[str | None] = orm.mapped_column(
        sa.Text, nullable=True)


class PendingRelease(Base):
    """Claims on an evacuated instance's source host, to free later."""

    __tablename__ = 'pending_releases'

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True,
                                            autoincrement=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey('instances.uuid'), index=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255), index=True)
    # JSON list of the host addresses the instance held there.
    addresses: orm.Mapped[str] = orm.mapped_column(sa.Text)
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    applied_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime, nullable=True)


class Event(Base):
    """What happened to an instance's devices, for operators to read."""

    __tablename__ = 'events'

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True,
                                            autoincrement=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey('instances.uuid'), index=True)
    action: orm.Mapped[str] = orm.mapped_column(sa.String(32))
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    at: orm.Mapped[datetime.datetime] = orm.mapped_column(UTCDateTime)
    detail: orm.Mapped[str] = orm.mapped_column(sa.Text, default='')
