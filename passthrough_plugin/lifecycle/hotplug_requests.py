"""Hotplug requests for a compute host's agent, queued in the ledger.

An operator's workstation cannot reach a compute host's libvirt, so
``openstack pci server attach|detach`` records a request as an instance
event (``hotplug_request``, on the instance's host) in the shared ledger;
the agent of that host performs it and records the outcome as another
event (``hotplug_result``) that the command waits for. Both stay in the
instance's history (``passthrough-billing history``).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import sqlalchemy as sa

from passthrough_plugin import exception
from passthrough_plugin.lifecycle import ledger as ledger_mod
from passthrough_plugin.lifecycle import models

REQUEST = 'hotplug_request'
RESULT = 'hotplug_result'
ACTIONS = ('attach', 'detach')


@dataclasses.dataclass(frozen=True)
class Request:
    id: str
    event_id: int
    instance: str
    host: str
    action: str
    params: dict[str, Any]


def submit(ledger: ledger_mod.Ledger, instance: str, action: str,
           **params: Any) -> Request:
    """Queue ``action`` for the agent of the instance's host (the ledger's).

    :raises: UnknownInstance, InvalidLedgerInput (a bad action).
    """
    if action not in ACTIONS:
        raise exception.InvalidLedgerInput(
            field='action', value=action,
            reason='expected one of %s' % ', '.join(ACTIONS))
    request_id = uuid.uuid4().hex
    # Only what was asked: the history shows this detail as it is.
    params = {k: v for k, v in params.items() if v not in (None, [], ())}
    detail = dict(params, request=request_id, action=action)
    with ledger.begin() as txn:
        row = txn.instance(instance)
        host = row.host
        txn.event(instance, REQUEST, host, ledger.now(),
                  json.dumps(detail, sort_keys=True))
    return Request(request_id, 0, instance, host, action, dict(params))


def _load(detail: str) -> dict[str, Any] | None:
    try:
        data = json.loads(detail)
    except ValueError:
        return None
    return data if isinstance(data, dict) and 'request' in data else None


def pending(ledger: ledger_mod.Ledger, host: str,
            after: int = 0) -> list[Request]:
    """The requests for ``host`` (event id > ``after``) with no result."""
    e = models.Event
    with ledger.sessions() as session:
        rows = list(session.scalars(
            sa.select(e).where(e.host == host, e.id > after,
                               e.action.in_((REQUEST, RESULT)))
            .order_by(e.id)))
        done = set()
        if rows:
            # A result may be recorded under an earlier id range's request.
            for detail in session.scalars(sa.select(e.detail).where(
                    e.host == host, e.action == RESULT)):
                data = _load(detail)
                if data is not None:
                    done.add(data['request'])
    found = []
    for row in rows:
        data = _load(row.detail)
        if row.action != REQUEST or data is None or \
                data['request'] in done:
            continue
        params = {k: v for k, v in data.items()
                  if k not in ('request', 'action')}
        found.append(Request(data['request'], row.id, row.instance_uuid,
                             row.host, str(data.get('action')), params))
    return found


def finish(ledger: ledger_mod.Ledger, request: Request, ok: bool,
           message: str, devices: list[str]) -> None:
    """Record the outcome the waiting command prints."""
    with ledger.begin() as txn:
        txn.event(request.instance, RESULT, request.host, ledger.now(),
                  json.dumps({'request': request.id, 'ok': ok,
                              'message': message, 'devices': devices},
                             sort_keys=True))


def result(ledger: ledger_mod.Ledger, request: Request
           ) -> dict[str, Any] | None:
    """The recorded outcome of ``request``, or None while it waits."""
    e = models.Event
    with ledger.sessions() as session:
        for detail in session.scalars(sa.select(e.detail).where(
                e.instance_uuid == request.instance, e.action == RESULT)):
            data = _load(detail)
            if data is not None and data['request'] == request.id:
                return data
    return None
