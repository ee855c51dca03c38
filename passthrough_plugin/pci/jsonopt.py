"""Multi-valued JSON options (``[pci] device_spec``, ``[pci] alias``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from passthrough_plugin import exception
from passthrough_plugin.pci import limits

# Traits are a comma separated list: room for a dozen long names.
_LONG_KEYS = {'traits': 4 * limits.MAX_STRING}


def entries(values: Sequence[object], option: str,
            error: type[exception.Invalid]) -> Iterator[tuple[str, Any]]:
    """Yield (label, entry) for every entry of every value.

    Each value is a JSON object or a JSON list of them; the label names the
    option, the value's position and the entry, for error messages.

    :raises: ``error`` (with ``item`` and ``reason``) for a value that is not
        a string or not JSON, or beyond the limits (``limits``: value size,
        entry count, string lengths, integer range); messages quote at most
        an excerpt of the value.
    """
    if len(values) > limits.MAX_OPTION_ENTRIES:
        raise error(item=option, reason='%d values; at most %d' % (
            len(values), limits.MAX_OPTION_ENTRIES))
    total = 0
    for index, value in enumerate(values, 1):
        label = '%s value %d' % (option, index)
        if not isinstance(value, str):
            raise error(item=label, reason='must be a JSON string, got %s'
                        % limits.excerpt(value))
        if len(value) > limits.MAX_OPTION_BYTES:
            raise error(item='%s (%s)' % (label, _cut(value)),
                        reason='%d characters; at most %d' % (
                            len(value), limits.MAX_OPTION_BYTES))
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise error(item='%s (%s)' % (label, _cut(value)),
                        reason='not valid JSON: %s' % str(exc)[:200]
                        ) from None
        found = parsed if isinstance(parsed, list) else [parsed]
        total += len(found)
        if total > limits.MAX_OPTION_ENTRIES:
            raise error(item=label, reason='more than %d entries in %s' % (
                limits.MAX_OPTION_ENTRIES, option))
        for sub, entry in enumerate(found, 1):
            item = label if len(found) == 1 else '%s entry %d' % (label, sub)
            _check_sizes(entry, item, error)
            try:
                shown = json.dumps(entry, sort_keys=True)
            except (TypeError, ValueError):
                shown = repr(entry)
            if len(shown) > limits.EXCERPT:
                shown = shown[:limits.EXCERPT] + '...'
            yield '%s %s' % (item, shown), entry


def _cut(text: str) -> str:
    return limits.printable(text)


def _check_sizes(entry: Any, item: str,
                 error: type[exception.Invalid]) -> None:
    """:raises: ``error`` for a string, number or list beyond the limits."""
    if isinstance(entry, dict):
        for key, value in entry.items():
            if len(key) > limits.MAX_STRING:
                raise error(item=item, reason='key %s is %d characters long; '
                            'at most %d' % (limits.excerpt(key), len(key),
                                            limits.MAX_STRING))
            if not key.isprintable():
                raise error(item=item, reason='key %s holds control '
                            'characters' % limits.excerpt(key))
            longest = _LONG_KEYS.get(key, limits.MAX_STRING)
            if isinstance(value, str) and len(value) > longest:
                raise error(item=item, reason='%s is %d characters long; at '
                            'most %d' % (limits.excerpt(key), len(value),
                                         longest))
            if isinstance(value, str):
                continue
            found = limits.oversized(value, '$.%s' % limits.printable(key, 40))
            if found is not None:
                raise error(item=item, reason='%s: %s' % found)
        if len(entry) > limits.MAX_OPTION_ENTRIES:
            raise error(item=item, reason='%d keys; at most %d' % (
                len(entry), limits.MAX_OPTION_ENTRIES))
        return
    found = limits.oversized(entry)
    if found is not None:
        raise error(item=item, reason='%s: %s' % found)
