"""`modvault serve` becomes a supervisor that stays resident beside its workers for as long as they
serve, so it must carry nothing but the interpreter; and no process loads what only other commands
(or requests that were not made) need."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from modvault import cli
from modvault.server import supervisor
from modvault.sumdb.private import PRIVATE_DIR
from modvault.supply.attestkey import KEY_FILE
from tests.support.waits import wait_for

# What the supervisor must never load: the package, the server, the event loop, TLS.
# Nor what signal.py and json bring beside the C modules it uses (enum, functools, re: 1.5 MiB).
NOT_IN_SUPERVISOR = ("modvault", "granian", "asyncio", "ssl", "_ssl", "uvloop", "httpx",
                     "prometheus_client", "multiprocessing", "threading", "typing", "json", "re",
                     "enum", "signal", "functools", "collections")

PROBE = """
import sys
path = sys.argv[1]  # its module body, as `python -I -S supervisor.py` runs it (not main)
exec(compile(open(path).read(), path, "exec"), {"__name__": "probe"})
print(" ".join(sorted(sys.modules)))
"""


def test_supervisor_loads_only_the_standard_library_it_needs() -> None:
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, supervisor.__file__],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = set(proc.stdout.split())
    assert "_signal" in modules and "os" in modules
    assert sorted(m for m in modules if m.split(".")[0] in NOT_IN_SUPERVISOR) == []


def test_running_supervisor_maps_no_server_code(tmp_path: Path) -> None:
    """The process `modvault serve` leaves resident (its pid, the group leader) after the exec:
    neither granian's nor OpenSSL's native code is mapped there, only in the workers."""
    from tests.support.modvault_proc import ModvaultProcess

    mv = ModvaultProcess(tmp_path / "data", "off", "--offline")
    try:
        deadline = time.monotonic() + 30
        workers: list[str] = []
        while not workers and time.monotonic() < deadline:
            workers = subprocess.run(["pgrep", "-P", str(mv.proc.pid)], capture_output=True,
                                     text=True).stdout.split()
            time.sleep(0.1)
        cmdline = Path(f"/proc/{mv.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-I", b"-S"]
        # run as bytecode from a private directory of its own, removed once loaded: no
        # compiler garbage resident, and nothing left behind or run from the data directory
        script = Path(cmdline[3].decode())
        assert script.name == "supervisor.pyc"
        assert script.parent.parent == Path(tempfile.gettempdir())
        assert script.parent.name.startswith("modvault-supervisor-")
        assert wait_for(lambda: not script.parent.exists(), 10)
        assert not list((tmp_path / "data").rglob("*.pyc"))
        maps = Path(f"/proc/{mv.proc.pid}/maps").read_text()
        for native in ("_granian", "libssl", "_ssl", "uvloop", "_asyncio"):
            assert native not in maps, native
        assert workers and all("_granian" in Path(f"/proc/{pid}/maps").read_text()
                               for pid in workers)
        assert os.getpgid(int(workers[0])) == mv.proc.pid
    finally:
        mv.stop()


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


def test_supervisor_runs_from_its_source_where_bytecode_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = [cli._compiled(supervisor.__file__) for _ in range(2)]
    try:
        for compiled in made:
            assert Path(compiled).read_bytes()[:4] == importlib.util.MAGIC_NUMBER
            assert Path(compiled).parent.stat().st_mode & 0o777 == 0o700
        assert made[0] != made[1]  # a new directory each start
    finally:
        for compiled in made:
            shutil.rmtree(Path(compiled).parent, ignore_errors=True)
    blocked = tmp_path / "file"
    blocked.write_text("")  # no directory can be made in a file
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    assert cli._compiled(supervisor.__file__) == supervisor.__file__
