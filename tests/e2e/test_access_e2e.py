"""Access control, publishing, blocks and the audit log, end to end: a real modvault over TLS (the go
command sends .netrc credentials and GOAUTH headers over HTTPS only), tokens made with the CLI,
modules published with the CLI, and the real go command with .netrc and with a GOAUTH command."""

from __future__ import annotations

import functools
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.gitrepos import GO, download_json, go_env, rmtree, run_go
from tests.support.metrics import scrape, value
from tests.support.modvault_proc import ModvaultProcess
from tests.support.tls import make_cert
from tests.support.waits import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(GO is None, reason="go not on PATH")]

MODULE = "corp.example/lib"
SECRETS_FILE = "planted"


def mv_cli(data: Path, *args: str, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "modvault", *args, *(
        ["--data-dir", str(data)] if args[0] in ("token", "block", "unblock") else [])],
        capture_output=True, text=True, env=e, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"modvault {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


def write_module(d: Path, module: str, body: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "go.mod").write_text(f"module {module}\n\ngo 1.21\n")
    (d / "lib.go").write_text(f'package lib\n\nfunc Hi() string {{ return "{body}" }}\n')
    return d


@dataclass
class Hosted:
    root: Path
    mv: ModvaultProcess
    cert: Path
    vkey: str
    tokens: dict[str, str]

    @property
    def data(self) -> Path:
        return self.mv.data_dir

    def client(self, token: str | None = None, **kw: object) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.mv.url, verify=ssl.create_default_context(
            cafile=str(self.cert)), headers=headers,
                            timeout=30, **kw)  # type: ignore[arg-type]

    def publish(self, directory: Path, version: str, token: str, module: str = MODULE,
                *extra: str) -> subprocess.CompletedProcess[str]:
        return mv_cli(self.data, "publish", str(directory), "--module", module, "--version",
                      version, "--server", self.mv.url, *extra,
                      env={"MODVAULT_TOKEN": token, "SSL_CERT_FILE": str(self.cert)}, check=False)

    def go_env(self, home: Path, **extra: str) -> dict[str, str]:
        base = {"GOPROXY": self.mv.url, "GOSUMDB": self.vkey, "GONOSUMDB": "", "GOPRIVATE": "",
                "SSL_CERT_FILE": str(self.cert)}
        return go_env(home, **{**base, **extra})

    def audit(self) -> list[dict[str, object]]:
        path = self.data / ".modvault" / "audit" / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    root = tmp_path_factory.mktemp("access")
    data = root / "data"
    cert, key = make_cert(root)
    vkey = mv_cli(data, "sumdb", "init", "sum.corp.example", "--data-dir", str(data)) \
        .stdout.split()[0]
    config = root / "modvault.toml"
    config.write_text('[roles.slow]\nread = ["*"]\nrate = 1\nburst = 2\n'
                      '[roles.lan]\nread = ["*"]\nallow_cidrs = ["10.0.0.0/8"]\n')
    tokens = {}
    for name, role, extra in (("admin", "admin", []), ("dev", "dev", []), ("ci", "ci", []),
                              ("other", "reader", ["--modules", "other.example/*"]),
                              ("limited", "slow", [])):
        out = mv_cli(data, "token", "create", name, "--role", role, *extra,
                     env={"MODVAULT_CONFIG": str(config)})
        tokens[name] = out.stdout.strip().splitlines()[-1]
    mv = ModvaultProcess(data, "off", "--auth", "on", "--private", "corp.example",
                         "--trusted-proxies", "10.9.9.9", tls=(cert, key),
                         env={"MODVAULT_CONFIG": str(config)})
    h = Hosted(root, mv, cert, vkey, tokens)
    proc = h.publish(write_module(root / "lib1", MODULE, "one"), "v1.0.0", tokens["dev"])
    assert proc.returncode == 0, proc.stderr
    yield h
    mv.stop()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "gohome"
    d.mkdir()
    yield d
    rmtree(d / "gopath")


def _netrc(home: Path, token: str, port: int) -> None:
    # The go command (1.24+) matches the machine name against host:port of the URL.
    h = home / "home"
    h.mkdir(exist_ok=True)
    (h / ".netrc").write_text(f"machine 127.0.0.1:{port} login anything password {token}\n")


