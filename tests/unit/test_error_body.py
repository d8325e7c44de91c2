"""Upstream error bodies as we quote them: a plain-text first line, redacted, or nothing at all."""

from __future__ import annotations

import base64

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modvault.sources.redact import redact_text
from modvault.sources.upstream import first_line


@pytest.mark.parametrize(
    ("body", "content_type", "want"),
    [
        (b"not found: rsc.io/breaker@v2.0.0: invalid version\n", "text/plain",
         "not found: rsc.io/breaker@v2.0.0: invalid version"),
        (b"  gone: retracted  \nsecond line\n", "", "gone: retracted"),
        (b"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>", "", ""),
        (b"\n\n  <html><body>404</body></html>", "", ""),
        (b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>", "", ""),
        (b"Not Found", "text/html; charset=utf-8", ""),  # a page, whatever it starts with
        (b"<Error/>", "application/xml", ""),
        (b"", "text/plain", ""),
        (b"bell\x07and\x1bescape", "text/plain", "bell?and?escape"),
        (b"\xff\xfe broken utf-8", "", "\ufffd\ufffd broken utf-8"),
        (b"Authorization: Basic dXNlcjpwYXNzd29yZA==", "text/plain", "Authorization: ***"),
        (b"fetching https://ci:hunter2pw@git.example/x.git failed", "",
         "fetching https://***@git.example/x.git failed"),
    ],
)
def test_first_line(body: bytes, content_type: str, want: str) -> None:
    assert first_line(body, content_type=content_type) == want


def test_first_line_is_bounded() -> None:
    assert len(first_line(b"x" * 100_000)) == 200
    assert first_line(b"y" * 10 + b"\n" + b"z" * 10, limit=5) == "yyyyy"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('echo: {"Authorization": ["Bearer ghp_abcdefghijklmnop"]}', "ghp_abcdefghijklmnop"),
        ("Proxy-Authorization: Digest username=\"u\", response=\"6629fae49393a053\"",
         "6629fae49393a053"),
        ("authorization=Basic Zm9vOmJhcmJhejEy", "Zm9vOmJhcmJhejEy"),
        ("GET https://u:p%40ss-w0rd@h.example/p", "p%40ss-w0rd"),
        ("GET https://u:p@ss-w0rd@h.example/p", "ss-w0rd"),
        ("éhttps://u:pw-s3cret@h.example/p", "pw-s3cret"),
        ("ñAuthorization: Bearer abcdefgh12", "abcdefgh12"),
        ("«Basic Zm9vOmJhcmJhejEy»", "Zm9vOmJhcmJhejEy"),
        ("redirected to /x?X-Amz-Signature=deadbeefcafe&a=1", "deadbeefcafe"),
        ("login?password=opensesame99 refused", "opensesame99"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl rejected",
         "eyJzdWIiOiIxIn0"),
    ],
)
def test_redact_text_removes_credentials(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out, out
    assert "***" in out


@pytest.mark.parametrize("text", [
    "not found: github.com/acme/incompat@v2.0.0: invalid version: unknown revision v2.0.0",
    "reading https://proxy.example/github.com/a/b/@v/list: 404 Not Found",
    "github.com/acme/legacy@v4.0.0: invalid version: module contains a go.mod file, so module "
    "path must match major version (\"github.com/acme/legacy/v4\")",
])
def test_redact_text_leaves_ordinary_messages_alone(text: str) -> None:
    assert redact_text(text) == text


_SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%:",
                  min_size=8, max_size=40).filter(lambda s: any(c.isalnum() for c in s))
_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/",
                 min_size=8, max_size=60).filter(lambda s: any(c.isalnum() for c in s))
_AROUND = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(_AROUND, _SECRET, _AROUND)
def test_url_password_never_survives(before: str, password: str, after: str) -> None:
    # The property is about the secret, not about text that happens to spell it: skip passwords
    # that also occur in the rest of the line (e.g. "upstream") or in its redacted form.
    assume(password not in f"{before} https://user:***@upstream.example/mod/@v/list {after}")
    line = f"{before} https://user:{password}@upstream.example/mod/@v/list {after}"
    body = line.replace("\n", " ").replace("\r", " ").encode()
    out = first_line(body, limit=10_000)
    assert password not in out


@given(_AROUND, st.sampled_from(["Authorization: ", "authorization:", "\"Authorization\": \"",
                                 "Proxy-Authorization = "]),
       st.sampled_from(["Basic ", "Bearer ", "token ", ""]), _TOKEN, _AROUND)
def test_authorization_header_never_survives(before: str, header: str, scheme: str, token: str,
                                             after: str) -> None:
    assume(token not in f"{before} {header}{scheme}*** {after}")
    line = f"{before} {header}{scheme}{token} {after}".replace("\n", " ").replace("\r", " ")
    out = first_line(line.encode(), limit=10_000)
    assert token not in out


@given(_AROUND, st.binary(min_size=6, max_size=30), _AROUND)
def test_basic_credentials_never_survive_anywhere(before: str, raw: bytes, after: str) -> None:
    b64 = base64.b64encode(raw).decode()
    assume(b64 not in f"{before} Basic *** {after}")
    line = f"{before} Basic {b64} {after}".replace("\n", " ").replace("\r", " ")
    assert b64 not in first_line(line.encode(), limit=10_000)


@given(st.binary(max_size=600), st.sampled_from(["", "text/plain", "text/html", "application/json"]))
def test_first_line_shape(body: bytes, content_type: str) -> None:
    out = first_line(body, limit=120, content_type=content_type)
    assert len(out) <= 120
    assert "\n" not in out and "\r" not in out
    assert all(ch.isprintable() for ch in out)
    assert not out.startswith("<")
    assert redact_text(out) == out  # already redacted, and redaction is idempotent
