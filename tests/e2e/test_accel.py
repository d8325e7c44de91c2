"""Front-end mode (accel_redirect): the nginx recipe deploy/nginx/modvault-accel.conf with a real
nginx, modvault deciding and nginx sending the zips' bytes, driven by the real go command."""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.e2e.test_deploy import NGINX, Nginx, go_downloads_through, tls  # noqa: F401  (tls: a fixture)
from tests.e2e.test_hot_path import mv_cli
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import TestUpstreamServer

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(NGINX is None, reason="nginx not installed")]

ZIP = "/github.com/acme/hello/@v/v1.1.0.zip"
LOCATION = "/_modvault_store/"
CACHED = "modvault-accel-cache.conf"


@pytest.fixture
def data() -> Iterator[Path]:
    """A data directory nginx's workers (another user) can reach: pytest's own temp directories
    are private to their owner."""
    d = Path(tempfile.mkdtemp(prefix="modvault-accel-"))
    d.chmod(0o755)
    yield d / "data"
    shutil.rmtree(d, ignore_errors=True)


def start(modvault: ModvaultFactory, upstream: str, tmp_path: Path, cert_key: tuple[Path, Path],
          data: Path, *args: str, recipe: str = "modvault-accel.conf",
          env: dict[str, str] | None = None) -> tuple[Nginx, ModvaultProcess]:
    mv = modvault(upstream, *args, data_dir=data,
                  env={"MODVAULT_TRUSTED_PROXIES": "127.0.0.1/32",
                       "MODVAULT_ACCEL_REDIRECT": LOCATION, **(env or {})})
    root = tmp_path / "nginx"
    root.mkdir()
    replace = {"alias /var/lib/modvault/": f"alias {data.resolve()}/"}
    if recipe == CACHED:
        # Where nginx's workers (another user) can write: pytest's temp directories are private.
        replace["/run/nginx-modvault-decisions"] = str(data.parent / "decisions")
    nginx = Nginx(root, mv.port, *cert_key, recipe_name=recipe, replace=replace)
    return nginx, mv


def zip_lines(mv: ModvaultProcess) -> list[dict[str, object]]:
    """modvault's access-log lines for GETs of ZIP (an accelerated answer has no body)."""
    time.sleep(0.3)  # flushed within 0.1 s
    return [json.loads(x) for x in mv.output().splitlines()
            if '"modvault.access"' in x and f'"path":"{ZIP}"' in x]


def new_token(data: Path, name: str, role: str) -> str:
    """``modvault token create NAME --role ROLE`` in ``data``: the token."""
    return mv_cli(data, "token", "create", name, "--role", role).split()[-1]


def whole_zip(client: httpx.Client, stored: bytes) -> httpx.Response:
    """A GET of ZIP sent by nginx: the stored bytes, with modvault's validators and cache
    headers, not nginx's, and no redirect header leaking."""
    full = client.get(ZIP)
    assert full.status_code == 200 and full.content == stored
    assert full.headers["etag"].startswith('"') and "-" not in full.headers["etag"]
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert full.headers["cache-status"] == "modvault; hit"
    assert full.headers["content-type"] == "application/zip"
    assert "x-accel-redirect" not in full.headers
    return full