def _program(d: Path, module: str = MODULE) -> Path:
    d.mkdir()
    (d / "go.mod").write_text("module example.com/app\n\ngo 1.21\n")
    (d / "main.go").write_text(f'package main\n\nimport (\n\t"fmt"\n\n\t"{module}"\n)\n\n'
                               "func main() { fmt.Println(lib.Hi()) }\n")
    return d


def test_netrc_download_get_build_verified_by_private_sumdb(hosted: Hosted, home: Path) -> None:
    _netrc(home, hosted.tokens["ci"], hosted.mv.port)
    env = hosted.go_env(home)
    docs = download_json(run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], home, env).stdout)
    assert not docs[0].get("Error"), docs
    assert str(docs[0]["Sum"]).startswith("h1:")
    app = _program(home / "app")
    run_go(["get", f"{MODULE}@v1.0.0"], app, env)
    run_go(["build", "-o", "app.bin", "."], app, env)
    out = subprocess.run([str(app / "app.bin")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "one"
    # The go command checked the private database: its verified tree head is in GOPATH.
    assert (home / "gopath" / "pkg" / "sumdb" / "sum.corp.example" / "latest").is_file()
    gosum = (app / "go.sum").read_text()
    assert f"{MODULE} v1.0.0 {docs[0]['Sum']}" in gosum
    # Answers to authenticated requests are private.
    with hosted.client(hosted.tokens["ci"]) as c:
        r = c.get(f"/{MODULE}/@v/v1.0.0.info")
        assert r.status_code == 200 and r.headers["cache-control"].startswith("private")


def _prebuilt(hosted: Hosted) -> dict[str, float]:
    """modvault_prebuilt_answers_total by kind (read with the admin token)."""
    with hosted.client(hosted.tokens["admin"]) as c:
        samples = scrape(hosted.mv.url, c)
    return {k: value(samples, "modvault_prebuilt_answers_total", kind=k)
            for k in ("info", "mod", "zip")}


def test_go_downloads_again_from_authenticated_prebuilt_answers(hosted: Hosted,
                                                                tmp_path: Path) -> None:
    """The go command, with credentials, into two empty module caches: once the answers are
    learned, the second download's are prebuilt ones (sent after the access checks), and the
    go command verifies them against the private checksum database as it did the first."""
    sums = []
    for i in range(2):
        home = tmp_path / f"home{i}"
        home.mkdir()
        _netrc(home, hosted.tokens["ci"], hosted.mv.port)
        if i == 1:
            # Each answer learned and prebuilt by now: the first download read .info and .mod
            # from the store, and small bodies are learned once the memory tier holds them.
            with hosted.client(hosted.tokens["ci"]) as c:
                for kind in ("info", "mod", "zip"):
                    assert wait_for(functools.partial(_answered_prebuilt, c, kind, hosted), 15), kind
            before = _prebuilt(hosted)
        docs = download_json(run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], home,
                                    hosted.go_env(home)).stdout)
        assert not docs[0].get("Error"), docs
        sums.append(docs[0]["Sum"])
        rmtree(home / "gopath")
    after = _prebuilt(hosted)
    assert sums[0] == sums[1] and str(sums[0]).startswith("h1:")
    assert {k: after[k] - before[k] for k in ("info", "mod", "zip")} == \
        {"info": 1, "mod": 1, "zip": 1}, (before, after)


def _answered_prebuilt(c: httpx.Client, kind: str, hosted: Hosted) -> bool:
    before = _prebuilt(hosted)[kind]
    assert c.get(f"/{MODULE}/@v/v1.0.0.{kind}").status_code == 200
    return _prebuilt(hosted)[kind] == before + 1


def _denials(hosted: Hosted, identity: str) -> int:
    return sum(1 for e in hosted.audit() if e["result"] == "denied" and e["identity"] == identity)


