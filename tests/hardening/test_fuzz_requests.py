"""Fuzzing requests: any method, path and headers a client may send never produces a 5xx.

One server for the whole run (built inside the test: hypothesis and function-scoped fixtures do not
mix); each example is one raw HTTP/1.1 request on a fresh socket, so the bytes sent are exactly the
ones generated.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modvault.sumdb import note
from tests.conftest import Corpus
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

DB = "sum.fuzz.example"
_TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
_PCHARS = _TOKEN + "/@:;=,()[]{}<>\"\\?%"

element = st.one_of(
    st.sampled_from(["github.com", "acme", "hello", "!acme", "!upper", "example.com", "corp.example",
                     "..", ".", "", "@v", "@latest", "v2", "gopkg.in", "x.v1", "%2e%2e", "%2F",
                     "%00", "%zz", "a" * 300, "é", "%C3%A9", "!!", "~", "+"]),
    st.text(alphabet=_PCHARS, min_size=0, max_size=20),
)
version = st.one_of(
    st.sampled_from(["v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v2.0.0+incompatible",
                     "v0.0.0-20200101000000-abcdefabcdef", "master", "latest", "v1", "v1.0",
                     "V1.0.0", "v1.0.0+meta", "v1.0.0-" + "a" * 300,
                     "", ".", "..", "v1.0.0%2F..", "!v1.0.0"]),
    st.text(alphabet=_PCHARS, min_size=0, max_size=30),
)
module = st.lists(element, min_size=1, max_size=8).map("/".join)
protocol_path = st.one_of(
    st.builds(lambda m, f: f"/{m}/@v/{f}", module,
              st.one_of(st.just("list"),
                        st.builds(lambda v, e: f"{v}.{e}", version,
                                  st.sampled_from(["info", "mod", "zip", "txt", ""])))),
    st.builds(lambda m: f"/{m}/@latest", module),
)
other_path = st.one_of(
    st.sampled_from(["/", "/healthz", "/metrics", "/index", "/api/v1/status", "/sumdb/",
                     f"/sumdb/{DB}/supported", "/sumdb/sum.golang.org/supported", "//", "/@v/list",
                     "/%2e%2e/%2e%2e/etc/passwd", "/" + "a/" * 1000 + "@v/list"]),
    st.builds(lambda m, v: f"/sumdb/{DB}/lookup/{m}@{v}", module, version),
    st.builds(lambda n, rest: f"/sumdb/{n}/{rest}", element, st.text(alphabet=_PCHARS, max_size=30)),
    st.builds(lambda t: "/" + t, st.text(alphabet=_PCHARS, max_size=60)),
)
path = st.builds(lambda p, q: p + q, st.one_of(protocol_path, other_path),
                 st.sampled_from(["", "?go-get=1", "?", "?a=b&c", "#frag"]))
method = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
                                    "TRACE", "PROPFIND"]),
                   st.text(alphabet=_TOKEN[:52], min_size=1, max_size=10))
header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=200)
headers = st.dictionaries(
    st.sampled_from(["Range", "If-Range", "If-None-Match", "If-Modified-Since", "Accept-Encoding",
                     "Authorization", "X-Forwarded-For", "Accept", "Cookie", "User-Agent",
                     "Content-Type", "X-Request-Id", "Forwarded"]),
    st.one_of(header_value, st.sampled_from([
        "bytes=0-", "bytes=" + ",".join(["0-"] * 40), "bytes=-0", "bytes=5-1", "bytes=0-0,-1",
        "gzip", "gzip;q=0, *;q=0", "*", '"x"', "W/\"x\"", "*", "Bearer x.y.z", "Basic Zm9vOmJhcg==",
        "Sun, 06 Nov 1994 08:49:37 GMT", "1.2.3.4, ::1, garbage", "bytes=99999999999999999999-"])),
    max_size=5)
body = st.one_of(st.just(b""), st.binary(max_size=2000))


def _request(port: int, method: str, target: str, hdrs: dict[str, str], data: bytes) -> int:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in hdrs.items())]
    if data:
        lines.append(f"Content-Length: {len(data)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(raw)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                return 0  # closed without an answer (a malformed request): not a 5xx
            got += chunk
    parts = got.split(b" ", 2)
    assert parts[0].startswith(b"HTTP/"), got[:100]
    return int(parts[1])


def test_requests_never_get_a_5xx(corpus: Corpus, tmp_path: Path) -> None:
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    database = TestUpstreamServer(tmp_path / "empty").start()  # answers 404 to everything
    _, vkey = note.generate_key(DB)
    mv = ModvaultProcess(tmp_path / "data", upstream.url, "--private", "corp.example",
                         "--sumdb", f"{vkey} {database.url}",
                         env={"MODVAULT_UPSTREAM_RETRIES": "0"})
    try:
        @settings(max_examples=400, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(method, path, headers, body)
        def one(m: str, target: str, hdrs: dict[str, str], data: bytes) -> None:
            status = _request(mv.port, m, target, hdrs, data)
            assert status < 500, (m, target, hdrs, status)

        one()
        assert mv.proc.poll() is None
        assert "Traceback" not in mv.output()
    finally:
        mv.stop()
        upstream.stop()
        database.stop()
