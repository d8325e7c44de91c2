"""A zip nothing has stored yet, end to end: the checksum database is asked while the zip downloads,
the bytes are hashed as they arrive (the stored ETag is their SHA-256), and every refusal leaves
nothing behind (no object, no temp file), whatever the download path did concurrently."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path

import httpx
import pytest

from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.storage.base import etag_for_digest
from tests.conftest import Corpus, ModvaultFactory
from tests.sumdb.sumdb_support import FakeSumdb, FakeSumdbServer
from tests.support.gitrepos import Repo, export_proxy, go_env, run_go
from tests.support.metrics import scrape
from tests.support.upstream_server import Behaviour, TestUpstreamServer
from tests.support.waits import wait_for

M, V = "github.com/acme/hello", "v1.0.0"
ZIP = f"/{M}/@v/{V}.zip"
NAME = "sum.cold.example"


class WatchedSumdb(FakeSumdb):
    """A checksum database that says when it was asked for a record."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.looked_up = threading.Event()

    def serve(self, path: str) -> tuple[int, bytes]:
        if path.startswith("/lookup/"):
            self.looked_up.set()
        return super().serve(path)


@pytest.fixture
def sumdb(corpus: Corpus) -> tuple[WatchedSumdb, FakeSumdbServer]:
    db = WatchedSumdb(NAME)
    at = corpus.proxy_a / M / "@v"
    db.add(M, V, hash_zip(at / f"{V}.zip"), hash_gomod((at / f"{V}.mod").read_bytes()))
    srv = FakeSumdbServer(db)
    yield db, srv
    srv.stop()


def leftovers(data: Path) -> list[str]:
    """Temp files of downloads and puts that are still there once the writes a request started
    have ended: none may outlive them. A store write runs in a thread, which a failed download
    cannot stop (the checksum lookup started beside it may be caching a tile when the 502 is
    sent), so its temp file may exist for a moment after the answer; it must then go."""
    tmp = data / ".modvault" / "tmp"
    wait_for(lambda: not any(tmp.iterdir()), timeout=10)
    return sorted(p.name for p in tmp.iterdir())


def test_lookup_runs_while_the_zip_downloads(corpus: Corpus, modvault: ModvaultFactory,
                                             sumdb: tuple[WatchedSumdb, FakeSumdbServer],
                                             tmp_path: Path) -> None:
    db, srv = sumdb
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    # The upstream holds the zip's answer until the database has been asked: with the lookup
    # made only after the download, it would wait out the 10 s and record False.
    asked_first: list[bool] = []
    upstream.hook = lambda path: (asked_first.append(db.looked_up.wait(10))
                                  if path.endswith(".zip") else None)
    try:
        mv = modvault(upstream.url, "--sumdb", f"{db.vkey} {srv.url}", "--sumdb-verify",
                      data_dir=tmp_path / "data")
        r = httpx.get(mv.url + ZIP, timeout=60)
        assert r.status_code == 200, r.text
        assert asked_first == [True]
        # Hashed on the way, never re-read: the ETag is still the SHA-256 of the bytes, and the
        # stored object carries the same one.
        assert r.headers["etag"] == etag_for_digest(hashlib.sha256(r.content).hexdigest())
        stored = tmp_path / "data" / ZIP.lstrip("/")
        assert stored.read_bytes() == r.content
        assert os.getxattr(stored, "user.modvault.etag").decode() == r.headers["etag"]
        assert leftovers(tmp_path / "data") == []
        assert db.count("/lookup/") == 1
    finally:
        upstream.stop()


def test_tampered_zip_refused_with_the_lookup_in_flight(corpus: Corpus, modvault: ModvaultFactory,
                                                        sumdb: tuple[WatchedSumdb, FakeSumdbServer],
                                                        tmp_path: Path) -> None:
    db, srv = sumdb
    good = (corpus.proxy_a / M / "@v" / f"{V}.zip").read_bytes()
    tampered = _with_extra_file(good)
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    upstream.behaviours[ZIP] = Behaviour(body=tampered, trickle=0.01, chunk=4096)
    try:
        data = tmp_path / "data"
        mv = modvault(upstream.url, "--sumdb", f"{db.vkey} {srv.url}", "--sumdb-verify",
                      data_dir=data)
        r = httpx.get(mv.url + ZIP, timeout=60)
        assert r.status_code == 502 and r.text.startswith("SECURITY ERROR"), r.text
        assert not (data / ZIP.lstrip("/")).exists()
        assert leftovers(data) == []
        # A go client behind it fails and keeps nothing.
        home = tmp_path / "gohome"
        home.mkdir()
        env = go_env(home, GOPROXY=mv.url, GOSUMDB=f"{db.vkey} {srv.url}", GONOSUMDB="")
        proc = run_go(["mod", "download", "-json", f"{M}@{V}"], cwd=home, env=env, check=False)
        assert proc.returncode != 0
        assert list((home / "gopath" / "pkg" / "mod").rglob(f"{V}.zip")) == []
    finally:
        upstream.stop()


