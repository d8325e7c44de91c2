"""Vanity import paths of published modules, resolved by the real go command in direct mode.

The go command finds a module's code by asking ``https://<host>/<path>?go-get=1`` (go.dev/ref/mod#vcs-find)
and, for a ``mod`` go-import, speaks the proxy protocol to the URL it names. Here ``corp.example``
cannot resolve, so an HTTPS proxy (``HTTPS_PROXY``) tunnels every connection to the local modvault,
whose certificate names corp.example: what reaches modvault is exactly what it would see with DNS
pointing corp.example at it. Auth is on: the module is private; the go command authenticates with
.netrc, and without credentials it learns nothing about the module."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modvault.module.dirhash import hash_zip
from tests.support.forward_proxy import TunnelProxy
from tests.support.gitrepos import GO, download_json, go_env, run_go
from tests.support.modvault_proc import ModvaultProcess
from tests.support.tls import make_cert

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")]

HOST = "corp.example"
MODULE = f"{HOST}/vanity"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "modvault", *args], capture_output=True,
                          text=True, env=e, timeout=120, check=False)


@dataclass
class Site:
    mv: ModvaultProcess
    tunnel: TunnelProxy
    cert: Path
    token: str

    def client_env(self, home: Path, netrc: bool) -> dict[str, str]:
        netrc_path = home / "netrc"
        netrc_path.write_text(f"machine {HOST} login go password {self.token}\n" if netrc else "")
        return go_env(home, GOPROXY="direct", GOPRIVATE=HOST, HTTPS_PROXY=self.tunnel.url,
                      SSL_CERT_FILE=str(self.cert), NETRC=str(netrc_path))

    def publish(self, directory: Path, version: str) -> None:
        proc = cli("publish", str(directory), "--module", MODULE, "--version", version,
                   "--server", self.mv.url,
                   env={"MODVAULT_TOKEN": self.token, "SSL_CERT_FILE": str(self.cert)})
        assert proc.returncode == 0, proc.stderr


def write_module(d: Path, greeting: str) -> Path:
    (d / "sub" / "pkg").mkdir(parents=True, exist_ok=True)
    (d / "go.mod").write_text(f"module {MODULE}\n\ngo 1.21\n")
    (d / "sub" / "pkg" / "pkg.go").write_text(f'package pkg\n\nconst Hi = "{greeting}"\n')
    return d


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data = tmp_path / "data"
    cert, key = make_cert(tmp_path, hosts=(HOST,))
    made = cli("token", "create", "dev", "--role", "dev", "--data-dir", str(data), env={})
    assert made.returncode == 0, made.stderr
    mv = ModvaultProcess(data, "off", "--auth", "on", "--private", HOST, tls=(cert, key))
    tunnel = TunnelProxy(mv.port).start()
    yield Site(mv, tunnel, cert, made.stdout.strip().splitlines()[-1])
    tunnel.stop()
    mv.stop()


def test_go_command_resolves_a_vanity_path_through_modvault(site: Site, tmp_path: Path) -> None:
    site.publish(write_module(tmp_path / "v1", "one"), "v1.0.0")
    site.publish(write_module(tmp_path / "v11", "eleven"), "v1.1.0")
    home = tmp_path / "client"
    home.mkdir()
    env = site.client_env(home, netrc=True)

    proc = run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], cwd=home, env=env)
    doc = download_json(proc.stdout)[0]
    assert not doc.get("Error"), doc
    served = tmp_path / "served.zip"
    auth = ("go", site.token)
    with httpx.Client(verify=ssl.create_default_context(cafile=site.cert), auth=auth,
                      timeout=30) as c:
        served.write_bytes(c.get(f"{site.mv.url}/{MODULE}/@v/v1.0.0.zip").content)
        mod = c.get(f"{site.mv.url}/{MODULE}/@v/v1.0.0.mod").content
    assert doc["Sum"] == hash_zip(served)  # what modvault serves is what the go command hashed
    assert Path(str(doc["GoMod"])).read_bytes() == mod
    # Every connection went to corp.example (the tunnel): nothing named modvault's own address.
    assert site.tunnel.seen and set(site.tunnel.seen) == {f"{HOST}:443"}

    versions = run_go(["list", "-m", "-versions", MODULE], cwd=home, env=env).stdout.split()
    assert versions == [MODULE, "v1.0.0", "v1.1.0"]

    app = home / "app"
    app.mkdir()
    (app / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    (app / "main.go").write_text(f'package main\n\nimport (\n\t"fmt"\n\n\t"{MODULE}/sub/pkg"\n)\n\n'
                                 "func main() { fmt.Println(pkg.Hi) }\n")
    # A package path inside the module: its go-get page names the module root.
    run_go(["get", f"{MODULE}/sub/pkg@latest"], cwd=app, env=env)
    assert f"{MODULE} v1.1.0" in (app / "go.mod").read_text()
    run_go(["build", "-o", "app", "."], cwd=app, env=env)
    out = subprocess.run([str(app / "app")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "eleven"


def test_without_credentials_the_go_command_learns_nothing(site: Site, tmp_path: Path) -> None:
    site.publish(write_module(tmp_path / "v1", "one"), "v1.0.0")
    home = tmp_path / "anon"
    home.mkdir()
    env = site.client_env(home, netrc=False)
    proc = run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], cwd=home, env=env,
                  check=False)
    assert proc.returncode != 0
    error = str(download_json(proc.stdout)[0]["Error"])
    assert "unrecognized import path" in error and "404" in error, error
    assert not list((home / "gopath").rglob("*.zip"))
