"""Store-side operator commands (ls, rm, gc), the access journal, store metrics and the /index feed,
against a running modvault filled by the real go command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.ops.storefix import put_version
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e


def modvault_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "modvault", *args], capture_output=True, text=True,
                          env=e, timeout=120)


def _download(home: Path, proxy: str, *targets: str) -> dict[str, dict[str, object]]:
    home.mkdir(exist_ok=True)
    proc = run_go(["mod", "download", "-json", *targets], cwd=home, env=go_env(home, GOPROXY=proxy))
    return {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_ls_rm_gc_index_and_metrics(corpus: Corpus, upstream_a: TestUpstreamServer,
                                    modvault: ModvaultFactory, tmp_path: Path) -> None:
    mv = modvault(upstream_a.url, env={"MODVAULT_ACCESS_FLUSH_INTERVAL": "0.5"})
    targets = ["github.com/acme/hello@v1.0.0", "github.com/acme/hello@v1.1.0",
               "github.com/Acme/Upper@v1.0.0"]
    got = _download(tmp_path / "g1", mv.url, *targets)
    assert set(got) == set(targets)
    data = str(mv.data_dir)

    # /index: every version once, oldest first, paged like index.golang.org (new versions show up
    # within a couple of seconds: the feed follows walks of the store).
    _wait_for(lambda: len(httpx.get(mv.url + "/index", timeout=10).text.splitlines()) == 3)
    feed = httpx.get(mv.url + "/index", timeout=10)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in feed.text.splitlines()]
    assert sorted(f"{x['Path']}@{x['Version']}" for x in lines) == sorted(targets)
    stamps = [x["Timestamp"] for x in lines]
    assert stamps == sorted(stamps) and all(s.endswith("Z") for s in stamps)
    page1 = httpx.get(mv.url + "/index", params={"limit": "1"}, timeout=10).text.splitlines()
    assert [json.loads(x) for x in page1] == lines[:1]
    rest = httpx.get(mv.url + "/index", params={"since": lines[1]["Timestamp"]}, timeout=10)
    assert [json.loads(x) for x in rest.text.splitlines()][-2:] == lines[1:]
    future = httpx.get(mv.url + "/index", params={"since": "2999-01-01T00:00:00Z"}, timeout=10)
    assert future.status_code == 200 and future.text == ""
    for bad in ({"since": "yesterday"}, {"limit": "0"}, {"limit": "-3"}, {"since": "2020-01-01"}):
        r = httpx.get(mv.url + "/index", params=bad, timeout=10)
        assert r.status_code == 400, (bad, r.text)
        assert len(r.text.splitlines()) == 1
    assert httpx.post(mv.url + "/index", timeout=10).status_code == 405

    # Store metrics follow the store's walks, which /index starts when the last is over 2 s old; a
    # walk may have begun before the last zip landed, so ask again until one has seen all three.
    deadline = time.monotonic() + 60
    while True:
        httpx.get(mv.url + "/index", timeout=10)
        metrics = httpx.get(mv.url + "/metrics", timeout=10).text
        if _metric(metrics, 'modvault_store_artifacts{kind="zip"}') == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert _metric(metrics, 'modvault_store_artifacts{kind="zip"}') == 3
    zip_bytes = sum(os.path.getsize(str(d["Zip"])) for d in got.values())
    assert _metric(metrics, 'modvault_store_bytes{kind="zip"}') == zip_bytes
    assert _metric(metrics, "modvault_store_versions") == 3

    # ls: the journal has the accesses (flushed by the server in the background, no atime).
    def accessed() -> bool:
        out = modvault_cli("ls", "--json", "--data-dir", data)
        doc = json.loads(out.stdout)
        return all(item["LastAccess"] for item in doc["Items"])

    _wait_for(accessed)
    out = modvault_cli("ls", "github.com/acme", "--data-dir", data)
    assert out.returncode == 0, out.stderr
    assert "github.com/acme/hello" in out.stdout and "Upper" not in out.stdout
    assert "1 modules, 2 versions" in out.stderr
    doc = json.loads(modvault_cli("ls", "--json", "--data-dir", data).stdout)
    assert doc["Versions"] == 3 and doc["Modules"] == 2
    upper = next(i for i in doc["Items"] if i["Path"] == "github.com/Acme/Upper")
    assert upper["Source"] == "public" and upper["Files"]["zip"] == os.path.getsize(
        str(got["github.com/Acme/Upper@v1.0.0"]["Zip"]))
    # MODVAULT_DATA_DIR resolves the store exactly as serve does.
    via_env = modvault_cli("ls", "--json", env={"MODVAULT_DATA_DIR": data})
    assert json.loads(via_env.stdout)["Versions"] == 3

    # rm: the cached copy goes; the next request fetches it again from the upstream.
    before = upstream_a.count("/github.com/acme/hello/@v/v1.0.0.zip")
    out = modvault_cli("rm", "github.com/acme/hello@v1.0.0", "--data-dir", data, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Files"] == 3
    assert not (mv.data_dir / "github.com/acme/hello/@v/v1.0.0.zip").exists()
    again = _download(tmp_path / "g2", mv.url, "github.com/acme/hello@v1.0.0")
    assert again["github.com/acme/hello@v1.0.0"]["Sum"] == got["github.com/acme/hello@v1.0.0"]["Sum"]
    assert upstream_a.count("/github.com/acme/hello/@v/v1.0.0.zip") == before + 1
    audit = (mv.data_dir / ".modvault/audit/audit.log").read_text().splitlines()
    entry = json.loads(audit[-1])
    assert entry["event"] == "rm" and entry["target"] == "github.com/acme/hello@v1.0.0"
    assert entry["identity"].startswith("cli:")
    missing = modvault_cli("rm", "github.com/acme/nothere", "--data-dir", data)
    assert missing.returncode == 1 and "not in the store" in missing.stderr
    bad = modvault_cli("rm", "not a module@v1", "--data-dir", data)
    assert bad.returncode == 1 and "invalid" in bad.stderr

    # gc: a version stored long ago and never used goes; what the go command just used stays.
    old = time.time() - 40 * 86400
    put_version(mv.data_dir, "example.com/stale", "v1.0.0", zip_bytes=4096, mtime=old)
    dry = modvault_cli("gc", "--unused-for", "30d", "--dry-run", "--json", "--data-dir", data)
    assert dry.returncode == 0, dry.stderr
    assert [r["Path"] for r in json.loads(dry.stdout)["Removed"]] == ["example.com/stale"]
    assert (mv.data_dir / "example.com/stale/@v/v1.0.0.zip").exists()
    out = modvault_cli("gc", "--unused-for", "30d", "--max-bytes", "1G", "--data-dir", data)
    assert out.returncode == 0, out.stderr
    assert "removed example.com/stale@v1.0.0" in out.stdout and "freed" in out.stdout
    assert not (mv.data_dir / "example.com/stale/@v/v1.0.0.zip").exists()
    # Everything else was used within the grace period: even a zero budget keeps it.
    out = modvault_cli("gc", "--max-bytes", "0", "--json", "--data-dir", data)
    assert json.loads(out.stdout)["Removed"] == []
    assert modvault_cli("gc", "--data-dir", data).returncode == 1
    assert modvault_cli("gc", "--max-bytes", "lots", "--data-dir", data).returncode == 1
    metrics = httpx.get(mv.url + "/metrics", timeout=10).text
    assert _metric(metrics, "modvault_gc_runs_total") == 2
    assert _metric(metrics, "modvault_gc_freed_bytes_total") >= 4096


def test_rm_refuses_private_modules(tmp_path: Path) -> None:
    put_version(tmp_path, "corp.example/lib", "v1.0.0")
    out = modvault_cli("rm", "corp.example/lib@v1.0.0", "--data-dir", str(tmp_path),
                       env={"MODVAULT_PRIVATE": "corp.example"})
    assert out.returncode == 1 and "private or published module" in out.stderr
    assert (tmp_path / "corp.example/lib/@v/v1.0.0.zip").exists()
    cfg = tmp_path / "mv.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\nnosumdb = "corp.example"\n')
    out = modvault_cli("rm", "corp.example/lib", "--config", str(cfg))
    assert out.returncode == 1 and "private or published module" in out.stderr
    out = modvault_cli("ls", "--data-dir", str(tmp_path / "nope"))
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_background_gc_setting(corpus: Corpus, upstream_a: TestUpstreamServer,
                               modvault: ModvaultFactory, tmp_path: Path) -> None:
    data = tmp_path / "bg"
    put_version(data, "example.com/stale", "v1.0.0", zip_bytes=4096, mtime=time.time() - 90 * 86400)
    mv = modvault(upstream_a.url, data_dir=data,
                  env={"MODVAULT_GC_UNUSED_FOR": "30d", "MODVAULT_GC_INTERVAL": "1"})
    _download(tmp_path / "g", mv.url, "github.com/acme/hello@v1.0.0")
    # The first background run comes one interval after start.
    _wait_for(lambda: not (data / "example.com/stale/@v/v1.0.0.zip").exists(), timeout=30)
    assert (data / "github.com/acme/hello/@v/v1.0.0.zip").exists()
    # The summary line is logged once the run is over, a moment after the file is gone.
    _wait_for(lambda: "gc removed 1 versions" in mv.output(), timeout=20)
    bad = modvault_cli("serve", "--data-dir", str(data), env={"MODVAULT_GC_MAX_BYTES": "huge"})
    assert bad.returncode == 2 and "gc_max_bytes" in bad.stderr
