"""Property tests: operator-facing parsers fail only with clear errors."""

from __future__ import annotations

import string

import testtools
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import sriov

PF_KEYS = st.one_of(
    st.builds('{:04x}:{:02x}:{:02x}.{:x}'.format,
              st.integers(0, 0xffff), st.integers(0, 0xff),
              st.integers(0, 0x1f), st.integers(0, 7)),
    st.text(string.ascii_lowercase + string.digits, min_size=1,
            max_size=15))
# The machine is shared: a slow draw is contention, not a slow strategy.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class ParseDesiredTest(testtools.TestCase):

    @RELAXED
    @given(st.lists(st.text(max_size=30), max_size=4))
    def test_any_text_parses_or_names_the_value(self, values: list[str]
                                                ) -> None:
        try:
            parsed = sriov.parse_desired(values)
        except exception.InvalidConfig as exc:
            self.assertIn('[sriov] vf_count=', exc.message)
        else:
            self.assertEqual(len(values), len(parsed))
            self.assertTrue(all(count >= 0 for _key, count in parsed))

    @RELAXED
    @given(PF_KEYS, st.integers(min_value=0, max_value=256))
    def test_round_trip(self, key: str, count: int) -> None:
        self.assertEqual([(key, count)],
                         sriov.parse_desired(['%s=%d' % (key, count)]))


class UeventTest(testtools.TestCase):

    @RELAXED
    @given(st.dictionaries(
        st.text(string.ascii_uppercase + '_', min_size=1, max_size=12),
        st.text(string.ascii_letters + string.digits + ':=.-_ ',
                max_size=20),
        max_size=6))
    def test_round_trip(self, fields: dict[str, str]) -> None:
        text = '\n'.join('%s=%s' % kv for kv in fields.items())
        self.assertEqual(fields, {k: v for k, v in
                                  discovery._parse_uevent(text).items()
                                  if k})