@pytest.mark.parametrize("behaviour", [
    Behaviour(drop_after=200, chunk=64),  # the upstream dies mid-body
    Behaviour(content_length=10_000_000),  # says more than it sends
], ids=["truncated", "lying-length"])
def test_broken_download_leaves_nothing(corpus: Corpus, modvault: ModvaultFactory,
                                        sumdb: tuple[WatchedSumdb, FakeSumdbServer], tmp_path: Path,
                                        behaviour: Behaviour) -> None:
    """The lookup started beside the download is dropped with it: a clear 502, nothing stored,
    no temp file, and the next request (upstream fixed) stores the zip."""
    db, srv = sumdb
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    behaviour.times = 3  # every try of the first request (1 + 2 retries)
    upstream.behaviours[ZIP] = behaviour
    try:
        data = tmp_path / "data"
        mv = modvault(upstream.url, "--sumdb", f"{db.vkey} {srv.url}", "--sumdb-verify",
                      data_dir=data, env={"MODVAULT_BREAKER_FAILURES": "100",
                                          "MODVAULT_UNREACHABLE_MEMORY": "0"})
        r = httpx.get(mv.url + ZIP, timeout=60)
        assert r.status_code in (502, 504), r.text
        assert "\n" not in r.text.strip()
        assert not (data / ZIP.lstrip("/")).exists()
        assert leftovers(data) == []
        upstream.behaviours.clear()
        r = httpx.get(mv.url + ZIP, timeout=60)
        assert r.status_code == 200
        assert r.content == (corpus.proxy_a / M / "@v" / f"{V}.zip").read_bytes()
    finally:
        upstream.stop()


def _with_extra_file(original: bytes) -> bytes:
    """A valid module zip with one more file: passes the zip rules, fails the checksum."""
    import io
    import zipfile

    buf = io.BytesIO(original)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(f"{M}@{V}/extra.go", "package hello\n")
    return buf.getvalue()


def entries_checked(url: str) -> dict[str, float]:
    got = scrape(url)
    return {read: got.get(("modvault_zip_entries_checked_total", frozenset({("read", read)})), 0.0)
            for read in ("download", "file")}


def test_go_gets_a_cold_zip_checked_while_it_streamed(
        corpus: Corpus, modvault: ModvaultFactory, sumdb: tuple[WatchedSumdb, FakeSumdbServer],
        tmp_path: Path) -> None:
    """The real go command, checksum database on, through a cold modvault whose upstream sends
    the zip in small trickled pieces: the zip's entries were inflated and hashed as they arrived
    (not read again from the file), and the h1: the go command checks is right."""
    db, srv = sumdb
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    upstream.behaviours[ZIP] = Behaviour(trickle=0.002, chunk=97)
    try:
        data = tmp_path / "data"
        mv = modvault(upstream.url, "--sumdb", f"{db.vkey} {srv.url}", "--sumdb-verify",
                      data_dir=data)
        home = tmp_path / "gohome"
        home.mkdir()
        env = go_env(home, GOPROXY=mv.url, GOSUMDB=f"{db.vkey} {srv.url}", GONOSUMDB="")
        proc = run_go(["mod", "download", "-json", f"{M}@{V}"], cwd=home, env=env)
        got = json.loads(proc.stdout)
        zip_path = corpus.proxy_a / M / "@v" / f"{V}.zip"
        assert got["Sum"] == hash_zip(zip_path) and "Error" not in got
        assert (data / ZIP.lstrip("/")).read_bytes() == zip_path.read_bytes()
        checked = entries_checked(mv.url)
        with zipfile.ZipFile(zip_path) as zf:
            files = [n for n in zf.namelist() if not n.endswith("/")]
        # Every file but go.mod (whose bytes the check returns) came from the scan.
        assert checked == {"download": len(files) - 1, "file": 1}, checked
        assert leftovers(data) == []
    finally:
        upstream.stop()


def test_upstream_killed_mid_body_then_a_whole_zip(
        corpus: Corpus, modvault: ModvaultFactory, sumdb: tuple[WatchedSumdb, FakeSumdbServer],
        tmp_path: Path) -> None:
    """The first try sends part of a different (tampered) zip and dies; the retry sends the real
    one. The scan of the dead try is never taken for the retry's bytes: the real zip is stored,
    checked from its own scan, and the database agrees with it."""
    db, srv = sumdb
    good = (corpus.proxy_a / M / "@v" / f"{V}.zip").read_bytes()
    tampered = _with_extra_file(good)
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    upstream.behaviours[ZIP] = Behaviour(body=tampered, drop_after=len(tampered) - 30, chunk=512,
                                         times=1)
    try:
        data = tmp_path / "data"
        mv = modvault(upstream.url, "--sumdb", f"{db.vkey} {srv.url}", "--sumdb-verify",
                      data_dir=data, env={"MODVAULT_BREAKER_FAILURES": "100"})
        r = httpx.get(mv.url + ZIP, timeout=60)
        assert r.status_code == 200, r.text
        assert r.content == good
        assert upstream.requests.count(ZIP) == 2
        assert entries_checked(mv.url)["download"] >= 1
        assert leftovers(data) == []
    finally:
        upstream.stop()


