"""Property tests: operator-facing parsers fail only with clear errors."""

from __future__ import annotations

import testtools
from hypothesis import given
from hypothesis import strategies as st

from passthrough_plugin import exception
from passthrough_plugin.agent import discovery
from passthrough_plugin.agent import sriov

PF_KEYS = st.one_of(
    st.from_regex(r'[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]',
                  fullmatch=True),
    st.from_regex(r'[a-z][a-z0-9]{0,14}', fullmatch=True))


class ParseDesiredTest(testtools.TestCase):

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

    @given(PF_KEYS, st.integers(min_value=0, max_value=256))
    def test_round_trip(self, key: str, count: int) -> None:
        self.assertEqual([(key, count)],
                         sriov.parse_desired(['%s=%d' % (key, count)]))


class UeventTest(testtools.TestCase):

    @given(st.dictionaries(st.from_regex(r'[A-Z_]{1,12}', fullmatch=True),
                           st.from_regex(r'[!-~]{0,20}', fullmatch=True),
                           max_size=6))
    def test_round_trip(self, fields: dict[str, str]) -> None:
        text = '\n'.join('%s=%s' % kv for kv in fields.items())
        self.assertEqual(fields, {k: v for k, v in
                                  discovery._parse_uevent(text).items()
                                  if k})
