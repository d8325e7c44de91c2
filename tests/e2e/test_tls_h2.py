"""HTTPS with HTTP/2 via ALPN, and prior-knowledge h2c on the plain port, with the real go command."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.tls import make_cert
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

INFO = "/github.com/acme/hello/@v/v1.0.0.info"


def test_go_over_https_h2(corpus: Corpus, upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
                          gohome: Path, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    mv = modvault(upstream_a.url, tls=(cert, key))
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cert))) as client:
        r = client.get(mv.url + "/healthz")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        r = client.get(mv.url + INFO)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
    with httpx.Client(http2=False, verify=ssl.create_default_context(cafile=str(cert))) as client:
        assert client.get(mv.url + INFO).http_version == "HTTP/1.1"
    env = go_env(gohome, GOPROXY=mv.url, SSL_CERT_FILE=str(cert))
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.1.0"], cwd=gohome, env=env)
    doc = download_json(proc.stdout)[0]
    assert doc["Sum"] == corpus.reference["github.com/acme/hello@v1.1.0"]["Sum"]
    # Without trusting the certificate the go command refuses: TLS is really in use.
    env.pop("SSL_CERT_FILE")
    env["GOMODCACHE"] = str(gohome / "other-cache")
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.0.0"], cwd=gohome, env=env,
                  check=False)
    assert proc.returncode != 0 and "certificate" in proc.stdout + proc.stderr


def test_h2c_prior_knowledge(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    with httpx.Client(http1=False, http2=True) as client:
        r = client.get(mv.url + INFO)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        assert r.json()["Version"] == "v1.0.0"


def test_https_upstream_with_private_ca(corpus: Corpus, upstream_a: TestUpstreamServer,
                                        modvault: ModvaultFactory, gohome: Path,
                                        tmp_path: Path) -> None:
    """modvault behind modvault: the inner one over TLS with a private CA; the outer trusts it
    through upstream_ca_file and fetches over HTTP/1.1, on purpose (upstream.make_client: HTTP/2
    bodies cost the event loop six times the CPU), on the loop's own TLS (sources/loopnet.py)."""
    cert, key = make_cert(tmp_path)
    inner = modvault(upstream_a.url, tls=(cert, key))
    untrusting = modvault(inner.url, env={"MODVAULT_UPSTREAM_RETRIES": "0"})
    r = httpx.get(untrusting.url + INFO, timeout=30)
    assert r.status_code == 502 and "127.0.0.1" in r.text
    outer = modvault(inner.url, env={"MODVAULT_UPSTREAM_CA_FILE": str(cert)})
    env = go_env(gohome, GOPROXY=outer.url)
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.1.0"], cwd=gohome, env=env)
    assert download_json(proc.stdout)[0]["Sum"] == corpus.reference["github.com/acme/hello@v1.1.0"]["Sum"]
    deadline = time.monotonic() + 5
    lines: list[dict[str, object]] = []
    while time.monotonic() < deadline and not lines:
        lines = [json.loads(x) for x in inner.output().splitlines()
                 if x.startswith("{") and '"modvault.access"' in x and "v1.1.0.zip" in x]
        time.sleep(0.1)
    assert lines and lines[0]["http"] == "1.1" and lines[0]["status"] == 200
