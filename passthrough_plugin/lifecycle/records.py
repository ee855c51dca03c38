"""Plain, immutable views of ledger rows, handed out instead of ORM objects."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from passthrough_plugin.lifecycle import models


@dataclasses.dataclass(frozen=True, slots=True)
class Interval:
    """One device held by one instance over [start, end); end None: open."""

    id: int
    instance: str
    project: str
    host: str
    host_address: str
    guest_address: str | None
    resource_class: str
    alias: str | None
    source: str
    hotplug_id: int | None
    start: datetime.datetime
    end: datetime.datetime | None
    end_reason: str | None

    @property
    def active(self) -> bool:
        return self.end is None

    @classmethod
    def from_row(cls, row: models.Assignment) -> Interval:
        return cls(row.id, row.instance_uuid, row.project_id, row.host,
                   row.host_address, row.guest_address, row.resource_class,
                   row.alias, row.source, row.hotplug_id, row.started_at,
                   row.ended_at, row.end_reason)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data['start'] = iso(self.start)
        data['end'] = iso(self.end) if self.end else None
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceInfo:
    uuid: str
    project: str
    host: str
    headroom: dict[str, int]
    created_at: datetime.datetime
    deleted_at: datetime.datetime | None

    @classmethod
    def from_row(cls, row: models.Instance) -> InstanceInfo:
        return cls(row.uuid, row.project_id, row.host,
                   {str(k): int(v) for k, v in
                    json.loads(row.headroom or '{}').items()},
                   row.created_at, row.deleted_at)


@dataclasses.dataclass(frozen=True, slots=True)
class HotplugInfo:
    id: int
    instance: str
    alias: str
    requested_at: datetime.datetime
    removed_at: datetime.datetime | None
    removed_reason: str | None

    @classmethod
    def from_row(cls, row: models.Hotplug) -> HotplugInfo:
        return cls(row.id, row.instance_uuid, row.alias, row.requested_at,
                   row.removed_at, row.removed_reason)


@dataclasses.dataclass(frozen=True, slots=True)
class PendingReleaseInfo:
    id: int
    instance: str
    host: str
    addresses: tuple[str, ...]
    created_at: datetime.datetime
    applied_at: datetime.datetime | None

    @classmethod
    def from_row(cls, row: models.PendingRelease) -> PendingReleaseInfo:
        return cls(row.id, row.instance_uuid, row.host,
                   tuple(json.loads(row.addresses)), row.created_at,
                   row.applied_at)


@dataclasses.dataclass(frozen=True, slots=True)
class EventInfo:
    instance: str
    action: str
    host: str
    at: datetime.datetime
    detail: str


def iso(value: datetime.datetime) -> str:
    """UTC, to the second when there is no fraction, with a ``Z``."""
    value = value.astimezone(datetime.timezone.utc)
    spec = 'seconds' if not value.microsecond else 'microseconds'
    return value.replace(tzinfo=None).isoformat(timespec=spec) + 'Z'
