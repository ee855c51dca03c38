"""Input limits: sizes, ranges and safe identifiers for operator/peer input."""

from __future__ import annotations

import math
import re
from typing import Any

# A host report (JSON) and its parts. A host with 16 PFs of 256 VFs each
# reports 4,096 devices; twice that is allowed.
MAX_REPORT_BYTES = 16 * 1024 * 1024
MAX_DEVICES = 8192
# Every integer of a report (generations, NUMA nodes, IOMMU groups) fits
# a signed 64-bit column; NUMA nodes and sockets are far smaller.
MAX_INT = 2 ** 63 - 1
MAX_NUMA_NODE = 4095
# Strings of a report (driver, devname, tags, owner) and of option entries.
MAX_STRING = 255
# A ``[pci] device_spec`` / ``[pci] alias`` value, and entries per option.
MAX_OPTION_BYTES = 64 * 1024
MAX_OPTION_ENTRIES = 4096
# nova limits flavor extra spec keys and values to 255 characters.
MAX_EXTRA_SPEC = 255
# A libvirt domain XML (virsh dumpxml of a large guest is ~100 KB).
MAX_DOMAIN_XML_BYTES = 4 * 1024 * 1024
# What an error message quotes of an input.
EXCERPT = 60

_CONSUMER = re.compile(r'[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}')
_HOST = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,254}')


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """``repr(value)``, cut to ``limit`` characters with its full length."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return '<a number of more than 4300 digits>'
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, dict)) \
        else len(text)
    return '%s... (%d characters)' % (text[:limit], size)


def printable(text: str, limit: int = EXCERPT) -> str:
    """``text`` cut to ``limit`` characters, control characters escaped.

    For inputs quoted without ``repr`` (labels, keys): a newline in them
    must not split an error into lines.
    """
    cut = text[:limit]
    shown = ''.join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    if len(text) > limit:
        shown += '... (%d characters)' % len(text)
    return shown


class Excerpt(str):
    """A string whose ``%r`` is itself: an excerpt already quoted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def shown(value: object) -> object:
    """``value`` for a ``%r`` in a message: long or odd values cut."""
    if isinstance(value, str) and len(value) <= EXCERPT:
        return value
    if isinstance(value, (bool, float, type(None))):
        return value
    if isinstance(value, int) and abs(value) < 10 ** EXCERPT:
        return value
    return Excerpt(excerpt(value))


def consumer_problem(consumer: object) -> str | None:
    """Why ``consumer`` is not a UUID or a safe token, or None.

    A consumer id ends up in file names' neighbours, logs and Placement
    URLs: letters, digits and ``._:@+-``, starting with a letter or digit,
    at most 255 characters (an instance UUID is one).
    """
    if not isinstance(consumer, str):
        return 'a consumer id must be a string, got %s' % excerpt(consumer)
    if not consumer:
        return 'a consumer id must not be empty'
    if len(consumer) > MAX_STRING:
        return 'consumer id %s is %d characters long; at most %d' % (
            excerpt(consumer), len(consumer), MAX_STRING)
    if not _CONSUMER.fullmatch(consumer):
        return ('consumer id %s is not a UUID or a token of letters, digits '
                'and "._:@+-" starting with a letter or digit'
                % excerpt(consumer))
    return None


def host_problem(host: object) -> str | None:
    """Why ``host`` is not a host name (it names a file), or None."""
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        return ('host name %s is not a valid host name (at most 255 '
                'letters, digits, ".", "_" and "-", starting with a letter '
                'or digit)' % excerpt(host))
    return None


def oversized(data: Any, path: str = '$', max_string: int = MAX_STRING,
              max_int: int = MAX_INT, max_items: int = MAX_DEVICES
              ) -> tuple[str, str] | None:
    """The first value of decoded JSON ``data`` beyond the limits.

    Returns (JSON path, reason) or None. Runs before schema validation so
    that no validator or message ever formats a 5,000-digit number or a
    megabyte string.
    """
    stack: list[tuple[str, Any, int]] = [(path, data, 0)]
    while stack:
        where, value, depth = stack.pop()
        if depth > 32:
            return where, 'nested more than 32 levels deep'
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not -max_int - 1 <= value <= max_int:
                return where, ('integer out of range; at most %d in '
                               'magnitude' % max_int)
        elif isinstance(value, float):
            if not math.isfinite(value):
                return where, 'not a finite number'
        elif isinstance(value, str):
            if len(value) > max_string:
                return where, ('string %s is %d characters long; at most %d'
                               % (excerpt(value), len(value), max_string))
        elif isinstance(value, list):
            if len(value) > max_items:
                return where, ('%d items; at most %d' % (len(value),
                                                         max_items))
            stack.extend(('%s[%d]' % (where, i), v, depth + 1)
                         for i, v in enumerate(value))
        elif isinstance(value, dict):
            if len(value) > max_items:
                return where, ('%d keys; at most %d' % (len(value),
                                                        max_items))
            for key, item in value.items():
                if isinstance(key, str) and len(key) > max_string:
                    return where, ('key %s is %d characters long; at most '
                                   '%d' % (excerpt(key), len(key),
                                           max_string))
                stack.append(('%s.%s' % (where, printable(str(key), 40)),
                              item, depth + 1))
    return None