def test_other_requests_are_served_while_a_big_zip_downloads(modvault: ModvaultFactory,
                                                             tmp_path: Path) -> None:
    """A 12 MiB zip nothing has stored, arriving in 256 KiB pieces: while it is received, hashed,
    scanned and checked, the same server keeps answering other requests (a stored .info, the
    health check), each well within a generous bound, not after the zip."""
    big, ver = "example.com/big", "v1.0.0"
    root = tmp_path / "upstream"
    at = root / big / "@v"
    at.mkdir(parents=True)
    (at / "list").write_text(ver + "\n")
    (at / f"{ver}.info").write_text(f'{{"Version":"{ver}","Time":"2026-01-02T03:04:05Z"}}')
    (at / f"{ver}.mod").write_text(f"module {big}\n")
    with zipfile.ZipFile(at / f"{ver}.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(f"{big}@{ver}/go.mod", f"module {big}\n")
        for i in range(12):
            zf.writestr(f"{big}@{ver}/data/blob{i}.bin", os.urandom(1 << 20))
    zip_url = f"/{big}/@v/{ver}.zip"
    upstream = TestUpstreamServer(root).start()
    upstream.behaviours[zip_url] = Behaviour(trickle=0.02, chunk=256 << 10)
    try:
        mv = modvault(upstream.url, "--no-sumdb-verify", data_dir=tmp_path / "data")
        info = f"/{big}/@v/{ver}.info"
        assert httpx.get(mv.url + info, timeout=30).status_code == 200
        done = threading.Event()
        got: list[httpx.Response] = []

        def fetch_zip() -> None:
            try:
                got.append(httpx.get(mv.url + zip_url, timeout=120))
            finally:
                done.set()

        worker = threading.Thread(target=fetch_zip)
        worker.start()
        during: list[float] = []
        with httpx.Client(base_url=mv.url, timeout=30) as c:
            while not done.is_set():
                if not upstream.busy(zip_url):
                    continue  # not started yet, or already sent: not "during"
                for path in (info, "/healthz"):
                    r = c.get(path)
                    assert r.status_code == 200, (path, r.text)
                    if not done.is_set():
                        during.append(r.elapsed.total_seconds())
        worker.join(120)
        assert got and got[0].status_code == 200
        assert got[0].content == (at / f"{ver}.zip").read_bytes()
        assert len(during) >= 10, during  # answered while the zip was still on its way
        assert max(during) < 5.0, during  # a stalled loop would hold them until the zip is done
    finally:
        upstream.stop()


def test_go_gets_a_cold_zip_of_many_files_made_by_the_go_command(modvault: ModvaultFactory,
                                                                 tmp_path: Path) -> None:
    """A module of 600 files in nested directories, zipped by the go command itself (direct mode:
    data descriptors, no sizes in the local headers), served by a static upstream in odd-sized
    pieces, fetched cold by the go command through modvault: the same h1: as direct mode, every
    entry but go.mod checked from the download scan (headers and descriptors cut by the pieces
    included), and the root licence found while the zip was checked (the provenance record)."""
    mod, ver = "github.com/acme/many", "v1.0.0"
    repo = Repo(tmp_path, mod)
    files: dict[str, str | bytes] = {"go.mod": f"module {mod}\n\ngo 1.21\n",
                                     "LICENSE": Path("/usr/share/common-licenses/Apache-2.0").read_bytes()}
    for i in range(598):
        files[f"pkg{i % 23}/sub{i % 5}/file{i:03d}.go"] = (
            f"package sub{i % 5}\n\n// " + " ".join(["func", "return", str(i)] * (i % 40 + 1)) + "\n")
    repo.write(files)
    repo.commit("many files", tags=[ver])
    direct = tmp_path / "direct"
    direct.mkdir()
    env = go_env(direct, repos=tmp_path / "repos", GOPROXY="direct")
    want = json.loads(run_go(["mod", "download", "-json", f"{mod}@{ver}"], cwd=direct, env=env).stdout)
    proxy = tmp_path / "proxy"
    export_proxy(Path(env["GOMODCACHE"]), proxy)
    upstream = TestUpstreamServer(proxy).start()
    upstream.behaviours[f"/{mod}/@v/{ver}.zip"] = Behaviour(chunk=4093)
    try:
        data = tmp_path / "data"
        mv = modvault(upstream.url, "--no-sumdb-verify", data_dir=data)
        home = tmp_path / "client"
        home.mkdir()
        got = json.loads(run_go(["mod", "download", "-json", f"{mod}@{ver}"], cwd=home,
                                env=go_env(home, GOPROXY=mv.url)).stdout)
        assert "Error" not in got and got["Sum"] == want["Sum"], (got, want)
        assert entries_checked(mv.url) == {"download": 599, "file": 1}
        record = json.loads((data / ".modvault" / "provenance" / mod / "@v" / f"{ver}.json").read_text())
        assert record["licence"] == "Apache-2.0" and record["zip_h1"] == want["Sum"]
        assert leftovers(data) == []
    finally:
        upstream.stop()
