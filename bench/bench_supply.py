"""Supply-chain costs, as ratios against references measured in the same run.

Builds a static GOPROXY with N module versions forming one graph (mI requires m(I+1) and a leaf
fI), starts modvault in front of it, warms it with `go mod download all`, then measures:

- SBOM (POST /api/v1/sbom, SPDX and CycloneDX) of the whole graph vs `go list -m all` with a fresh
  module cache against the same warm server (the go command reads the same .mod files);
- GET /api/v1/provenance/M@V (load record, build statement, sign) vs GET of the same version's .info.

Run: python bench/bench_supply.py [--modules N] [--requests R]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_sumdb import start, stop


def make_graph(root: Path, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        for name, reqs in ((f"m{i}", [f"m{i + 1}", f"f{i}"] if i + 1 < n else [f"f{i}"]),
                           (f"f{i}", [])):
            mod, ver = f"example.com/bench/{name}", "v1.0.0"
            d = root / mod / "@v"
            d.mkdir(parents=True)
            gomod = f"module {mod}\n\ngo 1.16\n"
            if reqs:
                gomod += "\nrequire (\n" + "".join(f"\texample.com/bench/{r} v1.0.0\n" for r in reqs) + ")\n"
            (d / f"{ver}.mod").write_text(gomod)
            (d / f"{ver}.info").write_text(f'{{"Version":"{ver}","Time":"2023-11-14T22:13:20Z"}}')
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(f"{mod}@{ver}/go.mod", gomod)
                zf.writestr(f"{mod}@{ver}/LICENSE", "All rights reserved.\n")
                zf.writestr(f"{mod}@{ver}/x.go", f"package {name}\n" + "// x\n" * 2000)
            (d / f"{ver}.zip").write_bytes(buf.getvalue())
            (d / "list").write_text(f"{ver}\n")
            out.append((mod, ver))
    return out


def go_env(home: Path, proxy: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), "GOPATH": str(home / "gopath"),
            "GOMODCACHE": str(home / "gopath" / "pkg" / "mod"), "GOCACHE": str(home / "gocache"),
            "GOENV": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOSUMDB": "off",
            "GOPROXY": proxy}


def rmtree(p: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(p)], check=False)
    shutil.rmtree(p, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules", type=int, default=100, help="chain length (2N module versions)")
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="modvault-bench-supply-"))
    proc = None
    try:
        mods = make_graph(root / "proxy", args.modules)
        data = root / "data"
        subprocess.run([sys.executable, "-m", "modvault", "attest", "init", "--data-dir", str(data)],
                       capture_output=True, check=True)
        proc, url = start(data, f"file://{root / 'proxy'}", "--no-sumdb-verify", log=root / "mv.log")
        app = root / "app"
        app.mkdir()
        gomod = b"module example.com/app\n\ngo 1.16\n\nrequire example.com/bench/m0 v1.0.0\n"
        (app / "go.mod").write_bytes(gomod)
        subprocess.run(["go", "mod", "download", "all"], cwd=app, env=go_env(root / "warm", url),
                       check=True, capture_output=True)
        t = time.perf_counter()
        out = subprocess.run(["go", "list", "-m", "all"], cwd=app, env=go_env(root / "cold", url),
                             check=True, capture_output=True, text=True).stdout
        t_go = time.perf_counter() - t
        assert len(out.splitlines()) == len(mods) + 1
        with httpx.Client(timeout=600) as c:
            times = {}
            for fmt in ("spdx-json", "cyclonedx-json"):
                t = time.perf_counter()
                r = c.post(f"{url}/api/v1/sbom", params={"format": fmt}, content=gomod)
                times[fmt] = time.perf_counter() - t
                r.raise_for_status()
            mod, ver = mods[0]
            for _ in range(20):  # warm both paths
                c.get(f"{url}/api/v1/provenance/{mod}@{ver}").raise_for_status()
                c.get(f"{url}/{mod}/@v/{ver}.info").raise_for_status()
            t = time.perf_counter()
            for _ in range(args.requests):
                c.get(f"{url}/{mod}/@v/{ver}.info")
            t_info = (time.perf_counter() - t) / args.requests
            t = time.perf_counter()
            for _ in range(args.requests):
                c.get(f"{url}/api/v1/provenance/{mod}@{ver}")
            t_prov = (time.perf_counter() - t) / args.requests
        n = len(mods)
        print(f"graph of {n} module versions, warm modvault, file:// upstream")
        print(f"  go list -m all (fresh module cache): {t_go * 1000:8.1f} ms  (reference)")
        for fmt, s in times.items():
            print(f"  SBOM {fmt:15s}: {s * 1000:8.1f} ms  x{s / t_go:.2f} of go list -m all")
        print(f"  GET .info:                         {t_info * 1e6:8.0f} us  (reference)")
        print(f"  GET provenance (sign per request): {t_prov * 1e6:8.0f} us  x{t_prov / t_info:.2f}")
    finally:
        if proc is not None:
            stop(proc)
        rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
