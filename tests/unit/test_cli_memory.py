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
