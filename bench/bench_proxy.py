"""Hot-path benchmark: modvault with a warm cache against nginx serving the same files, in one run.

One command prints the whole table (bench/README.md says how to read it):

    python bench/bench_proxy.py [--duration S] [--rounds N] [--goproxy PATH] [--baseline-src DIR] [--auth]

Measured, interleaved (every server once per round, in turn; the median of the rounds is printed):
  - cached .info (small body): req/s and p99 with wrk, 64 connections
  - the same for a module path holding a word the access log's credential mask looks for
    (sigs.k8s.io/...: nginx and the servers with the log on)
  - a 5 MiB zip: MB/s with wrk, 16 connections
  - a 64 KiB zip (about a typical module's): req/s with wrk, 64 connections
  - a 64 KiB Range of that zip: req/s with wrk
  - h2 over TLS, small .info: req/s with h2load (nginx and modvault only)
  - RSS of modvault while 64 clients download a 100 MiB zip
  - cold path (--cold / --cold-only): a 64 KiB, a 1,500-file, a 5 MiB and a 100 MiB module zip fetched
    through modvault with nothing stored (upstream: nginx serving a GOPROXY directory), against the
    same zip fetched from that upstream directly ("upstream alone"), interleaved; then the 64 KiB,
    5 MiB and 100 MiB zips again from nginx over HTTPS (rows marked TLS); see cold_rows()
Servers: nginx (one worker, the reference every ratio is against); modvault with its access log on
and off; modvault with two workers (does throughput scale on this machine?); modvault in front-end
mode (deploy/nginx/modvault-accel.conf: nginx in front, X-Accel-Redirect, nginx sends the zips;
modvault-accel-cache.conf: the same with nginx keeping modvault's decisions for a second);
granian-ceiling (bench/granian_ceiling.py: a bare granian RSGI app answering the same files on
the same server as a modvault worker, so the gap to nginx splits into the server's and ours;
--no-ceiling);
goproxy/goproxy when --goproxy names a binary built from bench/goproxy_peer (bench/README.md);
a modvault from another source tree with --baseline-src DIR (before/after a change, e.g.
`git archive 2f24c26 src | tar -x -C /tmp/base`, DIR=/tmp/base/src); modvault with auth on (--auth).
--small-only keeps the small-.info rows. Needs nginx, wrk and h2load (Debian: nginx-light, wrk,
nghttp2-client). Every server binds 127.0.0.1 on a free port; every load loop is bounded in time.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MOD = "example.com/bench"
INFO = f"/{MOD}/@v/v1.0.0.info"
# A version nobody has (the go command asks for many while it resolves paths and queries).
UNKNOWN = f"/{MOD}/@v/v9.9.9.info"
# A module whose path holds a word the log's credential mask looks for ("sig": all of sigs.k8s.io;
# "auth" in golang.org/x/oauth2, "digest" in go-digest): its lines must cost no more than others'.
SUSPECT_MOD = "sigs.k8s.io/bench"
SUSPECT_INFO = f"/{SUSPECT_MOD}/@v/v1.0.0.info"
ZIP5 = f"/{MOD}/@v/v1.0.0.zip"
ZIP100 = f"/{MOD}/@v/v1.1.0.zip"
ZIP64K = f"/{MOD}/@v/v1.2.0.zip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def make_small_files(root: Path) -> Path:
    """The benchmark module's .info, .mod and list under ``root``; its @v directory."""
    d = root / MOD / "@v"
    d.mkdir(parents=True)
    (d / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2023-11-14T22:13:20Z"}')
    (d / "v1.0.0.mod").write_text(f"module {MOD}\n")
    (d / "list").write_text("v1.0.0\nv1.1.0\n")
    return d


def make_data(root: Path) -> None:
    d = make_small_files(root)
    sus = root / SUSPECT_MOD / "@v"
    sus.mkdir(parents=True)
    (sus / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2023-11-14T22:13:20Z"}')
    rnd = os.urandom
    (d / "v1.0.0.zip").write_bytes(rnd(5 << 20))
    (d / "v1.2.0.zip").write_bytes(rnd(64 << 10))
    with open(d / "v1.1.0.zip", "wb") as fh:
        for _ in range(100):
            fh.write(rnd(1 << 20))


def prime(data: Path, env: dict[str, str]) -> None:
    """Ask one modvault for each zip once, so the data is as a fetch leaves it: make_data writes
    the zips by hand, without the strong ETag a fetch stores beside each, and the first server
    to serve one computes it (a SHA-256 of 100 MiB) during whatever is measured first."""
    port = free_port()
    proc = start_modvault(data, port, env=env)
    try:
        for path in (ZIP5, ZIP64K, ZIP100):
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-r", "0-0",
                            f"http://127.0.0.1:{port}{path}"], check=True, timeout=120)
    finally:
        stop(proc)