def test_prebuilt_answers_after_access_checks_refuse_whom_the_middleware_refuses(
        hosted: Hosted) -> None:
    """Once an answer is prebuilt, the access decision for it is made on granian's thread
    (auth/quick.py) from what the middleware verified: every request it would refuse is still
    refused, audited and counted by the middleware, and a revoked token stops within seconds."""
    info = f"/{MODULE}/@v/v1.0.0.info"
    with hosted.client(hosted.tokens["ci"]) as c:
        assert wait_for(functools.partial(_answered_prebuilt, c, "info", hosted), 15)
        before = _prebuilt(hosted)["info"]
        first = c.get(info)
        assert all(c.get(info).content == first.content for _ in range(20))
        assert _prebuilt(hosted)["info"] == before + 21
    lan = mv_cli(hosted.data, "token", "create", "lan2", "--role", "lan",
                 env={"MODVAULT_CONFIG": str(hosted.root / "modvault.toml")}).stdout.split()[-1]
    temp = mv_cli(hosted.data, "token", "create", "temp", "--role", "reader").stdout.split()[-1]
    refused = {  # identity in the audit log -> (token, status)
        "anonymous": (None, 401),
        "other": (hosted.tokens["other"], 403),  # --modules other.example/*
        "lan2": (lan, 403),  # a role usable only from 10.0.0.0/8
        "": ("not-a-token", 401),
    }
    for who, (token, status) in refused.items():
        with hosted.client(token) as c:
            assert wait_for(lambda c=c, s=status: c.get(info).status_code == s, 10), who
            audited = _denials(hosted, who)
            assert [c.get(info).status_code for _ in range(5)] == [status] * 5, who
            assert _denials(hosted, who) == audited + 5, who
    with hosted.client(hosted.tokens["limited"]) as c:  # rate 1, burst 2
        codes = [c.get(info).status_code for _ in range(8)]
        assert codes.count(429) >= 4 and set(codes) <= {200, 429}, codes
    with hosted.client(temp) as c:
        assert wait_for(lambda: c.get(info).status_code == 200, 10)
        assert [c.get(info).status_code for _ in range(5)] == [200] * 5
        mv_cli(hosted.data, "token", "revoke", "temp")
        assert wait_for(lambda: c.get(info).status_code == 401, 10)
        assert [c.get(info).status_code for _ in range(5)] == [401] * 5


def test_goauth_command_bearer(hosted: Hosted, home: Path) -> None:
    script = home / "goauth.sh"
    script.write_text(f"#!/bin/sh\nprintf '{hosted.mv.url}\\n\\nAuthorization: Bearer "
                      f"{hosted.tokens['ci']}\\n\\n'\n")
    script.chmod(0o755)
    env = hosted.go_env(home, GOAUTH=str(script))
    docs = download_json(run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], home, env).stdout)
    assert not docs[0].get("Error"), docs


def test_without_credentials_go_reports_401(hosted: Hosted, home: Path) -> None:
    env = hosted.go_env(home)
    proc = run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], home, env, check=False)
    assert proc.returncode != 0
    assert "401 Unauthorized" in proc.stdout + proc.stderr


def test_role_without_read_gets_403_and_no_bytes(hosted: Hosted, home: Path) -> None:
    _netrc(home, hosted.tokens["other"], hosted.mv.port)  # reader, but only over other.example/*
    env = hosted.go_env(home, GONOSUMDB=MODULE, GOSUMDB="off")
    proc = run_go(["mod", "download", "-json", f"{MODULE}@v1.0.0"], home, env, check=False)
    assert proc.returncode != 0
    assert "403 Forbidden" in proc.stdout + proc.stderr
    assert not list((home / "gopath").rglob("*.zip"))
    # Every way in is closed: list, @latest, the private sumdb lookup and its tiles.
    with hosted.client(hosted.tokens["other"]) as c:
        for path in (f"/{MODULE}/@v/list", f"/{MODULE}/@latest", f"/{MODULE}/@v/v1.0.0.zip",
                     f"/{MODULE}/@v/master.info",
                     f"/sumdb/sum.corp.example/lookup/{MODULE}@v1.0.0",
                     "/sumdb/sum.corp.example/latest", "/sumdb/sum.corp.example/tile/8/0/000.p/1",
                     "/sumdb/sum.corp.example/tile/8/data/000.p/1", "/index"):
            r = c.get(path)
            assert r.status_code == 403, (path, r.status_code, r.text)
            assert b"PK" not in r.content and b"h1:" not in r.content


