"""CPU cost of the server's Python request path for a cached small .info, in-process, before/after.

wrk numbers on a shared 2-core machine swing by +-20% between runs, which hides a few-percent change;
this drives ``App.__rsgi__`` directly with a stub protocol (no sockets, no granian) and measures CPU
time per request (process_time), alternating between this tree and a baseline source tree in separate
processes, best of several batches each. It prints microseconds per request and the ratio.

Run: python bench/bench_request_path.py --baseline-src DIR [--rounds 5] [--requests 20000]
(DIR: e.g. `git archive main src | tar -x -C /tmp/base` -> /tmp/base/src). Add --auth to measure this
tree with auth on and a Bearer token against the baseline with auth off, --log to measure both with
the access log on (written to /dev/null).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r'''
import asyncio, json, os, sys, time
from pathlib import Path
from modvault.config import Settings
from modvault.server.app import App
from modvault.wiring import build_service

data, n, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
extra = json.loads(sys.argv[4])
headers_in = json.loads(sys.argv[5])
extra.setdefault("access_log", False)
settings = Settings(data_dir=data, upstream="off", offline=True, sumdb_verify=False, **extra)

class Headers(dict):
    pass

class Scope:
    proto = "http"; method = "GET"; http_version = "1.1"; client = "127.0.0.1:5555"
    query_string = ""; scheme = "http"; authority = None
    def __init__(self, path):
        self.path = path
        self.headers = Headers(headers_in)

class Proto:
    def response_bytes(self, status, headers, body):
        assert status == 200, (status, body)
    def response_empty(self, status, headers):
        pass
    def response_file(self, status, headers, path):
        pass

async def main():
    app = App(settings)
    svc = build_service(settings)
    if hasattr(app, "setup"):
        app.setup(svc)
    else:
        app.service = svc
    if settings.access_log:  # lines are formatted and written as served, to /dev/null
        app.access_log.fd = os.open(os.devnull, os.O_WRONLY)
    scope, proto = Scope("/example.com/bench/@v/v1.0.0.info"), Proto()
    await app.__rsgi__(scope, proto)
    best = 1e9
    for _ in range(batches):
        t = time.process_time()
        for _ in range(n):
            await app.__rsgi__(scope, proto)
        best = min(best, (time.process_time() - t) / n)
    print(best * 1e6)

asyncio.run(main())
'''


def run(tree: str | None, data: Path, n: int, batches: int, extra: dict[str, object],
        headers: dict[str, str]) -> float:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree
    out = subprocess.run([sys.executable, "-c", CHILD, str(data), str(n), str(batches),
                          json.dumps(extra), json.dumps(headers)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--tree-src", metavar="DIR",
                    help="measure this source tree instead of the installed one (PYTHONPATH)")
    ap.add_argument("--auth", action="store_true", help="this tree with auth on and a Bearer token")
    ap.add_argument("--log", action="store_true", help="both with the access log on (to /dev/null)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modvault-bench-") as tmp:
        data = Path(tmp) / "data"
        d = data / "example.com" / "bench" / "@v"
        d.mkdir(parents=True)
        (d / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2023-11-14T22:13:20Z"}')
        extra: dict[str, object] = {}
        headers: dict[str, str] = {}
        base_extra: dict[str, object] = {"access_log": True} if args.log else {}
        if args.auth:
            token = subprocess.run([sys.executable, "-m", "modvault", "token", "create", "bench",
                                    "--role", "reader", "--data-dir", str(data)],
                                   capture_output=True, text=True, check=True).stdout.split()[-1]
            extra = {"auth": "on"}
            headers = {"authorization": f"Bearer {token}"}
        base: list[float] = []
        this: list[float] = []
        for _ in range(args.rounds):
            base.append(run(str(Path(args.baseline_src).resolve()), data, args.requests,
                            args.batches, base_extra, {}))
            tree = str(Path(args.tree_src).resolve()) if args.tree_src else None
            this.append(run(tree, data, args.requests, args.batches, {**base_extra, **extra},
                            headers))
        b, t = min(base), min(this)
        print(f"baseline  {b:8.2f} us/request   (rounds: {', '.join(f'{x:.2f}' for x in base)})")
        print(f"this tree {t:8.2f} us/request   (rounds: {', '.join(f'{x:.2f}' for x in this)})")
        print(f"ratio this/baseline: {t / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
