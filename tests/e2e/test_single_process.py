"""process_model = "single" (server/embedded.py): one process serves the real go command over TLS
and HTTP/2, prints the serving line, and drains on SIGTERM like the supervised workers do."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.e2e.test_startup import assert_one_json_error, clean_env, run_serve
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.modvault_proc import ModvaultProcess, free_port
from tests.support.tls import make_cert
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

SINGLE = {"MODVAULT_PROCESS_MODEL": "single"}
INFO = "/github.com/acme/hello/@v/v1.0.0.info"
ZIP = "/github.com/acme/hello/@v/v1.0.0.zip"


def group_members(mv: ModvaultProcess) -> list[int]:
    pgid = mv.proc.pid
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry.name)) == pgid:
                    members.append(int(entry.name))
    return members


def test_go_over_https_h2_from_one_process(corpus: Corpus, upstream_a: TestUpstreamServer,
                                          modvault: ModvaultFactory, gohome: Path,
                                          tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    mv = modvault(upstream_a.url, env=SINGLE, tls=(cert, key))
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cert))) as client:
        r = client.get(mv.url + INFO)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
    env = go_env(gohome, GOPROXY=mv.url, SSL_CERT_FILE=str(cert))
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.1.0"], cwd=gohome, env=env)
    doc = download_json(proc.stdout)[0]
    assert doc["Sum"] == corpus.reference["github.com/acme/hello@v1.1.0"]["Sum"]
    assert group_members(mv) == [mv.proc.pid]  # no supervisor, no forked worker
    docs = [json.loads(line) for line in mv.output().splitlines() if line.strip()]  # JSON only
    msgs = [(d["logger"], d.get("msg", "")) for d in docs]
    serving = [i for i, (_, m) in enumerate(msgs) if " serving https://" in m]
    listening = [i for i, (lg, m) in enumerate(msgs) if lg.startswith("_granian") and "Listening" in m]
    assert len(serving) == 1 and listening and listening[0] < serving[0]


def test_single_with_several_workers_is_one_line_and_exit_2(tmp_path: Path) -> None:
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"),
                    "--workers", "2", env=clean_env(**SINGLE))
    assert_one_json_error(res, "process_model", "single")
    res = run_serve("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"),
                    env=clean_env(MODVAULT_PROCESS_MODEL="threads"))
    assert_one_json_error(res, "process_model", "threads")


def test_port_in_use_is_refused_in_single_mode_too(tmp_path: Path,
                                                   upstream_a: TestUpstreamServer,
                                                   modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url, env=SINGLE)
    res = run_serve("--listen", f"127.0.0.1:{mv.port}", "--data-dir", str(tmp_path / "other"),
                    env=clean_env(**SINGLE))
    assert_one_json_error(res, "in use")