def make_cert(root: Path) -> tuple[Path, Path]:
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def start_nginx(root: Path, data: Path, cert: Path, key: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, tls_port = free_port(), free_port()
    conf = root / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/json info; application/zip zip; text/plain mod; }}
    default_type text/plain;
    client_body_temp_path {root}/ngx-tmp;
    proxy_temp_path {root}/ngx-tmp;
    fastcgi_temp_path {root}/ngx-tmp;
    uwsgi_temp_path {root}/ngx-tmp;
    scgi_temp_path {root}/ngx-tmp;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {data};
        add_header Cache-Control "public, max-age=31536000, immutable";
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    wait_port(tls_port)
    return proc, port, tls_port


def start_modvault(data: Path, port: int, *extra: str, env: dict[str, str] | None = None
                   ) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data), "--upstream", "off", "--offline", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e,
                            start_new_session=True)
    wait_port(port)
    time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def _unit(value: str, unit: str) -> float:
    scale = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9,
             "B": 1}
    return float(value) * scale.get(unit, 1)


def wrk(url: str, duration: float, conns: int = 64, header: str | None = None,
        extra: str | None = None, refused: bool = False) -> dict[str, float]:
    """wrk's figures for ``url``; ``header`` and ``extra`` are request headers ("Name: value").
    Every answer must be a 2xx, or with ``refused`` a non-2xx (as wrk counts them)."""
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{int(duration)}s", "--latency", url]
    for h in (header, extra):
        if h:
            cmd[1:1] = ["-H", h]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    out = proc.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk {url}: {out[-1500:]} {proc.stderr[-1500:]}")
    rps = float(found.group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mbps = _unit(m.group(1), m.group(2)[0] if m else "") / 1e6 if m else 0.0
    p99m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = 0.0
    if p99m:
        p99 = float(p99m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    answers = re.search(r"(\d+) requests in", out)
    if refused and (errors is None or answers is None or errors.group(1) != answers.group(1)):
        raise RuntimeError(f"{url}: not every answer was a refusal: {out[-1500:]}")
    if errors and not refused:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses")
    return {"rps": rps, "mbps": mbps, "p99_ms": p99}


def h2load(url: str, duration: float) -> float:
    out = subprocess.run(["h2load", "-c16", "-m10", "-t2", f"-D{int(duration)}", url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not m or "0 failed" not in out.replace(", 0 failed", " 0 failed"):
        raise RuntimeError(out[-2000:])
    if not re.search(r"succeeded, 0 failed", out) and "0 failed" not in out:
        raise RuntimeError(out[-2000:])
    return float(m.group(1))


def _group_procs(pgids: list[int]) -> list[Path]:
    """/proc entries of the live processes in these process groups (field 5 of stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) in pgids:
                found.append(entry)
        except (OSError, IndexError, ValueError):
            continue
    return found


def rss_of_group(pid: int) -> int:
    """Resident bytes (VmRSS) of every process in process group *pid*."""
    total = 0
    for entry in _group_procs([pid]):
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


# -- cold path: a zip nothing has stored yet ------------------------------------------------------

COLD_MOD = "example.com/cold"
# name -> (version, KiB, files). 64 KiB in 16 files is about a typical module (most zips on
# proxy.golang.org are well under 1 MiB): there the fixed cost of a fetch shows, not the bytes.
# files = 0: 1 MiB files of random bytes (the bytes' cost). The 1,500-file zip is Go-like source
# written as Go's archive/zip writes it (data descriptors, no sizes in local headers), about the
# shape of a large module (golang.org/x/text, x/tools): there the cost per entry shows.
COLD_ZIPS = {"cold 64 KiB zip": ("v1.2.0", 64, 0), "cold 1500-file zip": ("v1.3.0", 1500, 1500),
             "cold 5 MiB zip": ("v1.0.0", 5 << 10, 0), "cold 100 MiB zip": ("v1.1.0", 100 << 10, 0)}


class _Unseekable:
    """A write-only file that cannot seek: zipfile then writes data descriptors, as Go does."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.written = fh, 0

    def write(self, b: bytes) -> int:
        self.written += len(b)
        return int(self.fh.write(b))

    def tell(self) -> int:
        return self.written

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self.fh.flush()


def make_module_zip(path: Path, version: str, kib: int, files: int = 0) -> None:
    """A valid module zip: with *files*, that many Go-like source files of about 1 KiB (*kib* is
    then ignored) in 40 directories; without, about *kib* KiB of random bytes (1 MiB files, or 4
    KiB files below 1 MiB), deflated (as Go's zip.Create writes them), so zip and content are the
    same size."""
    import random
    import zipfile

    prefix = f"{COLD_MOD}@{version}/"
    if files:
        rnd = random.Random(files)
        words = ["func", "return", "if", "else", "for", "range", "package", "import", "type",
                 "struct", "interface", "map", "chan", "go", "defer", "var", "const", "err", "nil",
                 "string", "int", "byte", "len", "append", "make"]
        with path.open("wb") as raw, \
                zipfile.ZipFile(_Unseekable(raw), "w", zipfile.ZIP_DEFLATED) as zf:  # type: ignore[call-overload]
            zf.writestr(prefix + "go.mod", f"module {COLD_MOD}\n")
            zf.writestr(prefix + "LICENSE", "Copyright 2026. All rights reserved.\n")
            for i in range(files - 2):
                body = "package p\n" + "".join(
                    "\t" + " ".join(rnd.choices(words, k=8)) + "\n" for _ in range(25))
                zf.writestr(f"{prefix}pkg{i % 40}/file{i:04d}.go", body)
        return
    each = 1024 if kib >= 1024 else 4
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(prefix + "go.mod", f"module {COLD_MOD}\n")
        zf.writestr(prefix + "LICENSE", "Copyright 2026. All rights reserved.\n")
        for i in range(kib // each):
            zf.writestr(f"{prefix}data/blob{i:04d}.bin", os.urandom(each << 10))


def make_cold_upstream(root: Path) -> None:
    d = root / COLD_MOD / "@v"
    d.mkdir(parents=True)
    for version, kib, files in COLD_ZIPS.values():
        (d / f"{version}.info").write_text(f'{{"Version":"{version}","Time":"2026-01-02T03:04:05Z"}}')
        (d / f"{version}.mod").write_text(f"module {COLD_MOD}\n")
        make_module_zip(d / f"{version}.zip", version, kib, files)
    (d / "list").write_text("".join(v + "\n" for v, _, _ in COLD_ZIPS.values()))


def stored_entries(data: bytes) -> list[tuple[int, bytes]]:
    """Each entry of the zip *data* as (compression method, its data section as stored), cut
    out by the offsets of its central directory and local header (data descriptors, which
    follow the data section, are left out)."""
    import io
    import struct
    import zipfile

    cut = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len  # APPNOTE 4.3.7
            cut.append((info.compress_type, data[start:start + info.compress_size]))
    return cut


def checks_alone_ms(path: Path, repeat: int = 3) -> tuple[float, float]:
    """The CPU time (ms, best of *repeat*, one thread, nothing else) of the two hashing passes a
    proxy that checks what it stores cannot skip for this zip: the SHA-256 of the whole file (its
    strong ETag and provenance digest), and each entry inflated with its CRC-32 and the SHA-256 of
    its content (what the h1: hash and the CRC check are made of): zlib's and hashlib's C calls
    alone, on entries cut out of the file beforehand. modvault runs the two passes in two lanes
    beside the download (sources/download.py); no receive, write, check or send is counted."""
    import hashlib
    import zlib

    data = path.read_bytes()
    entries = stored_entries(data)
    best_zip = best_entries = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        hashlib.sha256(data).digest()
        t1 = time.process_time()
        for method, raw in entries:
            content = zlib.decompressobj(-15).decompress(raw) if method == 8 else raw  # deflate
            zlib.crc32(content)
            hashlib.sha256(content).digest()
        t2 = time.process_time()
        best_zip, best_entries = min(best_zip, t1 - t0), min(best_entries, t2 - t1)
    return best_zip * 1e3, best_entries * 1e3


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time used so far by the live processes of process group *pgid*."""
    return cpu_of_groups([pgid])


def curl_seconds(url: str, *extra: str) -> float:
    """Wall time of one GET (curl's time_total), failing on anything but a whole 200."""
    out = subprocess.run(["curl", "-s", *extra, "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                          url], capture_output=True, text=True, timeout=120).stdout.split()
    if not out or out[0] != "200":
        raise RuntimeError(f"GET {url}: {out}")
    return float(out[1])


# Over TLS (nginx's HTTPS listener, HTTP/2 offered, as proxy.golang.org does), the zips whose cost
# is bytes: the receive of a TLS body is the client's work, not the network's.
COLD_TLS = ("cold 64 KiB zip", "cold 5 MiB zip", "cold 100 MiB zip")
CHECKS = "checks alone"  # cold_rows: the hashing a checking proxy cannot skip (checks_alone_ms)


def cold_rows(root: Path, cert: Path, key: Path, rounds: int, trees: dict[str, dict[str, str]]
              ) -> dict[str, dict[str, list[float]]]:
    """Per zip: "upstream alone" (curl from the static upstream) and a cold fetch from each modvault
    in *trees* (name -> environment, e.g. PYTHONPATH of a baseline tree) with the zip removed from
    its store just before, alternating in every round. The .info and .mod are asked first, as the
    go command does; checksum verification is off (no database is reachable here), so the row
    measures download, zip checks, hashing and storing. Every zip from a plain HTTP upstream, then
    those of COLD_TLS from the same nginx over HTTPS (rows marked "TLS"; the servers trust its
    certificate through upstream_ca_file, curl through --cacert)."""
    up_root = root / "cold-upstream"
    up_root.mkdir()
    (up_root / "ngx-tmp").mkdir()
    make_cold_upstream(up_root / "data")
    ngx, up_port, tls_port = start_nginx(up_root, up_root / "data", cert, key)
    out: dict[str, dict[str, list[float]]] = {}
    floors = {name: list(checks_alone_ms(up_root / "data" / COLD_MOD / "@v" / f"{version}.zip"))
              for name, (version, _, _) in COLD_ZIPS.items()}
    try:
        for upstream, names, suffix in ((f"http://127.0.0.1:{up_port}", list(COLD_ZIPS), ""),
                                        (f"https://127.0.0.1:{tls_port}", list(COLD_TLS), " TLS")):
            _cold_scheme(root, upstream, names, suffix, cert, rounds, trees, out)
    finally:
        stop(ngx)
    for row, by in out.items():
        by[CHECKS] = floors[row.removesuffix(" TLS")]
    return out


def _cold_scheme(root: Path, upstream: str, names: list[str], suffix: str, cert: Path, rounds: int,
                 trees: dict[str, dict[str, str]], out: dict[str, dict[str, list[float]]]) -> None:
    servers: list[tuple[str, subprocess.Popen[bytes], int, Path]] = []
    try:
        for who, env in trees.items():
            data, port = root / f"cold-data-{who}-{upstream.split(':')[0]}", free_port()
            e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
            e.update(env)
            e["MODVAULT_UPSTREAM_CA_FILE"] = str(cert)
            servers.append((who, subprocess.Popen(
                [sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{port}",
                 "--data-dir", str(data), "--upstream", upstream,
                 "--no-sumdb-verify"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e,
                start_new_session=True), port, data))
        for _, _, port, _ in servers:
            wait_port(port)
        time.sleep(0.5)
        for name in names:
            version = COLD_ZIPS[name][0]
            tail = f"/{COLD_MOD}/@v/{version}"
            for _, _, port, _ in servers:
                for ext in ("info", "mod"):
                    curl_seconds(f"http://127.0.0.1:{port}{tail}.{ext}")
            by = out.setdefault(name + suffix, {})
            for _ in range(rounds):
                by.setdefault("upstream alone", []).append(
                    curl_seconds(f"{upstream}{tail}.zip", "--cacert", str(cert)) * 1e3)
                for who, proc, port, data in servers:
                    stored = data / COLD_MOD / "@v" / f"{version}.zip"
                    stored.unlink(missing_ok=True)
                    cpu = group_cpu_seconds(proc.pid)
                    by.setdefault(who, []).append(
                        curl_seconds(f"http://127.0.0.1:{port}{tail}.zip") * 1e3)
                    time.sleep(0.05)  # let the worker finish what follows the answer
                    by.setdefault(f"{who} cpu", []).append(
                        (group_cpu_seconds(proc.pid) - cpu) * 1e3)
                    if not stored.exists():
                        raise RuntimeError(f"{name}{suffix}: {who} did not store the zip")
    finally:
        for _, proc, _, _ in servers:
            stop(proc)


def print_cold(rows: dict[str, dict[str, list[float]]]) -> None:
    import statistics

    whos = [w for w in next(iter(rows.values()))
            if w not in ("upstream alone", CHECKS) and " cpu" not in w]
    print(f"{'cold path (median ms)':<24}{'upstream':>10}" + "".join(
        f"{w:>12}{'ratio':>7}" for w in whos))
    for name, by in rows.items():
        up = statistics.median(by["upstream alone"])
        cells = "".join(f"{statistics.median(by[w]):>12.1f}{statistics.median(by[w]) / up:>7.2f}"
                        for w in whos)
        print(f"{name:<24}{up:>10.1f}{cells}   (n={len(by['upstream alone'])})")
        # The mean, not the median: each value is whole clock ticks (10 ms), the mean is not.
        cpu = "".join(f"{statistics.fmean(by[w + ' cpu']):>12.1f}{'':>7}" for w in whos)
        print(f"{'  server CPU ms':<24}{'':>10}{cpu}")
        if CHECKS in by:
            zip_ms, entries_ms = by[CHECKS]
            lane = max(zip_ms, entries_ms)
            print(f"{'  checks alone ms':<24}{'':>10}{lane:>12.1f}{lane / up:>7.2f}   (zip SHA-256 "
                  f"{zip_ms:.1f} + entries {entries_ms:.1f} = {zip_ms + entries_ms:.1f} on one core)")
    print("(ratio: median cold fetch through modvault / median fetch from the upstream alone; server"
          " CPU: mean user+system time of modvault's process group per cold fetch, less sensitive to"
          " other load than wall time; checks alone: the longer of the two hashing passes any"
          " checking proxy makes, timed alone in the benchmark's process (checks_alone_ms), the"
          " least a cold fetch can take on two cores before receiving, writing or sending a byte)")


# -- memory: resident set of the whole process group ----------------------------------------------


def rss_rows(data: Path, duration: float, trees: dict[str, dict[str, str]]
             ) -> dict[str, dict[str, float]]:
    """Per tree (name -> environment): RSS of modvault's whole process group (supervisor and
    worker) idle after a few hits, and its peak (sampled every 50 ms) while 64 wrk connections
    download the 100 MiB zip. The trees run one after the other, each alone."""
    out: dict[str, dict[str, float]] = {}
    for who, env in trees.items():
        port = free_port()
        proc = start_modvault(data, port, env={**env, "MODVAULT_ACCESS_LOG": "false"})
        try:
            for path in (INFO, f"/{MOD}/@v/list", ZIP5, "/healthz", "/metrics"):
                for _ in range(5):
                    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"],
                                   check=False, timeout=30)
            time.sleep(0.5)
            idle = rss_of_group(proc.pid)
            load = functools.partial(wrk, f"http://127.0.0.1:{port}{ZIP100}", max(duration, 10),
                                     conns=64)
            big, peak = peak_rss_during(proc.pid, load)
            out[who] = {"idle MiB": idle / 2**20, "peak MiB": peak / 2**20, "MB/s": big["mbps"]}
        finally:
            stop(proc)
    return out


def peak_rss_during(pid: int, load: Callable[[], dict[str, float]]) -> tuple[dict[str, float], int]:
    """Run *load* while sampling the process group's RSS every 50 ms; (its result, the peak)."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_of_group(pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        result = load()
    finally:
        done.set()
        t.join()
    return result, peak


def print_rss(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'RSS of the process group':<40}" + "".join(f"{w:>14}" for w in rows))
    for name, label in (("idle MiB", "idle, MiB"), ("peak MiB", "peak, 64 clients on 100 MiB zip, MiB"),
                        ("MB/s", "  (their aggregate MB/s)")):
        print(f"{label:<40}" + "".join(f"{by[name]:>14.1f}" for by in rows.values()))


def nginx_conf(root: Path, body: str) -> Path:
    conf = root / f"nginx-{free_port()}.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {conf}.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {root}/ngx-tmp;
    proxy_temp_path {root}/ngx-tmp;
    fastcgi_temp_path {root}/ngx-tmp;
    uwsgi_temp_path {root}/ngx-tmp;
    scgi_temp_path {root}/ngx-tmp;
{body}
}}
""")
    return conf


def start_accel(root: Path, data: Path, env: dict[str, str], recipe_name: str = "modvault-accel.conf"
                ) -> tuple[list[subprocess.Popen[bytes]], int]:
    """Front-end mode as deployed: deploy/nginx/<recipe_name> (plain HTTP here) in front of a
    modvault with accel_redirect set."""
    mv_port, port = free_port(), free_port()
    mv = start_modvault(data, mv_port, env={**env, "MODVAULT_ACCEL_REDIRECT": "/_modvault_store/",
                                            "MODVAULT_TRUSTED_PROXIES": "127.0.0.1/32"})
    recipe = (Path(__file__).resolve().parents[1] / "deploy" / "nginx" / recipe_name).read_text()
    recipe = (recipe.replace("127.0.0.1:3000", f"127.0.0.1:{mv_port}")
              .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
              .replace("alias /var/lib/modvault/", f"alias {data.resolve()}/")
              .replace("/run/nginx-modvault-decisions", str(root / f"decisions-{port}")))
    recipe = "\n".join(x for x in recipe.splitlines() if not x.strip().startswith("ssl_"))
    conf = nginx_conf(root, recipe)
    ngx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return [mv, ngx], port


def start_goproxy(binary: str, data: Path) -> tuple[subprocess.Popen[bytes], int]:
    """goproxy/goproxy (built from bench/goproxy_peer) with the same files in its cache dir."""
    port = free_port()
    proc = subprocess.Popen([binary, "-listen", f"127.0.0.1:{port}", "-cache", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_port(port)
    return proc, port


def start_ceiling(data: Path, tls: tuple[Path, Path] | None = None
                  ) -> tuple[subprocess.Popen[bytes], int]:
    """bench/granian_ceiling.py: the least a granian RSGI app can do to answer the same files,
    on the same server as a modvault worker; its gap to nginx is the server's own."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "granian_ceiling.py"), str(port)]
    if tls is not None:
        cmd += [str(tls[0]), str(tls[1])]
    env = {**os.environ, "CEILING_DATA": str(data)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    wait_port(port)
    return proc, port


SMALL, SMALL_P99 = "small .info req/s", "small .info p99 ms"
ZIP_MBS, RANGE = "5 MiB zip MB/s", "64 KiB range req/s"
SMALL_ZIP = "64 KiB zip req/s"
H2 = "h2 TLS small req/s"
SMALL_CPU, RANGE_CPU = "small .info CPU us/req", "64 KiB range CPU us/req"
NOT_FOUND = "404 .info req/s"
SUSPECT = "sigs.k8s.io .info req/s"


def cpu_of_groups(pgids: list[int]) -> float:
    """CPU seconds (user + system) used so far by every process in these process groups."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in _group_procs(pgids):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", metavar="DIR",
                    help="also run modvault from this source tree (PYTHONPATH) as 'baseline'")
    ap.add_argument("--small-only", action="store_true", help="measure only the small .info rows")
    ap.add_argument("--tree-src", metavar="DIR",
                    help="run 'modvault' from this source tree instead of the installed one")
    ap.add_argument("--auth", action="store_true",
                    help="also measure modvault with auth on and a Bearer token (modvault-auth)")
    ap.add_argument("--goproxy", metavar="PATH",
                    help="a goproxy/goproxy binary built from bench/goproxy_peer, measured alongside")
    ap.add_argument("--no-accel", action="store_true", help="skip the front-end mode server")
    ap.add_argument("--no-workers", action="store_true", help="skip the two-worker server")
    ap.add_argument("--no-ceiling", action="store_true",
                    help="skip granian-ceiling (bench/granian_ceiling.py, the server's own ceiling)")
    ap.add_argument("--cold", action="store_true", help="also measure the cold path (cold_rows)")
    ap.add_argument("--cold-only", action="store_true", help="measure only the cold path")
    ap.add_argument("--cold-rounds", type=int, default=5, help="interleaved cold rounds (median)")
    ap.add_argument("--rss-only", action="store_true",
                    help="measure only RSS idle/peak (rss_rows), with --baseline-src beside")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "h2load", "openssl"):
        if shutil.which(tool) is None:
            print(f"missing {tool}: apt-get install nginx-light wrk nghttp2-client openssl")
            return 2
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1/5/15 min), {os.cpu_count()} CPUs", flush=True)
    root = Path(tempfile.mkdtemp(prefix="modvault-bench-"))
    root.chmod(0o755)  # nginx workers may run as another user
    procs: list[subprocess.Popen[bytes]] = []
    try:
        data = root / "data"
        make_data(data)
        (root / "ngx-tmp").mkdir()
        cert, key = make_cert(root)
        tree_env = {"PYTHONPATH": str(Path(args.tree_src).resolve())} if args.tree_src else {}
        prime(data, tree_env)
        if args.rss_only:
            # process_model = "single" (server/embedded.py): the same tree without a supervisor.
            trees = {"modvault": tree_env,
                     "mv single": {**tree_env, "MODVAULT_PROCESS_MODEL": "single"}}
            if args.baseline_src:
                trees = {"baseline": {"PYTHONPATH": str(Path(args.baseline_src).resolve())}, **trees}
            print_rss(rss_rows(data, args.duration, trees))
            return 0
        cold: dict[str, dict[str, list[float]]] = {}
        if args.cold or args.cold_only:
            print(f"load before the cold rows: {os.getloadavg()}")
            trees = {"modvault": tree_env}
            if args.baseline_src:
                trees = {"baseline": {"PYTHONPATH": str(Path(args.baseline_src).resolve())}, **trees}
            cold = cold_rows(root, cert, key, args.cold_rounds, trees)
            if args.cold_only:
                print_cold(cold)
                return 0
        ngx, ngx_port, ngx_tls = start_nginx(root, data, cert, key)
        procs.append(ngx)
        nolog = {**tree_env, "MODVAULT_ACCESS_LOG": "false"}
        # (name, port, small-only): the order is the interleaving order within a round.
        servers: list[tuple[str, int, bool]] = [("nginx", ngx_port, False)]
        groups: dict[str, list[int]] = {"nginx": [ngx.pid]}  # whose CPU time a server costs

        by_name: dict[str, subprocess.Popen[bytes]] = {}

        def add(name: str, proc: subprocess.Popen[bytes], port: int, small: bool = False) -> None:
            procs.append(proc)
            by_name[name] = proc
            groups.setdefault(name, []).append(proc.pid)
            servers.append((name, port, small))

        def modvault(name: str, env: dict[str, str], *extra: str, small: bool = False) -> int:
            port = free_port()
            add(name, start_modvault(data, port, *extra, env=env), port, small)
            return port

        if args.baseline_src:
            src = {"PYTHONPATH": str(Path(args.baseline_src).resolve())}
            modvault("baseline", src)
        mv_port = modvault("modvault", tree_env)
        if args.baseline_src:
            modvault("baseline-nolog", {**src, "MODVAULT_ACCESS_LOG": "false"})
        modvault("modvault-nolog", nolog)
        if not args.no_workers:
            modvault("modvault-2workers", nolog, "--workers", "2")
        if not args.no_accel and not args.small_only:
            for name, recipe in (("modvault-accel", "modvault-accel.conf"),
                                 ("modvault-accel-cache", "modvault-accel-cache.conf")):
                accel_procs, accel_port = start_accel(root, data, tree_env, recipe)
                procs.extend(accel_procs[:-1])
                groups[name] = [p.pid for p in accel_procs[:-1]]
                add(name, accel_procs[-1], accel_port)
        ceiling_tls = None
        if not args.no_ceiling:
            ceil, ceil_port = start_ceiling(data)
            add("granian-ceiling", ceil, ceil_port)
            if not args.small_only:
                ceiling_tls, ceil_tls_port = start_ceiling(data, (cert, key))
                procs.append(ceiling_tls)
        if args.goproxy:
            gp, gp_port = start_goproxy(args.goproxy, data)
            add("goproxy", gp, gp_port)
        auth_header = None
        if args.auth:
            token = subprocess.run([sys.executable, "-m", "modvault", "token", "create", "bench",
                                    "--role", "reader", "--data-dir", str(data)], env=tree_env | {
                                        k: v for k, v in os.environ.items()
                                        if not k.startswith("MODVAULT_")},
                                   capture_output=True, text=True, check=True).stdout.split()[-1]
            modvault("modvault-auth", nolog, "--auth", "on")
            auth_header = f"Authorization: Bearer {token}"
        mv_tls = free_port()
        procs.append(start_modvault(data, mv_tls, "--tls-cert", str(cert), "--tls-key", str(key),
                                    env=nolog))
        results: dict[str, dict[str, list[float]]] = {}

        def record(name: str, who: str, value: float) -> None:
            results.setdefault(name, {}).setdefault(who, []).append(value)

        d = args.duration
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}...", flush=True)
            for who, port, small in servers:
                base = f"http://127.0.0.1:{port}"

                def run(url: str, conns: int = 64, header: str | None = None,
                        refused: bool = False) -> dict[str, float]:
                    """wrk, plus the server's CPU time per request over the run (less sensitive to
                    other load on the machine than throughput); modvault-auth's requests carry
                    its token."""
                    before = cpu_of_groups(groups[who])  # noqa: B023
                    token = auth_header if who == "modvault-auth" else None  # noqa: B023
                    try:
                        r = wrk(url, d, conns=conns, header=header, extra=token, refused=refused)
                    except RuntimeError as exc:
                        raise RuntimeError(f"{who}: {exc}") from None  # noqa: B023
                    r["cpu_us"] = (cpu_of_groups(groups[who]) - before) / max(1.0, r["rps"] * d) * 1e6  # noqa: B023
                    return r

                r = run(base + INFO)
                record(SMALL, who, r["rps"])
                record(SMALL_P99, who, r["p99_ms"])
                record(SMALL_CPU, who, r["cpu_us"])
                if args.small_only or small:
                    continue
                if who != "goproxy":  # it answers a miss by running the go command: not comparable
                    record(NOT_FOUND, who, run(base + UNKNOWN, refused=True)["rps"])
                if who in ("nginx", "baseline", "modvault", "modvault-auth"):  # log on
                    record(SUSPECT, who, run(base + SUSPECT_INFO)["rps"])
                z = run(base + ZIP5, conns=16)
                record(ZIP_MBS, who, z["mbps"])
                record(SMALL_ZIP, who, run(base + ZIP64K)["rps"])
                r = run(base + ZIP5, header="Range: bytes=65536-131071")
                record(RANGE, who, r["rps"])
                record(RANGE_CPU, who, r["cpu_us"])
            if not args.small_only:
                tls_servers = [("nginx", ngx_tls), ("modvault-nolog", mv_tls)]
                if ceiling_tls is not None:
                    tls_servers.append(("granian-ceiling", ceil_tls_port))
                for who, port in tls_servers:
                    record(H2, who, h2load(f"https://127.0.0.1:{port}{INFO}", d))

        # RSS while 64 clients download a 100 MiB zip.
        peak = idle = 0
        big = {"mbps": 0.0}
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_of_group(by_name["modvault"].pid))
                time.sleep(0.1)

        if not args.small_only:
            idle = rss_of_group(by_name["modvault"].pid)
            t = threading.Thread(target=sample)
            t.start()
            big = wrk(f"http://127.0.0.1:{mv_port}{ZIP100}", max(d, 10), conns=64)
            done.set()
            t.join()
        load = os.getloadavg()
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nmedian of {args.rounds} interleaved rounds of {d:.0f} s; ratio = server / nginx "
          f"(p99 and CPU per request: nginx / server), so higher is better everywhere")
    print(f"{'measure':<26}{'server':<20}{'value':>12}{'ratio':>8}")
    for name, by in results.items():
        ref = statistics.median(by["nginx"])
        for who, values in by.items():
            v = statistics.median(values)
            lower_better = "p99" in name or "CPU" in name
            ratio = (ref / v if lower_better else v / ref) if v and ref else float("nan")
            print(f"{name:<26}{who:<20}{v:>12.1f}{ratio:>8.2f}")
    small = results[SMALL]

    def med(name: str, who: str) -> float:
        return statistics.median(results[name][who])

    if "modvault-2workers" in small:
        print("\ntwo workers / one worker (no log): small .info req/s "
              f"{med(SMALL, 'modvault-2workers') / med(SMALL, 'modvault-nolog'):.2f}"
              + (f", 64 KiB range req/s {med(RANGE, 'modvault-2workers') / med(RANGE, 'modvault-nolog'):.2f}"
                 if RANGE in results else ""))
    if args.baseline_src:
        print(f"\n{'this tree / baseline':<24}{'log on':>10}{'log off':>10}")
        for name, by in results.items():
            if "baseline" not in by:
                continue
            on = med(name, "modvault") / med(name, "baseline")
            off = (med(name, "modvault-nolog") / med(name, "baseline-nolog")
                   if "baseline-nolog" in by else float("nan"))
            if "p99" in name or "CPU" in name:
                on, off = 1 / on, 1 / off
            print(f"{name:<24}{on:>10.3f}{off:>10.3f}")
    if "modvault-auth" in small:
        print("\nauth on / auth off (no log), small .info req/s: "
              f"{med(SMALL, 'modvault-auth') / med(SMALL, 'modvault-nolog'):.3f}, CPU per request: "
              f"{med(SMALL_CPU, 'modvault-auth') / med(SMALL_CPU, 'modvault-nolog'):.3f}"
              + (f"; 64 KiB range req/s {med(RANGE, 'modvault-auth') / med(RANGE, 'modvault-nolog'):.3f}"
                 f", 64 KiB zip req/s "
                 f"{med(SMALL_ZIP, 'modvault-auth') / med(SMALL_ZIP, 'modvault-nolog'):.3f}"
                 if RANGE in results else ""))
    if cold:
        print()
        print_cold(cold)
    if not args.small_only:
        print(f"\nRSS of modvault (log on) while 64 clients download a 100 MiB zip: idle "
              f"{idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB ({big['mbps']:.0f} MB/s aggregate)")
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
