"""`modvault serve` is granian's supervisor: it stays resident beside the workers it forks, so it
must not import what only the workers (or other commands) need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from modvault import cli
from modvault.sumdb.private import PRIVATE_DIR
from modvault.supply.attestkey import KEY_FILE

# Imported by the workers (the app), by upstream fetches or by other commands; never needed to
# start serving.
HEAVY = ("httpx", "cryptography", "jinja2", "jwt", "redis", "obstore", "prometheus_client",
         "modvault.server.app", "modvault.wiring", "modvault.service", "modvault.sumdb.private",
         "modvault.ops.store_cli", "modvault.supply.commands")

PROBE = """
import json, sys
import granian
from modvault import cli
# Stand in for the server loop: report what the supervisor imported by the time it would serve.
granian.Granian.serve = lambda self, *a, **k: print(json.dumps(sorted(sys.modules)))
sys.exit(cli.main(sys.argv[1:]))
"""


def test_serve_supervisor_imports_nothing_heavy(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, "serve", "--listen", "127.0.0.1:0",
                           "--data-dir", str(tmp_path / "data"), "--upstream", "off", "--offline"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "granian" in modules and "modvault.config" in modules
    assert sorted(m for m in HEAVY if m in modules) == []


def test_other_commands_still_parse() -> None:
    proc = subprocess.run([sys.executable, "-m", "modvault", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("serve", "sumdb", "token", "gc", "attest"):
        assert command in proc.stdout


def test_paths_the_supervisor_checks_match_their_owners() -> None:
    assert cli.PRIVATE_SUMDB_DIR == PRIVATE_DIR
    assert cli.ATTESTATION_KEY_FILE == KEY_FILE


def test_worker_serving_hits_loads_no_jwt_crypto_templates_or_s3_client(
        tmp_path: Path) -> None:
    """A worker that serves stored artifacts (no auth, no sumdb check, no dashboard, fs store)
    never maps the native code of cryptography (which PyJWT imports too), obstore, or markupsafe
    (jinja2's)."""
    import time

    import httpx

    from tests.support.modvault_proc import ModvaultProcess

    mod = tmp_path / "data" / "example.com" / "m" / "@v"
    mod.mkdir(parents=True)
    (mod / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}')
    (mod / "list").write_text("v1.0.0\n")
    mv = ModvaultProcess(tmp_path / "data", "off", "--offline")
    try:
        for path in ("/example.com/m/@v/list", "/example.com/m/@v/v1.0.0.info",
                     "/example.com/m/@v/v9.9.9.info", "/healthz", "/metrics"):
            for _ in range(3):
                httpx.get(mv.url + path, timeout=10)
        time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(mv.proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert workers
        for pid in workers:
            maps = Path(f"/proc/{pid}/maps").read_text()
            loaded = [m for m in ("cryptography", "obstore", "markupsafe") if m in maps]
            assert loaded == [], f"worker {pid} loaded {loaded}"
    finally:
        mv.stop()
