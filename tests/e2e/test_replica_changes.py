"""Changes reach every replica at once: a version published through one replica is in ``list`` on
another at once, and a block made through one is refused by another at once (Redis pub/sub between
replicas on SeaweedFS); the workers of one process group see a publish at once too (local
coordination, a shared mapped token). The real go command reads through the other replica."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support.gitrepos import GO, go_env, run_go
from tests.support.modvault_proc import ModvaultProcess
from tests.support.redis_server import RedisServer
from tests.support.seaweed import SeaweedS3

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(GO is None, reason="go not on PATH")]

MODULE = "corp.example/lib"


def mv_cli(data: Path, *args: str, env: dict[str, str]) -> str:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update(env)
    proc = subprocess.run([sys.executable, "-m", "modvault", *args], capture_output=True, text=True,
                          env=e, timeout=120)
    assert proc.returncode == 0, f"modvault {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
    return proc.stdout


def write_module(d: Path, body: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "go.mod").write_text(f"module {MODULE}\n\ngo 1.21\n")
    (d / "lib.go").write_text(f'package lib\n\nfunc Hi() string {{ return "{body}" }}\n')
    return d


@dataclass
class Pair:
    a: ModvaultProcess
    b: ModvaultProcess
    env: dict[str, str]
    token: str
    root: Path

    def publish(self, version: str) -> None:
        lib = write_module(self.root / f"lib-{version}", version)
        mv_cli(self.a.data_dir, "publish", str(lib), "--module", MODULE, "--version", version,
               "--server", self.a.url, env={**self.env, "MODVAULT_TOKEN": self.token})

    def latest(self, mv: ModvaultProcess) -> str:
        r = httpx.get(f"{mv.url}/{MODULE}/@latest", timeout=30)
        assert r.status_code == 200, r.text
        version: str = r.json()["Version"]
        return version

    def versions(self, mv: ModvaultProcess) -> list[str]:
        r = httpx.get(f"{mv.url}/{MODULE}/@v/list", timeout=30)
        assert r.status_code == 200, r.text
        return r.text.split()


AUTH = {"MODVAULT_AUTH": "on", "MODVAULT_ANONYMOUS_ROLE": "reader", "MODVAULT_PRIVATE": "corp.example"}


@pytest.fixture
def pair(tmp_path: Path, modvault: ModvaultFactory) -> Iterator[Pair]:
    seaweed = SeaweedS3(tmp_path / "seaweed")
    redis = RedisServer(tmp_path / "redis")
    try:
        env = {**seaweed.env("changes"), "MODVAULT_COORDINATION": redis.url, **AUTH}
        data_a = tmp_path / "a"
        token = mv_cli(data_a, "token", "create", "ops", "--role", "admin", "--data-dir", str(data_a),
                       env=env).strip().splitlines()[-1]
        a = modvault("off", data_dir=data_a, env=env)
        b = modvault("off", data_dir=tmp_path / "b", env=env)
        yield Pair(a, b, env, token, tmp_path)
    finally:
        redis.stop()
        seaweed.stop()


def test_publish_and_block_reach_the_other_replica_at_once(pair: Pair, tmp_path: Path) -> None:
    pair.publish("v1.0.0")
    assert pair.versions(pair.b) == ["v1.0.0"]  # B now holds the list in its memory tier
    assert pair.latest(pair.b) == "v1.0.0"
    pair.publish("v1.1.0")
    assert pair.versions(pair.b) == ["v1.0.0", "v1.1.0"]  # at once, not after mutable_ttl
    assert pair.latest(pair.b) == "v1.1.0"

    # The go command through B sees the new version and downloads it.
    home = tmp_path / "gohome"
    home.mkdir()
    e = go_env(home, GOPROXY=pair.b.url, GONOSUMDB="corp.example", GOPRIVATE="", GONOPROXY="")
    out = run_go(["list", "-m", "-versions", MODULE], cwd=home, env=e)
    assert out.stdout.split()[1:] == ["v1.0.0", "v1.1.0"]
    assert run_go(["mod", "download", f"{MODULE}@v1.1.0"], cwd=home, env=e).returncode == 0

    # Blocked through A: B refuses it on the very next request.
    assert httpx.get(f"{pair.b.url}/{MODULE}/@v/v1.0.0.info").status_code == 200
    r = httpx.put(f"{pair.a.url}/api/v1/blocks/{MODULE}/@v/v1.0.0", json={"reason": "CVE-1"},
                   headers={"authorization": f"Bearer {pair.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    blocked = httpx.get(f"{pair.b.url}/{MODULE}/@v/v1.0.0.info", timeout=30)
    assert blocked.status_code == 403 and "CVE-1" in blocked.text
    assert pair.versions(pair.b) == ["v1.1.0"]
    home2 = tmp_path / "gohome2"
    home2.mkdir()
    e2 = go_env(home2, GOPROXY=pair.b.url, GONOSUMDB="corp.example", GOPRIVATE="", GONOPROXY="")
    failed = run_go(["mod", "download", f"{MODULE}@v1.0.0"], cwd=home2, env=e2, check=False)
    assert failed.returncode != 0 and "403" in failed.stderr + failed.stdout

    r = httpx.delete(f"{pair.a.url}/api/v1/blocks/{MODULE}/@v/v1.0.0",
                     headers={"authorization": f"Bearer {pair.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{pair.b.url}/{MODULE}/@v/v1.0.0.info").status_code == 200


def test_publish_reaches_every_worker_at_once(tmp_path: Path, modvault: ModvaultFactory) -> None:
    data = tmp_path / "data"
    token = mv_cli(data, "token", "create", "ops", "--role", "admin", "--data-dir", str(data),
                   env=AUTH).strip().splitlines()[-1]
    mv = modvault("off", "--workers", "2", data_dir=data, env=AUTH)
    pair = Pair(mv, mv, AUTH, token, tmp_path)
    pair.publish("v1.0.0")
    # New connections spread over both workers; each keeps list and @latest in its memory tier.
    for _ in range(20):
        assert pair.versions(mv) == ["v1.0.0"]
        assert pair.latest(mv) == "v1.0.0"
    pair.publish("v1.1.0")
    for _ in range(20):  # every worker, not only the one that took the upload
        assert pair.versions(mv) == ["v1.0.0", "v1.1.0"]
        # Not the stored answer of the first publish, still fresh by its age (mutable_ttl).
        assert pair.latest(mv) == "v1.1.0"


def test_private_log_refuses_new_records_while_redis_is_down(tmp_path: Path,
                                                             modvault: ModvaultFactory) -> None:
    from modvault.sumdb.private import init_database
    from tests.e2e.test_replicas import PRIVATE, SUMDB, _private_versions
    from tests.support.upstream_server import TestUpstreamServer

    versions = _private_versions(tmp_path / "proxy", 3)
    srv = TestUpstreamServer(tmp_path / "proxy").start()
    redis = RedisServer(tmp_path / "redis")
    try:
        data = tmp_path / "data"
        init_database(data, SUMDB)
        mv = modvault(srv.url, data_dir=data, env={
            "MODVAULT_COORDINATION": redis.url, "MODVAULT_PRIVATE_SUMDB": SUMDB,
            "MODVAULT_NOSUMDB": "corp.example"})
        lookup = f"{mv.url}/sumdb/{SUMDB}/lookup/{PRIVATE}@"
        assert httpx.get(lookup + versions[0], timeout=60).status_code == 200
        redis.stop()
        refused = httpx.get(lookup + versions[1], timeout=60)
        assert refused.status_code == 503, refused.text
        assert "Redis" in refused.text and "Traceback" not in refused.text
        assert httpx.get(lookup + versions[0], timeout=60).status_code == 200  # recorded: served
        redis.start()
        assert httpx.get(lookup + versions[1], timeout=60).status_code == 200
    finally:
        redis.stop()
        srv.stop()
