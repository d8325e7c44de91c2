"""Start-up and shutdown as an operator meets them: one clear line and exit code 2 for what cannot
work, no silent port sharing, absolute paths, JSON-only output, 5xx reasons in the log, and a
SIGTERM that finishes in-flight work without waiting on idle HTTP/2 connections."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import Repo, download_json, go_env, run_go
from tests.support.modvault_proc import ModvaultProcess, free_port
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

INFO = "/github.com/acme/hello/@v/v1.0.0.info"
ZIP = "/github.com/acme/hello/@v/v1.0.0.zip"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    env["MODVAULT_SUMDB_VERIFY"] = "false"
    env.update(extra)
    return env


def run_serve(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modvault", "serve", *args], capture_output=True,
                          text=True, timeout=timeout, env=env or clean_env(), cwd=cwd)


def assert_one_json_error(res: subprocess.CompletedProcess[str], *words: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = [x for x in (res.stdout + res.stderr).splitlines() if x.strip()]
    assert len(lines) == 1, lines  # one line, never a traceback
    doc = json.loads(lines[0])
    assert doc["level"] == "error"
    for w in words:
        assert w in doc["msg"], doc["msg"]
    return str(doc["msg"])


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_serve("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d"),
                        "--upstream", "off")
    assert_one_json_error(res, "listen", "already in use")


def test_second_modvault_never_shares_the_port(upstream_a: TestUpstreamServer,
                                               modvault: ModvaultFactory, tmp_path: Path) -> None:
    first = modvault(upstream_a.url)
    res = run_serve("--listen", f"127.0.0.1:{first.port}", "--data-dir", str(tmp_path / "other"),
                    "--upstream", upstream_a.url)
    assert_one_json_error(res, "already in use", "allow_port_sharing")
    # All traffic still reaches the first one (and its data directory).
    for _ in range(20):
        assert httpx.get(first.url + INFO, timeout=10).status_code == 200
    assert not (tmp_path / "other" / "github.com").exists()
    # Sharing on purpose is possible when asked for: the second one answers requests on that port
    # too (it fetches into its own data directory).
    log = tmp_path / "shared.log"
    with open(log, "wb") as out:
        shared = subprocess.Popen(
            [sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{first.port}",
             "--data-dir", str(tmp_path / "shared"), "--upstream", upstream_a.url],
            env=clean_env(MODVAULT_ALLOW_PORT_SHARING="true"), stdout=out, stderr=out,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "shared" / "github.com").exists():
            assert shared.poll() is None and time.monotonic() < deadline, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(first.url + INFO, timeout=10)
            time.sleep(0.05)
        assert shared.poll() is None, log.read_text()
    finally:
        os.killpg(shared.pid, signal.SIGTERM)
        shared.wait(timeout=20)


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only): too small for a data directory; remounted read-only on demand."""
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_disk_is_one_line(small_mount: Path) -> None:
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(small_mount / "data"),
                    "--upstream", "off")
    assert_one_json_error(res, "data_dir", "free")
    # Truly full: the write check itself fails.
    with open(small_mount / "filler", "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(small_mount),
                    "--upstream", "off")
    assert_one_json_error(res, "data_dir", "no space left")


def test_read_only_data_dir_is_one_line(small_mount: Path) -> None:
    (small_mount / "data").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(small_mount / "data"),
                    "--upstream", "off")
    assert_one_json_error(res, "data_dir", "read-only")


def test_unwritable_data_dir_without_root(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through permission bits (the tmpfs tests cover root)")
    data = tmp_path / "data"
    data.mkdir(mode=0o500)
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data),
                    "--upstream", "off")
    assert_one_json_error(res, "data_dir", "not writable")


def test_zero_workers_is_explained(tmp_path: Path) -> None:
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"),
                    "--workers", "0")
    assert_one_json_error(res, "workers", "at least 1")


def test_serving_line_json_logs_and_5xx_reasons(upstream_a: TestUpstreamServer,
                                                modvault: ModvaultFactory) -> None:
    upstream_a.behaviours[INFO] = Behaviour(status=500, body=b"database on fire\n")
    mv = modvault(upstream_a.url, env={"MODVAULT_UPSTREAM_RETRIES": "0",
                                       "MODVAULT_UPSTREMA": "typo"})
    r = httpx.get(mv.url + INFO, timeout=30)
    assert r.status_code == 502
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while rid not in mv.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    docs = [json.loads(line) for line in mv.output().splitlines() if line.strip()]  # all JSON
    msgs = [(d["level"], d["logger"], d.get("msg", "")) for d in docs]
    serving = [i for i, (_, _, m) in enumerate(msgs) if " serving http://" in m]
    listening = [i for i, (_, lg, m) in enumerate(msgs) if lg.startswith("_granian")
                 and "Listening" in m]
    assert len(serving) == 1 and listening and listening[0] < serving[0]
    assert "checksum verification OFF" in msgs[serving[0]][2]
    assert ("warning", "modvault.config") in [(lv, lg) for lv, lg, m in msgs if "MODVAULT_UPSTREMA" in m]
    failures = [m for lv, _, m in msgs if lv == "warning" and rid in m]
    assert failures and "502" in failures[0] and "database on fire" in failures[0]