def test_publish_conflict_outside_patterns_and_appears_in_list(hosted: Hosted, tmp_path: Path) -> None:
    dev = hosted.tokens["dev"]
    lib = write_module(tmp_path / "lib", MODULE, "two")
    proc = hosted.publish(lib, "v1.1.0", dev)
    assert proc.returncode == 0, proc.stderr
    with hosted.client(dev) as c:
        assert "v1.1.0" in c.get(f"/{MODULE}/@v/list").text.split()  # at once
        info = c.get(f"/{MODULE}/@v/v1.1.0.info").json()
        assert info["Version"] == "v1.1.0" and "dev" in info["Origin"]["URL"]
    again = hosted.publish(lib, "v1.1.0", dev)
    assert again.returncode == 0 and "identical" in again.stdout
    (lib / "lib.go").write_text('package lib\n\nfunc Hi() string { return "changed" }\n')
    conflict = hosted.publish(lib, "v1.1.0", dev)
    assert conflict.returncode == 1 and "409" in conflict.stderr
    # Outside the publisher's patterns (ci cannot publish at all) and outside the private ones.
    assert "403" in hosted.publish(lib, "v1.2.0", hosted.tokens["ci"]).stderr
    pub = write_module(tmp_path / "pub", "github.com/acme/hello", "shadow")
    denied = hosted.publish(pub, "v1.9.0", hosted.tokens["admin"], "github.com/acme/hello")
    assert denied.returncode == 1 and "403" in denied.stderr and "private" in denied.stderr
    events = [(e["event"], e["result"]) for e in hosted.audit()]
    assert ("publish", "ok") in events and ("publish", "unchanged") in events
    assert ("publish", "failed") in events and ("authz.denied", "denied") in events


