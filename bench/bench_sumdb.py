"""Cold-fetch overhead of checksum-database verification.

Builds N small module versions in a static GOPROXY directory, starts one modvault that hosts a
private checksum database for them (it records each version on first lookup), and two fresh
modvaults in front of the same upstream: one verifying every new .mod/.zip against that database,
one not. Each fetches every .mod and .zip cold; the difference is the verification overhead. Also
counts the requests the verifying instance sent to the database per module version.
Run: python bench/bench_sumdb.py [--versions N]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

NAME = "sum.bench.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_proxy(root: Path, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        mod, ver = f"example.com/bench/m{i}", "v1.0.0"
        d = root / mod / "@v"
        d.mkdir(parents=True)
        gomod = f"module {mod}\n\ngo 1.21\n"
        (d / f"{ver}.mod").write_text(gomod)
        (d / f"{ver}.info").write_text(f'{{"Version":"{ver}","Time":"2023-11-14T22:13:20Z"}}')
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{mod}@{ver}/go.mod", gomod)
            zf.writestr(f"{mod}@{ver}/m.go", f"package m{i}\n\nconst N = {i}\n" + "// x\n" * 2000)
        (d / f"{ver}.zip").write_bytes(buf.getvalue())
        (d / "list").write_text(f"{ver}\n")
        out.append((mod, ver))
    return out


def start(data: Path, upstream: str, *args: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    env["MODVAULT_ACCESS_LOG"] = "true"
    proc = subprocess.Popen([sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data), "--upstream", upstream, *args],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(log.read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def fetch_all(url: str, mods: list[tuple[str, str]]) -> float:
    t = time.perf_counter()
    with httpx.Client(timeout=60) as c:
        for mod, ver in mods:
            for ext in ("mod", "zip"):
                r = c.get(f"{url}/{mod}/@v/{ver}.{ext}")
                if r.status_code != 200:
                    raise RuntimeError(f"{mod}@{ver}.{ext}: {r.status_code} {r.text}")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=100)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="modvault-bench-sumdb-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mods = make_proxy(root / "proxy", args.versions)
        upstream = f"file://{root / 'proxy'}"
        db_data = root / "db"
        vkey = subprocess.run([sys.executable, "-m", "modvault", "sumdb", "init", NAME, "--data-dir",
                               str(db_data)], capture_output=True, text=True, check=True
                              ).stdout.split()[-1]
        db, db_url = start(db_data, upstream, "--nosumdb", "example.com", "--no-sumdb-verify",
                           log=root / "db.log")
        procs.append(db)
        # Record every version in the database first, so both runs see the same database state.
        fetch_all(db_url, mods)
        with httpx.Client() as c:
            for mod, ver in mods:
                c.get(f"{db_url}/sumdb/{NAME}/lookup/{mod}@{ver}").raise_for_status()
        plain, plain_url = start(root / "plain", upstream, "--no-sumdb-verify", log=root / "p.log")
        verifying, ver_url = start(root / "verifying", upstream, "--sumdb",
                                   f"{vkey} {db_url}/sumdb/{NAME}", "--sumdb-verify",
                                   log=root / "v.log")
        procs += [plain, verifying]
        before = len(re.findall(r'"path":"/sumdb/', (root / "db.log").read_text()))
        t_plain = fetch_all(plain_url, mods)
        t_ver = fetch_all(ver_url, mods)
        time.sleep(0.3)  # access-log lines are flushed within 0.1 s
        lines = re.findall(r'"path":"(/sumdb/[^"]*)"', (root / "db.log").read_text())[before:]
        lookups = sum(1 for p in lines if "/lookup/" in p)
        tiles = sum(1 for p in lines if "/tile/" in p)
        latest = sum(1 for p in lines if p.endswith("/latest"))
        n = len(mods)
        print(f"{n} module versions, cold .mod + .zip each, file:// upstream")
        print(f"  without verification: {t_plain * 1000 / n:7.2f} ms per version")
        print(f"  with verification:    {t_ver * 1000 / n:7.2f} ms per version "
              f"(+{(t_ver - t_plain) * 1000 / n:.2f} ms, x{t_ver / t_plain:.2f})")
        print(f"  database requests: {lookups} lookups ({lookups / n:.2f} per version), "
              f"{tiles} tile fetches ({tiles / n:.2f} per version), {latest} latest")
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
