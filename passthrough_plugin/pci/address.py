"""PCI addresses: the value type and nova's glob and regex address specs."""

from __future__ import annotations

import abc
import dataclasses
import importlib
import re
import string
import warnings
from typing import Any

from passthrough_plugin import exception

# The standard library's regex parser (Python 3.11+; untyped): its parse
# tree tells which parts of an expression repeat.
sre_parse: Any = importlib.import_module('re._parser')
sre_constants: Any = importlib.import_module('re._constants')

MAX_DOMAIN = 0xFFFF
MAX_BUS = 0xFF
MAX_SLOT = 0x1F
MAX_FUNC = 0x7

_FIELDS = (
    # (name, maximum, output format, hex digits at most)
    ('domain', MAX_DOMAIN, '%04x', 4),
    ('bus', MAX_BUS, '%02x', 2),
    ('slot', MAX_SLOT, '%02x', 2),
    ('function', MAX_FUNC, '%x', 1),
)
_HEX = frozenset(string.hexdigits)
ANY = '*'


# An address field is at most 4 characters, so no sane expression for one
# is long; a bound on the length bounds the matcher's backtracking too.
MAX_REGEX = 64
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
            sre_constants.POSSESSIVE_REPEAT)


def _empty_repeat(tree: Any) -> str | None:
    """The first repeated part of a parsed expression that can match
    nothing (``(|){9999}``, ``(a?){20}``), or None. Matching such a part
    backtracks through every way of repeating nothing: 2**9999 ways."""
    for op, av in tree:
        subtrees: list[Any] = []
        if op in _REPEATS:
            low, high, sub = av
            if high > 1 and sub.getwidth()[0] == 0:
                return 'a repeated part that can match nothing'
            subtrees = [sub]
        elif op is sre_constants.SUBPATTERN:
            subtrees = [av[3]]
        elif op is sre_constants.BRANCH:
            subtrees = list(av[1])
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            subtrees = [av[1]]
        elif op is sre_constants.GROUPREF_EXISTS:
            subtrees = [t for t in av[1:] if t is not None]
        elif op is sre_constants.ATOMIC_GROUP:
            subtrees = [av]
        for sub in subtrees:
            found = _empty_repeat(sub)
            if found:
                return found
    return None


def _nova_reading(text: str, maximum: int, fmt: str) -> str:
    """What nova, which reads a field with int(text, 16), makes of it."""
    try:
        number = int(text, 16)
    except ValueError:
        return ''
    if number > maximum:
        return ''
    return ' (nova would have accepted it as %s; write %s)' % (
        fmt % number, fmt % number)


