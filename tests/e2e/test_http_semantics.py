"""HTTP semantics over a real socket: ETag/304, Range/206/416/multipart, HEAD, gzip, bad requests."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Corpus, ModvaultFactory
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

MOD = "github.com/acme/hello"
ZIP = f"/{MOD}/@v/v1.0.0.zip"
INFO = f"/{MOD}/@v/v1.0.0.info"
BIG_MOD = f"/{MOD}/@v/v1.1.0.mod"
BIG_MOD_BODY = b"module github.com/acme/hello\n\ngo 1.21\n" + b"// padding comment line\n" * 200


@pytest.fixture
def mv(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> Iterator[ModvaultProcess]:
    upstream_a.behaviours[BIG_MOD] = Behaviour(body=BIG_MOD_BODY)
    upstream_a.behaviours[f"/{MOD}/@latest"] = Behaviour(
        body=b'{"Version":"v1.1.0","Time":"2023-11-15T00:13:20Z"}')
    yield modvault(upstream_a.url)


@pytest.fixture(scope="module")
def probe_mv(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModvaultProcess]:
    """One server for the one-request probes below: each sends a single request whose answer does
    not depend on what came before, so they need not start a server each."""
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    factory = ModvaultFactory(tmp_path_factory.mktemp("probe"))
    try:
        yield factory(upstream.url)
    finally:
        factory.close()
        upstream.stop()


def test_content_types_and_cache_headers(mv: ModvaultProcess) -> None:
    cases = {
        f"/{MOD}/@v/list": ("text/plain; charset=utf-8", "public, max-age=300"),
        f"/{MOD}/@latest": ("application/json", "public, max-age=300"),
        f"/{MOD}/@v/v1.0.0.info": ("application/json", "public, max-age=31536000, immutable"),
        f"/{MOD}/@v/v1.0.0.mod": ("text/plain; charset=utf-8", "public, max-age=31536000, immutable"),
        ZIP: ("application/zip", "public, max-age=31536000, immutable"),
    }
    for path, (ctype, cc) in cases.items():
        r = httpx.get(mv.url + path, headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"] == ctype, path
        assert r.headers["cache-control"] == cc, path
        assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
        assert r.headers["accept-ranges"] == "bytes"
        assert "last-modified" in r.headers
        assert int(r.headers["content-length"]) == len(r.content)


def test_conditional_requests(mv: ModvaultProcess) -> None:
    for path in (INFO, ZIP, f"/{MOD}/@v/list"):
        r = httpx.get(mv.url + path)
        etag, lm = r.headers["etag"], r.headers["last-modified"]
        r2 = httpx.get(mv.url + path, headers={"If-None-Match": etag})
        assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == etag
        assert httpx.get(mv.url + path, headers={"If-None-Match": "W/" + etag}).status_code == 304
        assert httpx.get(mv.url + path, headers={"If-None-Match": '"other"'}).status_code == 200
        assert httpx.get(mv.url + path, headers={"If-Modified-Since": lm}).status_code == 304
        old = "Mon, 01 Jan 2001 00:00:00 GMT"
        assert httpx.get(mv.url + path, headers={"If-Modified-Since": old}).status_code == 200
        # If-None-Match wins over If-Modified-Since.
        both = {"If-None-Match": '"other"', "If-Modified-Since": lm}
        assert httpx.get(mv.url + path, headers=both).status_code == 200


@pytest.mark.parametrize("path", [ZIP, INFO])
def test_ranges(mv: ModvaultProcess, path: str) -> None:
    full = httpx.get(mv.url + path).content
    n = len(full)
    etag = httpx.get(mv.url + path, headers={"Accept-Encoding": "identity"}).headers["etag"]

    r = httpx.get(mv.url + path, headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == full[:10]
    assert r.headers["content-range"] == f"bytes 0-9/{n}"
    r = httpx.get(mv.url + path, headers={"Range": "bytes=-7"})
    assert r.status_code == 206 and r.content == full[-7:]
    r = httpx.get(mv.url + path, headers={"Range": "bytes=5-"})
    assert r.status_code == 206 and r.content == full[5:]
    assert r.headers["content-range"] == f"bytes 5-{n - 1}/{n}"

    r = httpx.get(mv.url + path, headers={"Range": "bytes=0-1,4-6,-3"})
    assert r.status_code == 206
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=")[1].encode()
    parts = r.content.split(b"--" + boundary)
    assert parts[-1].strip() == b"--"
    bodies = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts[1:-1]]
    assert bodies == [full[0:2], full[4:7], full[-3:]]
    assert f"content-range: bytes 4-6/{n}".encode() in parts[2]
    assert int(r.headers["content-length"]) == len(r.content)

    r = httpx.get(mv.url + path, headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
    for bad in ("bytes=5-1", "lines=0-1", "bytes=x-y", "bytes"):
        r = httpx.get(mv.url + path, headers={"Range": bad})
        assert r.status_code == 200 and r.content == full, bad
    r = httpx.get(mv.url + path, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert r.status_code == 206 and r.content == full[:4]
    r = httpx.get(mv.url + path, headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == full


def test_head_matches_get(mv: ModvaultProcess) -> None:
    for path in (ZIP, INFO, f"/{MOD}/@v/list"):
        g = httpx.get(mv.url + path)
        h = httpx.head(mv.url + path)
        assert g.status_code == 200
        assert h.status_code == 200 and h.content == b""
        for name in ("content-type", "content-length", "etag", "cache-control", "last-modified"):
            assert h.headers[name] == g.headers[name], (path, name)
    h = httpx.head(mv.url + ZIP, headers={"Range": "bytes=0-9"})
    assert h.status_code == 206 and h.headers["content-length"] == "10"


def test_gzip(mv: ModvaultProcess, corpus: Corpus) -> None:
    r = httpx.get(mv.url + BIG_MOD, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert r.content == BIG_MOD_BODY  # httpx decodes
    raw = httpx.get(mv.url + BIG_MOD, headers={"Accept-Encoding": "gzip"},
                    follow_redirects=False)
    assert int(raw.headers["content-length"]) < len(BIG_MOD_BODY)
    etag_gz = raw.headers["etag"]
    plain = httpx.get(mv.url + BIG_MOD, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == BIG_MOD_BODY
    assert plain.headers["etag"] != etag_gz
    assert httpx.get(mv.url + BIG_MOD, headers={"If-None-Match": etag_gz}).status_code == 304
    z = httpx.get(mv.url + ZIP, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in z.headers
    assert gzip.decompress(gzip.compress(b"x")) == b"x"


def raw_request(port: int, target: bytes, method: bytes = b"GET") -> int:
    """Send exactly these bytes as the request target; return the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/github.com/BurntSushi/toml/@v/list", 400),
        (b"/github.com/%21burnt%21sushi/toml/@v/list", 404),  # decoded, valid, not upstream
        (b"/github.com/acme/%zz/@v/list", 400),
        (b"/github.com/acme/../hello/@v/list", 400),
        (b"/github.com/acme//hello/@v/list", 400),
        (b"/github.com/acme/hello/@v/v1.0.zip", 400),
        (b"/github.com/acme/hello/@v/latest.mod", 400),
        (b"/github.com/acme/hello/@v/v1.0.0%00.info", 400),
        (b"/github.com/acme/hello/@v/v2.0.0.zip", 404),
        (b"/github.com/@v/list", 404),
        (b"/github/@v/list", 404),
        (b"/nothing-here", 404),
        (b"/" + b"a/" * 1500 + b"@v/list", 414),
    ],
)
def test_bad_requests(probe_mv: ModvaultProcess, target: bytes, status: int) -> None:
    assert raw_request(probe_mv.port, target) == status


def test_methods(probe_mv: ModvaultProcess) -> None:
    assert httpx.post(probe_mv.url + INFO).status_code == 405
    assert httpx.delete(probe_mv.url + INFO).status_code == 405


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
       st.sampled_from(["/@v/list", "/@latest", "/@v/v1.0.0.info", "/@v/x.zip", ""]))
def test_no_path_gets_a_5xx(mv: ModvaultProcess, junk: str, tail: str) -> None:
    target = ("/github.com/acme/" + junk + tail).replace(" ", "").encode()
    if b"#" in target or b"?" in target:
        target = target.replace(b"#", b"").replace(b"?", b"")
    status = raw_request(mv.port, target)
    assert status < 500, target
