"""Multi-valued JSON options (``[pci] device_spec``, ``[pci] alias``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from passthrough_plugin import exception


def entries(values: Sequence[object], option: str,
            error: type[exception.Invalid]) -> Iterator[tuple[str, Any]]:
    """Yield (label, entry) for every entry of every value.

    Each value is a JSON object or a JSON list of them; the label names the
    option, the value's position and the entry, for error messages.

    :raises: ``error`` (with ``item`` and ``reason``) for a value that is not
        a string or not JSON.
    """
    for index, value in enumerate(values, 1):
        label = '%s value %d' % (option, index)
        if not isinstance(value, str):
            raise error(item=label, reason='must be a JSON string, got %r'
                        % (value,))
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise error(item='%s (%s)' % (label, value),
                        reason='not valid JSON: %s' % exc) from None
        found = parsed if isinstance(parsed, list) else [parsed]
        for sub, entry in enumerate(found, 1):
            item = label if len(found) == 1 else '%s entry %d' % (label, sub)
            try:
                shown = json.dumps(entry, sort_keys=True)
            except (TypeError, ValueError):
                shown = repr(entry)
            yield '%s %s' % (item, shown), entry
