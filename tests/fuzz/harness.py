"""Run a check over hypothesis examples; count cases, refusals, findings."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from passthrough_plugin import exception
from passthrough_plugin.pci import limits

ACCEPTED, REFUSED = 'accepted', 'refused'
# What a refusal may say: one line, an excerpt of the input at most.
MAX_MESSAGE = 1000
MAX_FINDINGS_SHOWN = 5
# Examples per hypothesis run: its tree of explored choices (holding every
# megabyte string drawn) is freed between runs.
CHUNK = 1000


class Finding(Exception):
    """A defect found: a state change by a refused input, a bad message."""


@dataclasses.dataclass
class Tally:
    name: str
    goal: int
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    tracebacks: int = 0
    state_changes: int = 0
    bad_messages: int = 0
    seconds: float = 0.0
    findings: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.tracebacks or self.state_changes
                    or self.bad_messages)


def check_message(message: str) -> None:
    """:raises: Finding for a refusal that is not one short line."""
    if '\n' in message.strip() or len(message) > MAX_MESSAGE:
        raise Finding('message: %s' % limits.excerpt(message, 300))


def refused(exc: exception.PassthroughException) -> str:
    check_message(exc.message)
    return REFUSED


def snapshot(*paths: str) -> str:
    """A digest of every file under ``paths`` (names, bytes, links)."""
    digest = hashlib.sha256()
    for top in paths:
        if os.path.isfile(top):
            with open(top, 'rb') as handle:
                digest.update(top.encode() + handle.read())
            continue
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                digest.update(path.encode(errors='replace'))
                if os.path.islink(path):
                    digest.update(os.readlink(path).encode(
                        errors='replace'))
                    continue
                try:
                    with open(path, 'rb') as handle:
                        digest.update(handle.read())
                except OSError:
                    digest.update(b'?')
    return digest.hexdigest()


def run(tally: Tally, strategy: st.SearchStrategy[Any],
        check: Callable[[Any], str], seed: int) -> Tally:
    """Feed ``check`` examples until ``tally.goal`` cases have run.

    ``check`` returns ACCEPTED or REFUSED and raises Finding for a defect;
    any other exception is a traceback an operator would have seen.
    """

    def one(value: Any) -> None:
        tally.cases += 1
        try:
            outcome = check(value)
        except Finding as found:
            kind = str(found).split(':', 1)[0]
            if kind == 'state':
                tally.state_changes += 1
            else:
                tally.bad_messages += 1
            tally.findings.append('%s <- %s' % (found, limits.excerpt(
                value, 200)))
            return
        except Exception:  # noqa: BLE001 - what the fuzz is looking for
            tally.tracebacks += 1
            tally.findings.append('%s <- %s' % (
                traceback.format_exc(limit=-3).strip()[-1500:],
                limits.excerpt(value, 200)))
            return
        if outcome == ACCEPTED:
            tally.accepted += 1
        else:
            tally.refused += 1

    start = time.monotonic()
    for attempt in range(tally.goal // CHUNK + 50):
        left = min(tally.goal - tally.cases, CHUNK)
        if left <= 0:
            break
        body = settings(
            max_examples=left, deadline=None, database=None,
            derandomize=False, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck))(given(strategy)(one))
        body = _seeded(body, seed + attempt)
        body()
    tally.seconds = time.monotonic() - start
    return tally


def _seeded(test: Callable[[], None], seed: int) -> Callable[[], None]:
    from hypothesis import seed as seed_decorator

    return seed_decorator(seed)(test)
