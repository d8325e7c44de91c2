"""Instructions per request of a whole modvault server process, counted by callgrind.

Socket timings on a small shared VM swing by 10% between two processes of the same code, which
hides the changes worth making to the hot path; instruction counts do not. One server process
(``process_model = "single"``: granian's Rust threads and the event loop in it) runs under
``valgrind --tool=callgrind`` and answers N requests, a second one M; both counts include start-up
and shutdown, so (count(M) - count(N)) / (M - N) is what one more request costs in user space
(the kernel's share is not counted). bench/README.md, "Instructions per request of a whole server".

    python bench/server_instructions.py [--src DIR] [--path P] [--auth] [--log off] [-n 1000 -m 3000]

Needs valgrind and h2load (nghttp2-client). About 2-3 minutes per server under callgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy import INFO, free_port, make_small_files, wait_port

COLLECTED = re.compile(r"Collected : (\d+)")
REQUESTS = re.compile(r"requests: \d+ total, \d+ started, (?P<done>\d+) done, \d+ succeeded, "
                      r"\d+ failed, (?P<errored>\d+) errored, (?P<timeout>\d+) timeout")


def make_small_data(root: Path) -> None:
    d = make_small_files(root)
    (d / "v1.2.0.zip").write_bytes(os.urandom(64 << 10))


def counted(env: dict[str, str], data: Path, extra: list[str], path: str, header: str | None,
            n: int, out: Path) -> int:
    """Instructions of one server process that answered ``n`` requests for ``path``."""
    port = free_port()
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
           "modvault", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
           "--upstream", "off", "--offline", *extra]
    log = out.with_suffix(".log")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        wait_port(port, timeout=120)  # slow under callgrind; requests wait in the backlog after
        load = ["h2load", "--h1", "-c1", "-n", str(n), f"http://127.0.0.1:{port}{path}"]
        if header:
            load[1:1] = ["-H", header]
        done = subprocess.run(load, capture_output=True, text=True, check=True).stdout
        # h2load counts a 4xx as "failed": a 404 row is measured too, so only errors count here.
        counts = REQUESTS.search(done)
        if counts is None or int(counts["done"]) != n or counts["errored"] != "0" \
                or counts["timeout"] != "0":
            raise RuntimeError(f"h2load did not complete {n} requests:\n{done}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    found = COLLECTED.findall(log.read_text(errors="replace"))
    if not found:
        raise RuntimeError(f"no callgrind total in {log}")
    return sum(int(x) for x in found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", help="the src/ directory of the tree to measure (default: this one)")
    ap.add_argument("--path", default=INFO, help=f"the request path (default {INFO})")
    ap.add_argument("--auth", action="store_true", help="auth on, with a reader's Bearer token")
    ap.add_argument("--log", choices=("on", "off"), default="on", help="the access log")
    ap.add_argument("-n", type=int, default=1000, help="requests of the first server")
    ap.add_argument("-m", type=int, default=3000, help="requests of the second server")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    env |= {"MODVAULT_PROCESS_MODEL": "single", "PYTHONHASHSEED": "0",
            "MODVAULT_ACCESS_LOG": "true" if args.log == "on" else "false"}
    if args.src:
        env["PYTHONPATH"] = args.src
    with tempfile.TemporaryDirectory(prefix="mv-ir-") as tmp:
        root = Path(tmp)
        data = root / "data"
        make_small_data(data)
        extra: list[str] = []
        header = None
        if args.auth:
            token = subprocess.run([sys.executable, "-m", "modvault", "token", "create", "bench",
                                    "--role", "reader", "--data-dir", str(data)], env=env,
                                   capture_output=True, text=True, check=True).stdout.split()[-1]
            extra, header = ["--auth", "on"], f"Authorization: Bearer {token}"
        first = counted(env, data, extra, args.path, header, args.n, root / "cg.n")
        second = counted(env, data, extra, args.path, header, args.m, root / "cg.m")
    per = (second - first) / (args.m - args.n)
    print(f"{args.path} (auth {'on' if args.auth else 'off'}, log {args.log}, "
          f"src {args.src or 'this tree'}): {per / 1000:.1f}k instructions per request "
          f"({first} for {args.n}, {second} for {args.m})")


if __name__ == "__main__":
    main()
