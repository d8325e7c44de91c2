"""Deployment recipes under deploy/: the Prometheus rules pass promtool, every metric the Grafana
dashboard and the rules name exists in modvault's /metrics, the systemd unit passes systemd-analyze,
and the nginx recipe, run by a real nginx in front of modvault, serves the go command over TLS and h2."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.modvault_proc import free_port
from tests.support.tls import make_cert
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def referenced_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "modvault.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    text = "\n".join(exprs) + "\n" + (DEPLOY / "prometheus" / "alerts.yml").read_text()
    return set(re.findall(r"\bmodvault_[a-z_]+\b", text))


def exposed_names(metrics_text: str) -> set[str]:
    """Every series name /metrics can produce (histograms: _bucket/_sum/_count; counters: _total)."""
    names: set[str] = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_dashboard_and_alerts_name_only_real_metrics(corpus: Corpus, upstream_a: TestUpstreamServer,
                                                     modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    assert httpx.get(mv.url + "/github.com/acme/hello/@v/v1.0.0.info").status_code == 200
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline and "modvault_store_bytes" not in text:
        text = httpx.get(mv.url + "/metrics").text
        time.sleep(0.2)
    wanted = referenced_metrics()
    assert len(wanted) >= 12, wanted
    missing = sorted(wanted - exposed_names(text))
    assert missing == [], f"referenced but not in /metrics: {missing}"
    dashboard = json.loads((DEPLOY / "grafana" / "modvault.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("request rate", "latency", "hit ratio", "upstream", "by phase", "breaker", "errors",
                  "store size", "single-flight", "security"):
        assert topic in titles, topic
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text((DEPLOY / "prometheus" / "alerts.yml").read_text().replace(
        "> 0.05", "> > 0.05", 1))
    assert subprocess.run(["promtool", "check", "rules", str(broken)], capture_output=True,
                          timeout=60).returncode != 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd" / "modvault.service").read_text()
    for setting in ("User=modvault", "StateDirectory=modvault", "ProtectSystem=strict",
                    "Restart=on-failure", "NoNewPrivileges=true"):
        assert setting in unit, setting
    true = shutil.which("true")
    assert true is not None
    local = tmp_path / "modvault.service"
    local.write_text(unit.replace("/opt/modvault/bin/modvault", true))
    proc = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


class Nginx:
    def __init__(self, root: Path, modvault_port: int, cert: Path, key: Path,
                 recipe_name: str = "modvault.conf", replace: dict[str, str] | None = None) -> None:
        assert NGINX is not None
        self.port = free_port()
        recipe = (DEPLOY / "nginx" / recipe_name).read_text()
        for old, new in (replace or {}).items():
            assert old in recipe, old
            recipe = recipe.replace(old, new)
        recipe = (recipe.replace("127.0.0.1:3000", f"127.0.0.1:{modvault_port}")
                  .replace("listen 443 ssl", f"listen 127.0.0.1:{self.port} ssl")
                  .replace("/etc/ssl/modvault/fullchain.pem", str(cert))
                  .replace("/etc/ssl/modvault/privkey.pem", str(key)))
        assert str(cert) in recipe and f"127.0.0.1:{modvault_port}" in recipe
        (root / "modvault.conf").write_text(recipe)
        for d in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / d).mkdir()
        conf = root / "nginx.conf"
        conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n"
            "events { worker_connections 256; }\nhttp {\n"
            f"  access_log {root}/access.log;\n  client_body_temp_path {root}/client;\n"
            f"  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n"
            f"  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n"
            f"  include {root}/modvault.conf;\n}}\n")
        test = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(root)], capture_output=True,
                              text=True, timeout=30)
        assert test.returncode == 0, test.stderr
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=1,
                          verify=ssl.create_default_context(cafile=str(cert)))
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + (root / "error.log").read_text())

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def go_downloads_through(url: str, gohome: Path, cert: Path, corpus: Corpus) -> None:
    """The go command downloads two modules (one path with capitals) through ``url`` over TLS;
    their sums are those the go command computes from the reference repositories."""
    env = go_env(gohome, GOPROXY=url, SSL_CERT_FILE=str(cert))
    targets = ["github.com/acme/hello@v1.1.0", "github.com/Acme/Upper@v1.0.0"]
    proc = run_go(["mod", "download", "-json", *targets], cwd=gohome, env=env)
    got = {f"{d['Path']}@{d['Version']}": d for d in download_json(proc.stdout)}
    for key in targets:
        assert got[key]["Sum"] == corpus.reference[key]["Sum"], got[key]


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "tls"
    d.mkdir()
    return make_cert(d)


@pytest.mark.skipif(NGINX is None, reason="nginx not installed")
def test_go_command_through_nginx_recipe(corpus: Corpus, upstream_a: TestUpstreamServer,
                                         modvault: ModvaultFactory, tmp_path: Path, gohome: Path,
                                         tls: tuple[Path, Path]) -> None:
    mv = modvault(upstream_a.url, env={"MODVAULT_TRUSTED_PROXIES": "127.0.0.1/32"})
    root = tmp_path / "nginx"
    root.mkdir()
    nginx = Nginx(root, mv.port, *tls)
    try:
        go_downloads_through(nginx.url, gohome, tls[0], corpus)
        # HTTP/2 from nginx; zips streamed through with ranges and validators intact.
        with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(tls[0]))) as client:
            zip_path = "/github.com/acme/hello/@v/v1.1.0.zip"
            full = client.get(nginx.url + zip_path)
            assert full.http_version == "HTTP/2" and full.status_code == 200
            assert full.content == (mv.data_dir / zip_path.lstrip("/")).read_bytes()
            part = client.get(nginx.url + zip_path, headers={"range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == full.content[10:20]
            again = client.get(nginx.url + zip_path, headers={"if-none-match": full.headers["etag"]})
            assert again.status_code == 304
        log = (root / "access.log").read_text()
        assert "/github.com/acme/hello/@v/v1.1.0.zip" in log
    finally:
        nginx.stop()