def test_go_command_through_accel_recipe(corpus: Corpus, upstream_a: TestUpstreamServer,
                                         modvault: ModvaultFactory, tmp_path: Path, gohome: Path,
                                         tls: tuple[Path, Path], data: Path) -> None:  # noqa: F811
    nginx, mv = start(modvault, upstream_a.url, tmp_path, tls, data)
    try:
        go_downloads_through(nginx.url, gohome, tls[0], corpus)
        verify = ssl.create_default_context(cafile=str(tls[0]))
        with httpx.Client(http2=True, verify=verify, base_url=nginx.url) as client:
            stored = (data / ZIP.lstrip("/")).read_bytes()
            full = whole_zip(client, stored)
            # Ranges are cut by nginx; conditional requests and If-Range are modvault's.
            part = client.get(ZIP, headers={"range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == stored[10:20]
            assert part.headers["content-range"] == f"bytes 10-19/{len(stored)}"
            assert client.get(ZIP, headers={"range": f"bytes={len(stored)}-"}).status_code == 416
            again = client.get(ZIP, headers={"if-none-match": full.headers["etag"]})
            assert again.status_code == 304
            stale = client.get(ZIP, headers={"range": "bytes=0-9", "if-range": '"other"'})
            assert stale.status_code == 200 and stale.content == stored
            fresh = client.get(ZIP, headers={"range": "bytes=0-9", "if-range": full.headers["etag"]})
            assert fresh.status_code == 206 and fresh.content == stored[:10]
            # nginx sent those bytes: modvault's answers to the plain and Range GETs had none
            # (the first one, a miss fetched from upstream, and If-Range answers had them).
            sizes = [(ln["status"], ln["bytes"]) for ln in zip_lines(mv)]
            assert sizes.count((200, 0)) >= 4 and (200, len(stored)) in sizes, sizes
            # The internal location is not reachable from outside.
            assert client.get(LOCATION + ZIP.lstrip("/")).status_code == 404
            # Not-found stays modvault's answer.
            assert client.get("/github.com/acme/hello/@v/v9.9.9.zip").status_code == 404
    finally:
        nginx.stop()


def test_accel_keeps_access_control(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                                    tmp_path: Path, tls: tuple[Path, Path],  # noqa: F811
                                    data: Path) -> None:
    token = new_token(data, "r1", "reader")
    nginx, mv = start(modvault, upstream_a.url, tmp_path, tls, data, "--auth", "on")
    try:
        verify = ssl.create_default_context(cafile=str(tls[0]))
        with httpx.Client(verify=verify, base_url=nginx.url) as client:
            assert client.get(ZIP).status_code == 401
            for _ in range(2):  # a miss fetched through modvault, then a hit sent by nginx
                r = client.get(ZIP, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200 and r.content == (data / ZIP.lstrip("/")).read_bytes()
                assert r.headers["cache-control"].startswith("private")
            assert client.get(ZIP).status_code == 401  # never a cached public answer
        statuses = [(ln["status"], ln["bytes"]) for ln in zip_lines(mv)]
        assert statuses[-2] == (200, 0) and statuses[-1][0] == 401, statuses
    finally:
        nginx.stop()


def test_go_command_through_accel_cache_recipe(corpus: Corpus, upstream_a: TestUpstreamServer,
                                               modvault: ModvaultFactory, tmp_path: Path,
                                               gohome: Path, tls: tuple[Path, Path],  # noqa: F811
                                               data: Path) -> None:
    """The decision cache: the go command on a cold store, then nginx answering repeated GETs of
    a stored zip from a decision of modvault's kept for 1 s, with modvault's headers; whatever is
    not a plain GET or HEAD of a stored zip is modvault's own answer."""
    nginx, mv = start(modvault, upstream_a.url, tmp_path, tls, data, recipe=CACHED)
    try:
        go_downloads_through(nginx.url, gohome, tls[0], corpus)
        verify = ssl.create_default_context(cafile=str(tls[0]))
        stored = (data / ZIP.lstrip("/")).read_bytes()
        with httpx.Client(http2=True, verify=verify, base_url=nginx.url) as client:
            full = whole_zip(client, stored)
            head = client.head(ZIP)
            assert head.status_code == 200 and head.headers["content-length"] == str(len(stored))
            assert head.headers["etag"] == full.headers["etag"]

            # Within a second, repeated GETs are nginx's alone: modvault decided at most once per
            # second that passed (and once more for a second boundary).
            seen = len(zip_lines(mv))
            start_at = time.monotonic()
            for i in range(30):
                part = client.get(ZIP, headers={"range": f"bytes={i}-{i + 99}"})
                assert part.status_code == 206 and part.content == stored[i:i + 100]
                assert part.headers["content-range"] == f"bytes {i}-{i + 99}/{len(stored)}"
                assert part.headers["etag"] == full.headers["etag"]
            took = time.monotonic() - start_at
            asked = len(zip_lines(mv)) - seen
            assert asked <= int(took) + 2, (asked, took)
            # After its second (nginx counts whole seconds: a decision lasts 1 to 2 s), modvault
            # decides again.
            time.sleep(2.1)
            assert client.get(ZIP).status_code == 200
            assert len(zip_lines(mv)) == seen + asked + 1

            # Validators, If-Range and other methods are modvault's; so is what is not stored.
            assert client.get(ZIP, headers={"range": f"bytes={len(stored)}-"}).status_code == 416
            assert client.get(ZIP, headers={"if-none-match": full.headers["etag"]}).status_code == 304
            stale = client.get(ZIP, headers={"range": "bytes=0-9", "if-range": '"other"'})
            assert stale.status_code == 200 and stale.content == stored
            assert client.post(ZIP).status_code == 405
            missing = client.get("/github.com/acme/hello/@v/v9.9.9.zip")
            assert missing.status_code == 404 and "v9.9.9" in missing.text  # modvault's words
            assert client.get(LOCATION + ZIP.lstrip("/")).status_code == 404
            # A long Authorization header (nginx takes up to 8k; modvault ignores it with auth
            # off) is part of the decision's key, which fits the cache file's header.
            long = client.get(ZIP, headers={"authorization": "Bearer " + "x" * 7000})
            assert long.status_code == 200 and long.content == stored
            assert client.get(ZIP, headers={"authorization": "Bearer " + "x" * 7000}).status_code == 200
            assert "cache key" not in (tmp_path / "nginx" / "error.log").read_text()
            # A stored file removed behind a cached decision (gc): modvault fetches it again.
            assert client.get(ZIP).status_code == 200
            (data / ZIP.lstrip("/")).unlink()
            again = client.get(ZIP)
            assert again.status_code == 200 and again.content == stored
    finally:
        nginx.stop()


def test_accel_cache_keeps_access_control(upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                                          tmp_path: Path, tls: tuple[Path, Path],  # noqa: F811
                                          data: Path) -> None:
    """A cached decision is one client's, with one Authorization header: another token, no token
    or another client address is decided by modvault; a block reaches nginx's answers within
    its second (plus modvault's own state refresh)."""
    reader, admin = new_token(data, "r1", "reader"), new_token(data, "ops", "admin")
    nginx, _ = start(modvault, upstream_a.url, tmp_path, tls, data, "--auth", "on", recipe=CACHED,
                     env={"MODVAULT_ALLOW_CIDRS": "127.0.0.1/32"})
    try:
        verify = ssl.create_default_context(cafile=str(tls[0]))
        bearer = {"Authorization": f"Bearer {reader}"}
        stored = None
        with httpx.Client(verify=verify, base_url=nginx.url) as client:
            denied = client.get(ZIP)
            assert denied.status_code == 401 and "www-authenticate" in denied.headers
            for _ in range(3):  # a miss fetched through modvault, then hits from nginx
                r = client.get(ZIP, headers=bearer)
                stored = (data / ZIP.lstrip("/")).read_bytes()
                assert r.status_code == 200 and r.content == stored
                assert r.headers["cache-control"].startswith("private")
            assert client.get(ZIP).status_code == 401
            assert client.get(ZIP, headers={"Authorization": "Bearer nope"}).status_code == 401
            assert client.get(ZIP, headers={"Authorization": f"Bearer {reader}x"}).status_code == 401
        # Another client address, with the same token, outside allow_cidrs (nginx passes it in
        # X-Forwarded-For): modvault's 403, not the first client's decision.
        other = httpx.HTTPTransport(verify=verify, local_address="127.0.0.2")
        with httpx.Client(transport=other, base_url=nginx.url) as client:
            assert client.get(ZIP, headers=bearer).status_code == 403
        with httpx.Client(verify=verify, base_url=nginx.url) as client:
            assert client.get(ZIP, headers=bearer).status_code == 200
            r = client.put("/api/v1/blocks/github.com/acme/hello/@v/v1.1.0",
                           json={"reason": "CVE-1"}, headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 10
            status = 200
            while status == 200 and time.monotonic() < deadline:
                status = client.get(ZIP, headers=bearer).status_code
                time.sleep(0.1)
            assert status == 403
            assert (data / ZIP.lstrip("/")).read_bytes() == stored
    finally:
        nginx.stop()
