"""The CPU a cold fetch spends on a new zip after its bytes arrive, per entry, before/after a change.

What the server does with a downloaded zip, in-process and without sockets: the download scan
(module/zipstream.py, fed in the download's 1 MiB batches) and the service's check of the stored
file (ModuleService._check_zip_file: check_zip with the scan's figures, the licence, the facts).
Two zips from bench_proxy's cold rows: the 1,500-file one (Go-like source, data descriptors; where
the cost per entry shows) and the 64 KiB one (a typical module). Each tree runs in its own process
(PYTHONPATH), alternating, best of several repetitions; wall time on a shared machine swings, so
--callgrind also counts instructions (valgrind), which repeat exactly whatever else runs.

Run: python bench/bench_zipcheck.py --baseline-src DIR [--reps 15] [--callgrind]
(DIR: e.g. `git archive 1c206e6 src | tar -x -C /tmp/base` -> /tmp/base/src).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy  # the cold rows' zips

CHILD = r'''
import hashlib, sys, time
from pathlib import Path
from modvault.artifact import ArtifactRef, Kind
from modvault.module.zipstream import ZipStreamScan
from modvault.service import ModuleService

path, module, version, reps = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
what = sys.argv[5]
data = path.read_bytes()
sha = hashlib.sha256(data).hexdigest()
ref = ArtifactRef(module, module, Kind.ZIP, version, version, True)

def scan():
    s = ZipStreamScan()
    for i in range(0, len(data), 1 << 20):
        s.feed(data[i:i + (1 << 20)])
    return s

entries = scan().entries
best = {"scan": float("inf"), "check": float("inf")}
for _ in range(reps):
    if what in ("both", "scan"):
        t = time.perf_counter(); scan(); best["scan"] = min(best["scan"], time.perf_counter() - t)
    if what in ("both", "check"):
        t = time.perf_counter()
        ModuleService._check_zip_file(path, ref, sha, entries)
        best["check"] = min(best["check"], time.perf_counter() - t)
print(best["scan"], best["check"])
'''


def run(tree: str, zip_path: Path, module: str, version: str, reps: int, what: str = "both",
        callgrind: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": tree}
    cmd = [sys.executable, "-c", CHILD, str(zip_path), module, version, str(reps), what]
    if callgrind:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return proc.stdout + proc.stderr


def instructions(tree: str, zip_path: Path, module: str, version: str, what: str) -> float:
    """Instructions per repetition: the difference between 4 and 1 repetitions, over 3."""
    counts = []
    for reps in (1, 4):
        out = run(tree, zip_path, module, version, reps, what, callgrind=True)
        line = next(x for x in out.splitlines() if "Collected" in x)
        counts.append(int(line.split()[-1]))
    return (counts[1] - counts[0]) / 3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-src", required=True, help="source tree to compare with (its src/)")
    ap.add_argument("--reps", type=int, default=15, help="repetitions per process (best is kept)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating processes per tree")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions (slow)")
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = {"baseline": args.baseline_src, "this tree": here}
    with tempfile.TemporaryDirectory(prefix="bench-zipcheck-") as tmp:
        zips = {}
        for name, (version, kib, files) in bench_proxy.COLD_ZIPS.items():
            if kib <= 2048:  # the per-entry rows: 64 KiB and 1,500 files
                p = Path(tmp) / f"{version}.zip"
                bench_proxy.make_module_zip(p, version, kib, files)
                zips[name.replace("cold ", "")] = (p, version, files or 18)
        for label, (p, version, count) in zips.items():
            best: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for who, tree in trees.items():
                    scan, check = map(float, run(tree, p, bench_proxy.COLD_MOD, version,
                                                 args.reps).split())
                    best.setdefault(who + " scan", []).append(scan)
                    best.setdefault(who + " check", []).append(check)
            print(f"{label} ({count} entries, {p.stat().st_size >> 10} KiB), best of "
                  f"{args.rounds} x {args.reps}:")
            for step in ("scan", "check"):
                b, t = min(best["baseline " + step]), min(best["this tree " + step])
                print(f"  {step:<6} baseline {b * 1e3:7.2f} ms ({b * 1e6 / count:6.1f} us/entry)"
                      f"   this tree {t * 1e3:7.2f} ms ({t * 1e6 / count:6.1f} us/entry)"
                      f"   ratio {t / b:.2f}")
            if args.callgrind:
                for step in ("scan", "check"):
                    b = instructions(trees["baseline"], p, bench_proxy.COLD_MOD, version, step)
                    t = instructions(here, p, bench_proxy.COLD_MOD, version, step)
                    print(f"  {step:<6} instructions: baseline {b / 1e6:7.1f} M   this tree "
                          f"{t / 1e6:7.1f} M   ratio {t / b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