def _parse_field(name: str, maximum: int, text: str, value: str,
                 field: str) -> int:
    text = text.strip()
    if not text or not _HEX.issuperset(text) or len(text) > 4:
        fmt = next(f for n, _m, f, _d in _FIELDS if n == name)
        raise exception.InvalidPciAddress(
            value=value, field=field,
            reason='%s %r is not a hex number of at most 4 digits%s' % (
                name, text, _nova_reading(text, maximum, fmt)))
    number = int(text, 16)
    if number > maximum:
        raise exception.InvalidPciAddress(
            value=value, field=field,
            reason='%s %s is greater than %x' % (name, text, maximum))
    return number


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class PciAddress:
    """A fully specified PCI address (domain, bus, slot, function)."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, value: object, field: str = 'address') -> PciAddress:
        """Parse ``DDDD:BB:SS.F`` or ``BB:SS.F`` (domain 0).

        :raises: InvalidPciAddress naming ``field`` and the value.
        """
        if isinstance(value, PciAddress):
            return value
        if not isinstance(value, str):
            raise exception.InvalidPciAddress(
                value=value, field=field, reason='not a string')
        cached = _PARSED.get(value)
        if cached is not None:
            return cached
        head, dot, func = value.partition('.')
        parts = head.split(':')
        if not dot or len(parts) not in (2, 3):
            raise exception.InvalidPciAddress(
                value=value, field=field, reason='wrong shape')
        if len(parts) == 2:
            parts.insert(0, '0')
        numbers = [
            _parse_field(name, maximum, text, value, field)
            for (name, maximum, _fmt, _n), text in zip(
                _FIELDS, (*parts, func), strict=True)
        ]
        address = cls(*numbers)
        if len(_PARSED) < 65536:
            _PARSED[value] = address
        return address

    @classmethod
    def is_valid(cls, value: object) -> bool:
        try:
            cls.parse(value)
        except exception.InvalidPciAddress:
            return False
        return True

    def __str__(self) -> str:
        return '%04x:%02x:%02x.%x' % (
            self.domain, self.bus, self.slot, self.function)

    @property
    def fields(self) -> tuple[str, str, str, str]:
        """The normalised (domain, bus, slot, function) strings."""
        return ('%04x' % self.domain, '%02x' % self.bus,
                '%02x' % self.slot, '%x' % self.function)

    @property
    def libvirt_name(self) -> str:
        """The libvirt node device name, e.g. ``pci_0000_03_00_1``."""
        return 'pci_%04x_%02x_%02x_%x' % (
            self.domain, self.bus, self.slot, self.function)


_PARSED: dict[str, PciAddress] = {}


def normalize(value: object, field: str = 'address') -> str:
    """Return the canonical ``dddd:bb:ss.f`` string of an address.

    :raises: InvalidPciAddress
    """
    return str(PciAddress.parse(value, field))


class AddressSpec(abc.ABC):
    """Something that matches PCI addresses."""

    @abc.abstractmethod
    def match(self, address: PciAddress) -> bool:
        """Whether ``address`` matches this spec."""

    @abc.abstractmethod
    def exact(self) -> PciAddress | None:
        """The single address this spec names, if it names exactly one."""

    @abc.abstractmethod
    def to_config(self) -> str | dict[str, str]:
        """The spec in the form it was given (normalised)."""


class GlobAddressSpec(AddressSpec):
    """nova's glob form: ``[[[[<domain>]:]<bus>]:][<slot>][.[<function>]]``.

    A missing or empty field, or ``*``, matches anything.
    """

    __slots__ = ('_values', '_text')

    def __init__(self, text: str, field: str = 'address') -> None:
        self._text = text
        values: list[int | None] = [None, None, None, None]
        dbs, _dot, func = text.partition('.')
        if func.strip() and func.strip() != ANY:
            values[3] = _parse_field('function', MAX_FUNC, func, text, field)
        if dbs:
            parts = dbs.split(':')
            if len(parts) > 3:
                raise exception.InvalidPciAddress(
                    value=text, field=field,
                    reason='more than three ":"-separated fields')
            parts = [''] * (3 - len(parts)) + parts
            for index, part in enumerate(parts):
                part = part.strip()
                if part in ('', ANY):
                    continue
                name, maximum, _fmt, _n = _FIELDS[index]
                values[index] = _parse_field(name, maximum, part, text, field)
        self._values = tuple(values)

    def match(self, address: PciAddress) -> bool:
        d, b, s, f = self._values
        return ((d is None or d == address.domain)
                and (b is None or b == address.bus)
                and (s is None or s == address.slot)
                and (f is None or f == address.function))

    def exact(self) -> PciAddress | None:
        if any(v is None for v in self._values):
            return None
        d, b, s, f = self._values
        assert d is not None and b is not None and s is not None
        assert f is not None
        return PciAddress(d, b, s, f)

    def to_config(self) -> str:
        return '%s:%s:%s.%s' % tuple(
            ANY if v is None else fmt % v
            for v, (_n, _m, fmt, _d) in zip(self._values, _FIELDS,
                                            strict=True))


class RegexAddressSpec(AddressSpec):
    """nova's regex-dict form: ``{"domain": RE, "bus": RE, ...}``.

    Each expression must match the whole normalised field (``bus`` is two
    lower-case hex digits, ``function`` one), in any case; nova anchors
    only the start and is case-sensitive, so ``"bus": "0"`` would match
    bus ``0a`` there and ``"bus": "0A"`` nothing. ``nova_compatible``
    matches as nova does (``[passthrough_scheduler]
    nova_compatible_matching``).
    """

    __slots__ = ('_patterns', '_source', '_nova')

    KEYS = ('domain', 'bus', 'slot', 'function')

    def __init__(self, spec: dict[str, Any], field: str = 'address',
                 nova_compatible: bool = False) -> None:
        self._nova = nova_compatible
        unknown = sorted(set(spec) - set(self.KEYS))
        if unknown:
            raise exception.InvalidPciAddress(
                value=spec, field=field,
                reason='unknown key(s) %s; allowed: %s (nova would have '
                'ignored them and matched that field with ".*")' % (
                    ', '.join(map(str, unknown)), ', '.join(self.KEYS)))
        patterns = []
        source: dict[str, str] = {}
        for key in self.KEYS:
            expr = spec.get(key, '.*')
            if not isinstance(expr, str):
                raise exception.InvalidPciAddress(
                    value=spec, field='%s.%s' % (field, key),
                    reason='%s must be a regular expression string' % key)
            if len(expr) > MAX_REGEX:
                raise exception.InvalidPciAddress(
                    value=spec, field='%s.%s' % (field, key),
                    reason='%s is a regular expression of %d characters; '
                    'at most %d are allowed (the field is at most 4 hex '
                    'digits)' % (key, len(expr), MAX_REGEX))
            flags = 0 if nova_compatible else re.IGNORECASE
            try:
                with warnings.catch_warnings():
                    # e.g. "[[a]": a FutureWarning about set syntax, which
                    # must not escape as an error under -W error.
                    warnings.simplefilter('ignore', FutureWarning)
                    patterns.append(re.compile(expr, flags))
                    costly = _empty_repeat(sre_parse.parse(expr, flags))
            except (re.error, OverflowError, RecursionError) as exc:
                raise exception.InvalidPciAddress(
                    value=spec, field='%s.%s' % (field, key),
                    reason='%s %r is not a regular expression: %s' % (
                        key, expr, exc)) from None
            if costly:
                raise exception.InvalidPciAddress(
                    value=spec, field='%s.%s' % (field, key),
                    reason='%s %r has %s, which makes matching take '
                    'exponential time; repeat only parts that match at '
                    'least one character (e.g. "[0-9a-f]{2}")' % (
                        key, expr, costly))
            source[key] = expr
        self._patterns = tuple(patterns)
        self._source = source

    def match(self, address: PciAddress) -> bool:
        if self._nova:
            return all(p.match(v) is not None
                       for p, v in zip(self._patterns, address.fields,
                                      strict=True))
        return all(p.fullmatch(v) is not None
                   for p, v in zip(self._patterns, address.fields,
                                  strict=True))

    def exact(self) -> PciAddress | None:
        # A regex names one address only if every field is a plain hex
        # literal, as nova decides with is_single_address().
        values = [self._source[k] for k in self.KEYS]
        if not all(v and _HEX.issuperset(v) for v in values):
            return None
        try:
            address = PciAddress.parse('%s:%s:%s.%s' % tuple(values))
        except exception.InvalidPciAddress:
            return None
        # "0" names bus 00 only if the anchored pattern matches it too.
        return address if self.match(address) else None

    def to_config(self) -> dict[str, str]:
        return dict(self._source)


def address_spec(value: object, field: str = 'address',
                 nova_compatible: bool = False) -> AddressSpec:
    """Build the spec for a ``[pci] device_spec`` ``address`` value.

    :raises: InvalidPciAddress
    """
    if isinstance(value, str):
        return GlobAddressSpec(value, field)
    if isinstance(value, dict):
        return RegexAddressSpec(value, field, nova_compatible)
    raise exception.InvalidPciAddress(
        value=value, field=field,
        reason='must be a glob string or a dict of regular expressions')
