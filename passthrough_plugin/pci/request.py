"""Flavor extra specs to device requests."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping

from passthrough_plugin import exception
from passthrough_plugin.pci import alias as alias_mod
from passthrough_plugin.pci import device_spec
from passthrough_plugin.pci import limits

ALIAS_KEY = 'pci_passthrough:alias'
NUMA_POLICY_KEY = 'hw:pci_numa_affinity_policy'
PLUGIN_PREFIX = 'passthrough:'
ANTI_AFFINITY_KEY = 'passthrough:vf_anti_affinity'
HEADROOM_KEY = 'passthrough:hotplug_headroom'
PLUGIN_KEYS = (ANTI_AFFINITY_KEY, HEADROOM_KEY)
# nova's own namespace: it knows this one key only.
NOVA_PREFIX = 'pci_passthrough:'
NOVA_KEYS = (ALIAS_KEY,)

# nova-api's check of pci_passthrough:alias (microversion 2.86 and later).
NOVA_API_ALIAS = re.compile(r'[^:]+:\d+(?:\s*,\s*[^:]+:\d+)*')
NOVA_API_REFUSES = 'nova-api refuses it too (microversion 2.86 and later)'
MAX_COUNT = 999999

SOURCE_FLAVOR = 'flavor'
SOURCE_HOTPLUG = 'hotplug'


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceRequest:
    """``count`` devices matching any of ``specs``, under a NUMA policy."""

    alias_name: str
    count: int
    specs: tuple[alias_mod.AliasSpec, ...]
    numa_policy: str = alias_mod.DEFAULT_NUMA_POLICY
    source: str = SOURCE_FLAVOR
    anti_affinity: bool = False

    @property
    def wants_pf(self) -> bool:
        return any(s.dev_type == alias_mod.TYPE_PF for s in self.specs)

    def describe(self) -> str:
        return '%d x %s' % (self.count, self.alias_name)


@dataclasses.dataclass(frozen=True, slots=True)
class RequestSet:
    """Everything one instance asks of a host's PCI devices."""

    requests: tuple[DeviceRequest, ...] = ()
    # Devices that must stay free on the host, on top of ``requests``.
    headroom: tuple[DeviceRequest, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requests and not self.headroom

    @property
    def vf_anti_affinity(self) -> bool:
        return any(r.anti_affinity for r in self.requests)

    @classmethod
    def from_extra_specs(
        cls, extra_specs: Mapping[str, str],
        aliases: Mapping[str, alias_mod.Alias],
    ) -> RequestSet:
        """Build the requests of a flavor's extra specs.

        :raises: InvalidExtraSpec (or UnknownAlias) naming the key, the
            value and what would be valid.
        """
        for key, value in extra_specs.items():
            ours = key.startswith((PLUGIN_PREFIX, NOVA_PREFIX)) or \
                key == NUMA_POLICY_KEY
            if not ours:
                continue
            if len(key) > limits.MAX_EXTRA_SPEC or not isinstance(
                    value, str) or len(value) > limits.MAX_EXTRA_SPEC:
                raise exception.InvalidExtraSpec(
                    key=limits.printable(key), value=short(value),
                    reason='keys and values are strings of at most %d '
                    'characters (as in nova)' % limits.MAX_EXTRA_SPEC)
            if key.startswith(PLUGIN_PREFIX) and key not in PLUGIN_KEYS:
                raise exception.InvalidExtraSpec(
                    key=limits.printable(key), value=short(value),
                    reason='unknown passthrough-plugin key; known keys: %s'
                    % ', '.join(PLUGIN_KEYS))
            if key.startswith(NOVA_PREFIX) and key not in NOVA_KEYS:
                # A typo (pci_passthrough:alais) would otherwise ask for
                # no device at all, and every host would fit.
                raise exception.InvalidExtraSpec(
                    key=limits.printable(key), value=short(value),
                    reason='unknown key; the pci_passthrough: keys are: %s'
                    % ', '.join(NOVA_KEYS))
        policy = extra_specs.get(NUMA_POLICY_KEY)
        if policy is not None and policy not in alias_mod.NUMA_POLICIES:
            raise exception.InvalidExtraSpec(
                key=NUMA_POLICY_KEY, value=policy,
                reason='must be one of %s; %s' % (', '.join(
                    alias_mod.NUMA_POLICIES), NOVA_API_REFUSES))
        anti = False
        if ANTI_AFFINITY_KEY in extra_specs:
            parsed = device_spec.parse_bool(extra_specs[ANTI_AFFINITY_KEY])
            if parsed is None:
                raise exception.InvalidExtraSpec(
                    key=ANTI_AFFINITY_KEY,
                    value=extra_specs[ANTI_AFFINITY_KEY],
                    reason='must be true or false')
            anti = parsed
        requests: list[DeviceRequest] = []
        if ALIAS_KEY in extra_specs:
            requests = [
                _request(aliases, name, count, ALIAS_KEY,
                         extra_specs[ALIAS_KEY], policy, anti)
                for name, count in parse_counts(ALIAS_KEY,
                                                extra_specs[ALIAS_KEY])]
        headroom: list[DeviceRequest] = []
        if HEADROOM_KEY in extra_specs:
            # Room kept for later hotplugs: source hotplug, so the hotplug
            # pool ([hotplug] device_spec) counts for it.
            headroom = [
                dataclasses.replace(
                    _request(aliases, name, count, HEADROOM_KEY,
                             extra_specs[HEADROOM_KEY], policy, False),
                    source=SOURCE_HOTPLUG)
                for name, count in parse_counts(HEADROOM_KEY,
                                                extra_specs[HEADROOM_KEY])]
        if anti and not requests:
            raise exception.InvalidExtraSpec(
                key=ANTI_AFFINITY_KEY, value=extra_specs[ANTI_AFFINITY_KEY],
                reason='needs %s to name the devices to spread' % ALIAS_KEY)
        return cls(tuple(requests), tuple(headroom))

    def with_extra(self, extra: Iterable[DeviceRequest]) -> RequestSet:
        """Add requests, e.g. an instance's remembered hot-plugged devices."""
        return dataclasses.replace(
            self, requests=self.requests + tuple(extra))

    def describe(self) -> str:
        return ', '.join(r.describe() for r in self.requests) or 'no devices'


def short(value: object) -> object:
    """``value`` for a message: long strings cut to an excerpt."""
    return limits.shown(value)


def parse_counts(key: str, value: str) -> list[tuple[str, int]]:
    """Parse nova's ``name:count[, name:count]`` syntax.

    ``pci_passthrough:alias`` is checked as nova-api checks it first; where
    nova would accept a value refused here, the error says what nova would
    have made of it.

    :raises: InvalidExtraSpec
    """
    nova = key == ALIAS_KEY
    if not isinstance(value, str) or not value.strip():
        raise exception.InvalidExtraSpec(
            key=key, value=short(value),
            reason='expected name:count[,name:count]' + (
                '; ' + NOVA_API_REFUSES if nova else ''))
    api_ok = not nova or NOVA_API_ALIAS.fullmatch(value) is not None
    try:
        result = _parse(key, value, nova and api_ok)
    except exception.InvalidExtraSpec as exc:
        if api_ok:
            raise
        raise exception.InvalidExtraSpec(
            key=key, value=short(value), reason='%s; %s' % (
                exc.kwargs['reason'], NOVA_API_REFUSES)) from None
    if not api_ok:
        # Blanks around a count: nova-compute would read them, nova-api
        # (which the flavor went through) refuses them.
        fixed = ','.join('%s:%d' % r for r in result)
        raise exception.InvalidExtraSpec(
            key=key, value=short(value),
            reason='no blanks around a count; %s%s' % (
                NOVA_API_REFUSES, '. Write %r' % fixed
                if NOVA_API_ALIAS.fullmatch(fixed) else ''))
    return result


def _parse(key: str, value: str, nova: bool) -> list[tuple[str, int]]:
    result = []
    for part in value.split(','):
        name, sep, count = part.partition(':')
        name, count = name.strip(), count.strip()
        if not sep or not name or ':' in count:
            raise exception.InvalidExtraSpec(
                key=key, value=short(value),
                reason='%r is not name:count; expected '
                'name:count[,name:count]' % part.strip())
        result.append((name, _count(key, value, name, count, nova)))
    return result


def _count(key: str, value: str, name: str, count: str, nova: bool) -> int:
    """One count: ASCII digits, 1 to MAX_COUNT.

    :raises: InvalidExtraSpec, saying what nova would have read (``nova``:
        the value passed nova-api's check).
    """
    reason = 'count %r of %r must be a whole number of at least 1 (and at ' \
        'most %d)' % (count, name, MAX_COUNT)
    digits = bool(count) and all(
        unicodedata.decimal(c, None) is not None for c in count)
    # int() of thousands of digits is refused by Python itself.
    significant = count.lstrip('0' + ''.join(
        c for c in set(count) if unicodedata.decimal(c, None) == 0))
    number = (int(count) if len(significant) <= 7 else MAX_COUNT + 1) \
        if digits else -1
    fits = 1 <= number <= MAX_COUNT
    if digits and count.isascii() and fits:
        return number
    if nova and not count.isascii():
        reason += ' (nova would have accepted it as %d%s)' % (
            number, '; write %r' % ('%s:%d' % (name, number)) if fits
            else '')
    elif nova and number == 0:
        reason += (' (nova would have accepted it and asked for no device; '
                   'leave %r out)' % ('%s:%s' % (name, count)))
    elif nova and number > MAX_COUNT:
        reason += (' (nova would have accepted it and then found no host '
                   'with that many devices)')
    raise exception.InvalidExtraSpec(key=key, value=short(value),
                                     reason=reason)


def _request(aliases: Mapping[str, alias_mod.Alias], name: str, count: int,
             key: str, value: str, policy: str | None,
             anti: bool) -> DeviceRequest:
    alias = aliases.get(name)
    if alias is None:
        raise exception.UnknownAlias(
            key=key, value=short(value), alias=name,
            known=', '.join(sorted(aliases)) or '(none)')
    return DeviceRequest(alias.name, count, alias.specs,
                         policy or alias.numa_policy, SOURCE_FLAVOR, anti)


def hotplug_request(aliases: Mapping[str, alias_mod.Alias], name: str,
                    count: int = 1) -> DeviceRequest:
    """A request for devices hot-plugged into a running instance.

    :raises: UnknownAlias
    """
    alias = aliases.get(name)
    if alias is None:
        raise exception.UnknownAlias(
            key='hotplug', value=name, alias=name,
            known=', '.join(sorted(aliases)) or '(none)')
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise exception.InvalidExtraSpec(
            key='hotplug count', value=count,
            reason='the number of %s devices to hot-plug must be 1 or more'
            % name)
    return DeviceRequest(alias.name, count, alias.specs, alias.numa_policy,
                         SOURCE_HOTPLUG)