def test_publish_from_git_ref_and_upload_limits(hosted: Hosted, tmp_path: Path) -> None:
    repo = write_module(tmp_path / "repo", "corp.example/gitlib", "git")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    (repo / "lib.go").write_text("package lib // uncommitted change, not published\n")
    proc = hosted.publish(repo, "v1.0.0", hosted.tokens["dev"], "corp.example/gitlib",
                          "--git", "HEAD")
    assert proc.returncode == 0, proc.stderr
    with hosted.client(hosted.tokens["dev"]) as c:
        origin = c.get("/corp.example/gitlib/@v/v1.0.0.info").json()["Origin"]
        assert len(origin["Hash"]) == 40 and origin["Ref"] == "HEAD"
        # Not a zip; not a canonical version.
        r = c.put("/api/v1/modules/corp.example/x/@v/v1.0.0", content=b"not a zip")
        assert r.status_code == 400 and "zip" in r.text
        r = c.put("/api/v1/modules/corp.example/x/@v/latest", content=b"x")
        assert r.status_code == 400
    # A body declared over max_zip_bytes is refused before it is read (raw socket: no client
    # library sends a lying Content-Length).
    ctx = ssl.create_default_context(cafile=str(hosted.cert))
    with socket.create_connection(("127.0.0.1", hosted.mv.port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"PUT /api/v1/modules/corp.example/x/@v/v1.0.0 HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer " + hosted.tokens["dev"].encode() +
                    b"\r\nContent-Length: 629145600\r\n\r\n" + b"x" * 1000)
        head = tls.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_block_reason_everywhere_and_cli_changes_seen_without_restart(hosted: Hosted,
                                                                        home: Path) -> None:
    ci = hosted.tokens["ci"]
    proc = hosted.publish(write_module(home / "b", MODULE, "three"), "v1.3.0", hosted.tokens["dev"])
    assert proc.returncode == 0, proc.stderr
    mv_cli(hosted.data, "block", f"{MODULE}@v1.3.0", "--reason", "CVE-2099-0001 backdoor")
    with hosted.client(ci) as c:
        deadline = time.monotonic() + 10
        while c.get(f"/{MODULE}/@v/v1.3.0.zip").status_code != 403:
            assert time.monotonic() < deadline, "block not seen within 10 s"
            time.sleep(0.2)
        for path in (f"/{MODULE}/@v/v1.3.0.info", f"/{MODULE}/@v/v1.3.0.mod",
                     f"/sumdb/sum.corp.example/lookup/{MODULE}@v1.3.0"):
            r = c.get(path)
            assert r.status_code == 403 and "CVE-2099-0001" in r.text, path
        assert "v1.3.0" not in c.get(f"/{MODULE}/@v/list").text
    _netrc(home, ci, hosted.mv.port)
    env = hosted.go_env(home)
    app = _program(home / "app")
    got = run_go(["get", f"{MODULE}@v1.3.0"], app, env, check=False)
    assert got.returncode != 0 and "CVE-2099-0001 backdoor" in got.stderr, got.stderr
    mv_cli(hosted.data, "unblock", f"{MODULE}@v1.3.0")
    with hosted.client(ci) as c:
        deadline = time.monotonic() + 10
        while c.get(f"/{MODULE}/@v/v1.3.0.zip").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    # A revoked token stops working within seconds, without a restart.
    tok = mv_cli(hosted.data, "token", "create", "temp", "--role", "ci").stdout.split()[-1]
    with hosted.client(tok) as c:
        deadline = time.monotonic() + 10
        while c.get(f"/{MODULE}/@v/list").status_code != 200:  # a new token works within seconds
            assert time.monotonic() < deadline
            time.sleep(0.2)
        mv_cli(hosted.data, "token", "revoke", "temp")
        deadline = time.monotonic() + 10
        while c.get(f"/{MODULE}/@v/list").status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    # The API blocks too, audited with the identity.
    with hosted.client(hosted.tokens["admin"]) as c:
        r = c.put(f"/api/v1/blocks/{MODULE}/@v/v1.0.0", json={"reason": "bad build"})
        assert r.status_code == 200
        assert c.get(f"/{MODULE}/@v/v1.0.0.info").status_code == 403
        assert any(b["version"] == "v1.0.0" for b in c.get("/api/v1/blocks").json()["blocks"])
        assert c.delete(f"/api/v1/blocks/{MODULE}/@v/v1.0.0").status_code == 200
        assert c.get(f"/{MODULE}/@v/v1.0.0.info").status_code == 200
    with hosted.client(hosted.tokens["dev"]) as c:
        assert c.put(f"/api/v1/blocks/{MODULE}/@v/v1.0.0", json={"reason": "x"}).status_code == 403
    events = {(e["event"], e["identity"]) for e in hosted.audit()}
    assert ("block", "admin") in events and ("unblock", "admin") in events
    assert any(ev == "block" and who.startswith("cli:") for ev, who in events)
    assert ("token.create", "cli:" + (os.environ.get("USER") or str(os.getuid()))) in events
    assert any(ev == "token.revoke" for ev, _ in events)


def test_rate_limit_allowlist_and_forwarded_for(hosted: Hosted) -> None:
    with hosted.client(hosted.tokens["limited"]) as c:
        codes = [c.get(f"/{MODULE}/@v/list") for _ in range(6)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited, [r.status_code for r in codes]
        assert int(limited[0].headers["retry-after"]) >= 1
    # A role usable only from 10.0.0.0/8: the socket peer is 127.0.0.1, and an X-Forwarded-For
    # from this untrusted peer is ignored.
    tok = mv_cli(hosted.data, "token", "create", "lan", "--role", "lan",
                 env={"MODVAULT_CONFIG": str(hosted.root / "modvault.toml")}).stdout.split()[-1]
    with hosted.client(tok) as c:
        deadline = time.monotonic() + 10
        while (r := c.get(f"/{MODULE}/@v/list", headers={"x-forwarded-for": "10.1.2.3"})) \
                .status_code == 401:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert r.status_code == 403 and "client address" in r.text
    events = [e for e in hosted.audit() if e["event"] == "ratelimit.hit"]
    assert events and events[0]["identity"] == "limited"


def test_allow_cidrs_refuses_other_clients(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    mv = ModvaultProcess(tmp_path / "data", "off", "--allow-cidrs", "10.0.0.0/8", tls=(cert, key))
    try:
        with httpx.Client(base_url=mv.url,
                          verify=ssl.create_default_context(cafile=str(cert))) as c:
            r = c.get("/example.com/m/@v/list")
            assert r.status_code == 403 and "client address" in r.text
            assert c.get("/healthz").status_code == 200
    finally:
        mv.stop()


def test_planted_secrets_appear_nowhere(tmp_path: Path) -> None:
    """Distinct secrets in every place a client or an operator can put one; then grep every output:
    server log (access and application lines), audit log, response bodies and headers, metrics."""
    data = tmp_path / "data"
    good = mv_cli(data, "token", "create", "ops", "--role", "admin").stdout.split()[-1]
    url_password = "PlantedUrlPassword7731"
    basic_password = "PlantedBasicPassword4419"
    bogus_bearer = "mvt_PlantedBogusBearer0000000000000000000000"
    jwt_like = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQbGFudGVkSnd0In0."
                "PlantedJwtSignature0000000000000000000000000")
    planted = [good, url_password, basic_password, bogus_bearer, jwt_like,
               "PlantedJwtSignature", "PlantedBogusBearer"]
    mv = ModvaultProcess(data, f"http://user:{url_password}@127.0.0.1:9/", "--auth", "on",
                         "--private", "corp.example", "--anonymous-role", "reader",
                         env={"MODVAULT_METRICS_AUTH": "false"})
    bodies: list[str] = []
    try:
        with httpx.Client(base_url=mv.url, timeout=30) as c:
            for headers in ({"authorization": f"Bearer {bogus_bearer}"},
                            {"authorization": f"Bearer {jwt_like}"},
                            {"authorization": "Basic " + __import__("base64").b64encode(
                                f"me:{basic_password}".encode()).decode()},
                            {"authorization": f"Bearer {good}"},
                            {"authorization": f"Bearer {good}", "x-forwarded-for": good},
                            {}):
                for path in ("/github.com/acme/x/@v/list", f"/corp.example/a/@v/v1.0.0.info?token={good}",
                             f"/{good}/@v/list", "/api/v1/blocks", "/metrics"):
                    r = c.get(path, headers=headers)
                    bodies.append(r.text + json.dumps(dict(r.headers)))
            r = c.put("/api/v1/blocks/corp.example/a/@v/v1.0.0",
                      headers={"authorization": f"Bearer {good}"}, json={"reason": "r"})
            bodies.append(r.text)
            bodies.append(c.get("/metrics").text)
    finally:
        mv.stop()
    audit = "".join(p.read_text() for p in (data / ".modvault" / "audit").glob("audit.log*"))
    assert '"authn.failure"' in audit and '"block"' in audit
    outputs = {"server log": mv.log_path.read_text(errors="replace"), "audit log": audit,
               "responses": "\n".join(bodies)}
    for where, text in outputs.items():
        for secret in planted:
            assert secret not in text, f"{secret[:12]}... leaked into the {where}"


def test_metrics_setting_vanity_page_and_token_list(hosted: Hosted) -> None:
    with hosted.client(hosted.tokens["dev"]) as c:
        assert c.get("/metrics").status_code == 403  # metrics_auth: dev has no metrics flag
        r = c.get(f"/{MODULE}/sub/pkg", params={"go-get": "1"})
        assert r.status_code == 200
        assert (f'<meta name="go-import" content="{MODULE} mod https://127.0.0.1:{hosted.mv.port}">'
                in r.text)
        assert c.get("/corp.example/unpublished", params={"go-get": "1"}).status_code == 404
    with hosted.client(hosted.tokens["admin"]) as c:
        assert c.get("/metrics").status_code == 200
    with hosted.client() as c:  # anonymous: no role here, so not even the page's existence
        assert c.get(f"/{MODULE}", params={"go-get": "1"}).status_code == 404
    listing = mv_cli(hosted.data, "token", "list").stdout
    assert "dev\trole=dev" in listing and "other\trole=reader\tmodules=other.example/*" in listing
    assert not any(tok in listing for tok in hosted.tokens.values())