def test_serving_line_names_the_checksum_database(upstream_a: TestUpstreamServer,
                                                  modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url, env={"MODVAULT_SUMDB_VERIFY": "true"})
    deadline = time.monotonic() + 5
    while " serving " not in mv.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(x for x in mv.output().splitlines() if " serving " in x)
    assert "checksum verification on against sum.golang.org" in line


def test_relative_data_dir_with_direct_mode(tmp_path: Path, gohome: Path) -> None:
    repo = Repo(tmp_path, "github.com/acme/rel")
    repo.write({"go.mod": "module github.com/acme/rel\n\ngo 1.21\n",
                "rel.go": "package rel\n\nconst X = 1\n"})
    repo.commit("v1", ["v1.0.0"])
    cfg = tmp_path / "gitconfig"
    cfg.write_text(f'[url "{tmp_path / "repos" / "github.com"}/"]\n\tinsteadOf = https://github.com/\n')
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{port}",
         "--data-dir", "relative/data", "--upstream", "direct"],
        cwd=workdir, env=clean_env(GIT_CONFIG_GLOBAL=str(cfg), GIT_CONFIG_NOSYSTEM="1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        env = go_env(gohome, GOPROXY=url)
        out = run_go(["mod", "download", "-json", "github.com/acme/rel@v1.0.0"], cwd=gohome, env=env)
        (doc,) = download_json(out.stdout)
        assert not doc.get("Error") and doc["Version"] == "v1.0.0"
        assert (workdir / "relative" / "data" / "github.com" / "acme" / "rel" / "@v"
                / "v1.0.0.zip").is_file()
        assert (workdir / "relative" / "data" / ".modvault" / "vcs").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def sigterm(mv: ModvaultProcess) -> float:
    """SIGTERM the server's process group; seconds until it exited."""
    started = time.monotonic()
    os.killpg(mv.proc.pid, signal.SIGTERM)
    mv.proc.wait(timeout=30)
    return time.monotonic() - started


# Both process models drain the same way: the supervisor's workers, or one process.
MODELS = pytest.mark.parametrize("model", ["workers", "single"])


@MODELS
def test_sigterm_with_an_idle_h2_connection(upstream_a: TestUpstreamServer,
                                            modvault: ModvaultFactory, model: str) -> None:
    mv = modvault(upstream_a.url, env={"MODVAULT_PROCESS_MODEL": model,
                                       "MODVAULT_SHUTDOWN_TIMEOUT": "3"})
    with httpx.Client(http1=False, http2=True) as client:
        r = client.get(mv.url + INFO)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        took = sigterm(mv)  # the connection stays open and idle meanwhile
    assert mv.proc.returncode == 0
    assert took < 3 + 1, took  # never held until the deadline, let alone past it
    assert "nothing in flight" in mv.output()


@MODELS
def test_sigterm_finishes_in_flight_then_cuts_at_the_deadline(corpus: Corpus,
                                                              upstream_a: TestUpstreamServer,
                                                              modvault: ModvaultFactory,
                                                              model: str) -> None:
    upstream_a.behaviours[ZIP] = Behaviour(delay=1.5)
    mv = modvault(upstream_a.url, env={"MODVAULT_PROCESS_MODEL": model,
                                       "MODVAULT_SHUTDOWN_TIMEOUT": "4"})
    result: dict[str, object] = {}

    def fetch() -> None:  # HTTP/1.1, as the go command speaks to a plain-http proxy
        with httpx.Client() as c:
            resp = c.get(mv.url + ZIP, timeout=30)
            result["status"], result["size"] = resp.status_code, len(resp.content)

    t = threading.Thread(target=fetch)
    t.start()
    time.sleep(0.5)  # the request is waiting on the slow upstream
    started = time.monotonic()
    os.killpg(mv.proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.HTTPError):  # while draining, a new request gets no answer
        httpx.get(mv.url + INFO, timeout=0.5)
    mv.proc.wait(timeout=30)
    took = time.monotonic() - started
    t.join(timeout=10)
    want = (corpus.proxy_a / ZIP.lstrip("/")).stat().st_size
    assert result == {"status": 200, "size": want}  # finished, not cut
    assert mv.proc.returncode == 0 and took < 4 + 1, (mv.proc.returncode, took)
    # An answer slower than the deadline is cut by then, and leaves no partial file in the store.
    upstream_a.behaviours[ZIP] = Behaviour(delay=30)
    mv2 = modvault(upstream_a.url, env={"MODVAULT_PROCESS_MODEL": model,
                                        "MODVAULT_SHUTDOWN_TIMEOUT": "2"})
    def cut() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server goes away mid-request
            httpx.get(mv2.url + ZIP, timeout=60)

    t2 = threading.Thread(target=cut, daemon=True)
    t2.start()
    time.sleep(0.5)
    took = sigterm(mv2)
    assert took < 2 + 1, took
    assert "shutdown_timeout" in mv2.output()  # it says why it stopped, in both models
    assert not (mv2.data_dir / ZIP.lstrip("/")).exists()
    stored = [p for p in (mv2.data_dir / "github.com").rglob("*") if p.is_file()] \
        if (mv2.data_dir / "github.com").exists() else []
    assert all(p.stat().st_size > 0 and not p.name.endswith(".zip") for p in stored), stored
