"""Scale-out on 127.0.0.1: SeaweedFS (S3) + Redis + 3 modvault replicas + nginx in front, with the
real go command behind nginx. One upstream fetch however many replicas are asked at once; a replica
killed mid-fetch is taken over; Redis going away degrades to per-process single-flight."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.modvault_proc import ModvaultProcess, free_port
from tests.support.redis_server import RedisServer
from tests.support.seaweed import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                 reason="nginx not installed (.ci/run installs nginx-light)")]
BIG = "github.com/acme/big"


def _nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """nginx load-balancing the replicas round-robin; retries another replica on a broken one."""

    def __init__(self, root: Path, backends: list[int]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        self.port = free_port()
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in backends)
        conf = root / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    upstream modvault {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://modvault;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
            proxy_buffering off;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
""")
        self.proc = subprocess.Popen([_nginx_bin(), "-c", str(conf), "-p", str(root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _big_module(root: Path, size: int) -> tuple[bytes, str]:
    rnd = random.Random(11)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{BIG}@v1.0.0/go.mod", f"module {BIG}\n")
        for i in range(size // (1 << 20)):
            zf.writestr(f"{BIG}@v1.0.0/data/blob{i}.bin", rnd.randbytes(1 << 20))
    d = root / BIG / "@v"
    d.mkdir(parents=True, exist_ok=True)
    (d / "v1.0.0.zip").write_bytes(buf.getvalue())
    (d / "v1.0.0.mod").write_text(f"module {BIG}\n")
    (d / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}')
    (d / "list").write_text("v1.0.0\n")
    return buf.getvalue(), f"/{BIG}/@v/v1.0.0.zip"


class Topology:
    def __init__(self, tmp_path: Path, upstream: str, modvault: ModvaultFactory) -> None:
        self.seaweed = SeaweedS3(tmp_path / "seaweed")
        self.redis = RedisServer(tmp_path / "redis")
        self.prefix = f"rep-{uuid.uuid4().hex[:8]}"
        env = {**self.seaweed.env(prefix=self.prefix), "MODVAULT_COORDINATION": self.redis.url,
               "MODVAULT_COORDINATION_LEASE": "2"}
        self.replicas: list[ModvaultProcess] = [modvault(upstream, env=env) for _ in range(3)]
        self.nginx = Nginx(tmp_path / "nginx", [r.port for r in self.replicas])

    def stop(self) -> None:
        self.nginx.stop()
        self.redis.stop()
        self.seaweed.stop()


@pytest.fixture
def big_upstream(tmp_path: Path) -> Iterator[tuple[TestUpstreamServer, bytes, str]]:
    data, path = _big_module(tmp_path / "big-proxy", 6 << 20)
    srv = TestUpstreamServer(tmp_path / "big-proxy").start()
    yield srv, data, path
    srv.stop()


def test_hundred_requests_over_three_replicas_fetch_once(
        tmp_path: Path, modvault: ModvaultFactory,
        big_upstream: tuple[TestUpstreamServer, bytes, str]) -> None:
    srv, want, path = big_upstream
    srv.behaviours[path] = Behaviour(delay=1.5)  # long enough for all 100 to arrive meanwhile
    topo = Topology(tmp_path, srv.url, modvault)
    try:
        async def fetch_all() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=110)
            async with httpx.AsyncClient(limits=limits, timeout=120) as client:
                return await asyncio.gather(*(client.get(topo.nginx.url + path) for _ in range(100)))

        responses = asyncio.run(fetch_all())
        assert [r.status_code for r in responses] == [200] * 100
        assert all(r.content == want for r in responses)
        assert srv.count(path) == 1, srv.requests
        # Every replica answered some of them (nginx round-robin): the lease, not luck, made it one.
        served = [httpx.get(r.url + "/metrics").text for r in topo.replicas]
        assert all('kind="zip",status="200"' in m for m in served)
    finally:
        topo.stop()


def test_fetching_replica_killed_then_redis_stopped(
        tmp_path: Path, modvault: ModvaultFactory, corpus: Corpus, upstream_a: TestUpstreamServer,
        big_upstream: tuple[TestUpstreamServer, bytes, str]) -> None:
    srv, want, path = big_upstream
    # The first fetch trickles (the replica is killed during it); the takeover is served normally.
    srv.behaviours[path] = Behaviour(trickle=0.02, chunk=32 * 1024, times=1)
    topo = Topology(tmp_path, f"{srv.url},{upstream_a.url}", modvault)
    try:
        result: dict[str, object] = {}

        def first_client() -> None:
            try:
                result["r"] = httpx.get(topo.nginx.url + path, timeout=120)
            except httpx.HTTPError as exc:
                result["err"] = exc

        t = threading.Thread(target=first_client)
        t.start()
        victim = None
        deadline = time.monotonic() + 30
        while victim is None and time.monotonic() < deadline:
            for r in topo.replicas:
                tmp = r.data_dir / ".modvault" / "tmp"
                if tmp.exists() and any(p.name.startswith("dl-") and p.stat().st_size > 256 * 1024
                                        for p in tmp.iterdir()):
                    victim = r
            time.sleep(0.05)
        assert victim is not None, "no replica started the download"
        victim.kill9()
        t.join(120)
        # nginx retried on another replica, which waited for the dead holder's lease to expire,
        # took over and fetched again: the client got whole, correct bytes.
        r = result.get("r")
        if not isinstance(r, httpx.Response) or r.status_code != 200:
            r = httpx.get(topo.nginx.url + path, timeout=120)  # the client's own retry
        assert r.status_code == 200 and hashlib.sha256(r.content).digest() == hashlib.sha256(want).digest()
        assert srv.count(path) == 2
        # No partial object in the bucket: the key holds the whole zip; nothing else under the prefix
        # but what modvault stores on purpose.
        import obstore
        from obstore.store import S3Store

        store = S3Store(topo.seaweed.bucket, prefix=topo.prefix, endpoint=topo.seaweed.endpoint,
                        region=REGION, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                        client_options={"allow_http": True})
        meta = obstore.head(store, path.lstrip("/"))
        assert meta["size"] == len(want)
        keys = [o["path"] for batch in obstore.list(store) for o in batch]
        assert not [k for k in keys if k.startswith(".modvault/uploads/")], keys

        # Redis stopped mid-run: replicas fall back to per-process single-flight; requests succeed,
        # readiness says so, and the go command behind nginx still downloads and builds.
        topo.redis.stop()
        home = tmp_path / "gohome"
        home.mkdir()
        proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.0.0"], cwd=home,
                      env=go_env(home, GOPROXY=topo.nginx.url))
        [doc] = download_json(proc.stdout)
        assert doc["Sum"] == corpus.reference["github.com/acme/hello@v1.0.0"]["Sum"]
        ready = httpx.get(topo.nginx.url + "/readyz", timeout=30)
        assert ready.status_code == 200 and "degraded" in ready.text
        metrics = httpx.get(topo.replicas[0].url + "/metrics").text if topo.replicas[0] is not victim \
            else httpx.get(topo.replicas[1].url + "/metrics").text
        assert "modvault_coordination_fallbacks_total" in metrics
    finally:
        topo.stop()


PRIVATE = "corp.example/lib"
SUMDB = "sum.corp.example"


def _private_versions(root: Path, count: int) -> list[str]:
    """A static proxy of *count* versions of a private module, zips built as the go command does."""
    d = root / PRIVATE / "@v"
    d.mkdir(parents=True, exist_ok=True)
    versions = [f"v1.{i}.0" for i in range(count)]
    for v in versions:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{PRIVATE}@{v}/go.mod", f"module {PRIVATE}\n\ngo 1.21\n")
            zf.writestr(f"{PRIVATE}@{v}/lib.go", f'package lib\n\nconst Version = "{v}"\n')
        (d / f"{v}.zip").write_bytes(buf.getvalue())
        (d / f"{v}.mod").write_text(f"module {PRIVATE}\n\ngo 1.21\n")
        (d / f"{v}.info").write_text(f'{{"Version":"{v}","Time":"2024-01-01T00:00:00Z"}}')
    (d / "list").write_text("".join(v + "\n" for v in versions))
    return versions


def test_private_sumdb_twenty_versions_through_replicas_one_killed(
        tmp_path: Path, modvault: ModvaultFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from modvault.storage.s3 import S3Store
    from modvault.sumdb.private import PrivateSumdb, database_dir, init_database

    versions = _private_versions(tmp_path / "private-proxy", 20)
    srv = TestUpstreamServer(tmp_path / "private-proxy").start()
    seaweed = SeaweedS3(tmp_path / "seaweed")
    redis = RedisServer(tmp_path / "redis")
    nginx: Nginx | None = None
    try:
        prefix = f"sumdb-{uuid.uuid4().hex[:8]}"
        for k, v in seaweed.env(prefix).items():
            if k.startswith("AWS_"):
                monkeypatch.setenv(k, v)
        bucket = S3Store(seaweed.bucket, prefix=prefix, endpoint=seaweed.endpoint, region=REGION)
        dirs = [tmp_path / f"replica{i}" for i in range(3)]
        vkey = init_database(dirs[0], SUMDB, bucket)
        for d in dirs[1:]:  # every replica gets the signing key, as an operator would copy it
            shutil.copytree(database_dir(dirs[0], SUMDB), database_dir(d, SUMDB))
        env = {**seaweed.env(prefix), "MODVAULT_COORDINATION": redis.url,
               "MODVAULT_PRIVATE_SUMDB": SUMDB, "MODVAULT_NOSUMDB": "corp.example"}
        replicas = [modvault(srv.url, data_dir=d, env=env) for d in dirs]
        nginx = Nginx(tmp_path / "nginx", [r.port for r in replicas])

        # 20 versions recorded at once, each lookup sent straight to a different replica; one
        # replica is killed while the appends run.
        async def lookups() -> list[int]:
            async with httpx.AsyncClient(timeout=120) as client:
                async def one(i: int) -> int:
                    target = replicas[i % 3]
                    try:
                        r = await client.get(f"{target.url}/sumdb/{SUMDB}/lookup/{PRIVATE}@{versions[i]}")
                        return r.status_code
                    except httpx.HTTPError:
                        return -1

                async def killer() -> None:
                    await asyncio.sleep(0.3)
                    replicas[2].kill9()

                got = await asyncio.gather(*(one(i) for i in range(20)), killer())
                return [g for g in got if g is not None]

        statuses = asyncio.run(lookups())
        assert all(s in (200, -1, 502) for s in statuses), statuses
        assert statuses.count(200) >= 13  # every lookup on a surviving replica succeeded

        # One consistent log: a fresh reader (as a restarted replica would) checks every record
        # against the signed tree, and it holds each module version at most once.
        db = PrivateSumdb.open(dirs[0], SUMDB, bucket)
        asyncio.run(db.refresh())
        recorded = [r.split(b" ")[1].decode() for r in db.records(0, db.size)]
        assert len(recorded) == len(set(recorded)) and set(recorded) <= set(versions)

        # The go command, through nginx, with GOSUMDB set to the key line: every version verifies
        # (those the killed replica never recorded are recorded now, on a surviving one).
        home = tmp_path / "gohome"
        home.mkdir()
        e = go_env(home, GOPROXY=nginx.url, GOSUMDB=vkey, GONOSUMDB="", GOPRIVATE="", GONOPROXY="")
        proc = run_go(["mod", "download", "-json", *(f"{PRIVATE}@{v}" for v in versions)],
                      cwd=home, env=e, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        docs = download_json(proc.stdout)
        assert sorted(str(d["Version"]) for d in docs) == sorted(versions)
        assert not [d for d in docs if d.get("Error")]
        asyncio.run(db.refresh())
        assert sorted(r.split(b" ")[1].decode() for r in db.records(0, db.size)) == sorted(versions)
    finally:
        if nginx is not None:
            nginx.stop()
        redis.stop()
        seaweed.stop()
        srv.stop()
