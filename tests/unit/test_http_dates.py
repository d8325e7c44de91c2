"""The Last-Modified date modvault writes itself (artifact.imf_fixdate) is the one
email.utils.formatdate(usegmt=True) wrote before: the IMF-fixdate of RFC 9110 section 5.6.7."""

from __future__ import annotations

import email.utils

from hypothesis import example, given
from hypothesis import strategies as st

from modvault.artifact import imf_fixdate
from modvault.server.ranges import http_date


@given(st.floats(min_value=0, max_value=253402300799.0))  # up to 9999-12-31T23:59:59Z
@example(0.0)
@example(784111777.0)  # RFC 9110's example: Sun, 06 Nov 1994 08:49:37 GMT
@example(951782400.0)  # 2000-02-29
def test_same_as_email_utils(when: float) -> None:
    assert imf_fixdate(when) == email.utils.formatdate(when, usegmt=True)


@given(st.integers(min_value=0, max_value=253402300799))
def test_read_back_by_the_conditional_request_parser(when: int) -> None:
    assert http_date(imf_fixdate(when)) == when


def test_the_rfc_example() -> None:
    assert imf_fixdate(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
