"""A worker of an offline server never loads the upstream HTTP client stack (httpx, httpcore,
h2, certifi's roots: ~6 MiB a worker); a server that may fetch makes its client off the event loop
and fetches a miss with it.

Seen from the real server: with PYTHONPROFILEIMPORTTIME every process of the group writes a line
per module it imports to stderr (the supervisor imports none of these, test_cli_memory.py), so the
log says what the worker loaded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from pathlib import Path

import httpx

from modvault.sources.lazyclient import LazyClient
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import TestUpstreamServer

CLIENT_STACK = ("httpx", "httpcore", "h2", "h11", "certifi")
# Loaded only by what hits never need: a go-import page or a repository's (html), a date in a
# request or an upstream's Retry-After (email), a default data directory (platformdirs); and
# never by a worker: prometheus_client (a test dependency now; observability/prom.py) with its
# HTTP servers.
COLD_ONLY = ("html", "email", "platformdirs", "prometheus_client", "http", "wsgiref")
INFO = '{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}'


def imported(log: str) -> set[str]:
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", log, re.M))


def stored_module(data: Path) -> None:
    stored = data / "example.com" / "m" / "@v"
    stored.mkdir(parents=True)
    (stored / "v1.0.0.info").write_text(INFO)
    (stored / "list").write_text("v1.0.0\n")


def test_an_offline_server_serves_hits_without_the_client_stack(tmp_path: Path) -> None:
    stored_module(tmp_path / "data")
    mv = ModvaultProcess(tmp_path / "data", "off", "--offline",
                         env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        for path in ("/example.com/m/@v/list", "/example.com/m/@v/v1.0.0.info",
                     "/example.com/m/@v/v1.0.0.info", "/example.com/m/@v/v9.0.0.info",
                     "/healthz", "/readyz", "/metrics"):
            httpx.get(mv.url + path, timeout=10)
        loaded = imported(mv.output())
        assert "modvault.server.app" in loaded  # the probe sees the worker's imports
        assert sorted(m for m in CLIENT_STACK if m in loaded) == []
        assert sorted(m for m in COLD_ONLY if m in loaded) == []
    finally:
        mv.stop()


def test_an_online_server_fetches_its_first_miss(tmp_path: Path) -> None:
    stored_module(tmp_path / "data")
    tree = tmp_path / "upstream" / "example.com" / "up" / "@v"
    tree.mkdir(parents=True)
    (tree / "v1.2.0.info").write_text(INFO.replace("v1.0.0", "v1.2.0"))
    upstream = TestUpstreamServer(tmp_path / "upstream").start()
    mv = ModvaultProcess(tmp_path / "data", upstream.url, env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        resp = httpx.get(mv.url + "/example.com/up/@v/v1.2.0.info", timeout=30)
        assert resp.status_code == 200, resp.text
        assert json.loads(resp.text)["Version"] == "v1.2.0"
        assert "/example.com/up/@v/v1.2.0.info" in upstream.requests
        assert "httpx" in imported(mv.output())
        assert "cannot set up the upstream HTTP client" not in mv.output()
    finally:
        mv.stop()
        upstream.stop()


def test_lazy_client_makes_one_client_on_first_use_and_closes_only_what_it_made() -> None:
    asyncio.run(lazy_client_checks())


async def lazy_client_checks() -> None:
    made: list[httpx.AsyncClient] = []

    def factory() -> httpx.AsyncClient:
        made.append(httpx.AsyncClient(timeout=3.0))
        return made[-1]

    unused = LazyClient(factory)
    await unused.aclose()
    assert made == [] and not unused.made

    lazy = LazyClient(factory)
    assert lazy.timeout.connect == 3.0  # any attribute reaches the real client
    assert lazy.get == made[0].get and len(made) == 1
    assert lazy.made
    await lazy.aclose()
    assert made[0].is_closed


def test_a_client_made_after_its_loop_closed_leaves_no_thread_error() -> None:
    """A worker stopping while its client is still being made in the maker thread: the thread
    finds the loop closed and ends quietly (it raised RuntimeError in the thread before)."""
    release = threading.Event()
    errors: list[BaseException | None] = []
    hook, threading.excepthook = threading.excepthook, lambda args: errors.append(args.exc_value)

    def factory() -> httpx.AsyncClient:
        release.wait(10)
        return httpx.AsyncClient()

    lazy = LazyClient(factory)

    async def start_and_leave() -> None:
        asyncio.get_running_loop().create_task(lazy.ready())
        await asyncio.sleep(0.05)  # the maker thread is running, waiting for release

    try:
        asyncio.run(start_and_leave())
        makers = [t for t in threading.enumerate() if t.name == "modvault-http-client"]
        release.set()
        for t in makers:
            t.join(10)
        assert makers and lazy.made
        assert errors == []
    finally:
        threading.excepthook = hook


HTTP1_PROBE = """
import json, sys
from granian.server.embed import Server
from modvault import cli
async def report(self, *a, **k):  # in place of serving: what granian was given
    print(json.dumps({"http1_buffer": self.http1_settings.max_buffer_size
                      if self.http1_settings else None}), flush=True)
Server.serve = report
sys.exit(cli.main(sys.argv[1:]))
"""


def test_serve_bounds_what_each_http1_connection_buffers(tmp_path: Path) -> None:
    """granian's default lets hyper queue ~408 KiB per HTTP/1 connection: 64 clients of one big
    zip grew the worker by ~22 MiB (bench/bench_proxy.py --rss-only). Every process model
    serves through server/embedded.py; the single one runs it in the probe's own process."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    proc = subprocess.run([sys.executable, "-c", HTTP1_PROBE, "serve", "--listen", "127.0.0.1:0",
                           "--data-dir", str(tmp_path / "data"), "--upstream", "off", "--offline"],
                          capture_output=True, text=True, timeout=60,
                          env=env | {"MODVAULT_PROCESS_MODEL": "single"})
    # The probe's "server" returns at once: a server that stopped on its own, exit status 1.
    assert proc.returncode == 1 and proc.stdout, proc.stderr[-2000:]
    buffer = json.loads(proc.stdout.strip().splitlines()[-1])["http1_buffer"]
    assert buffer is not None and 16 << 10 <= buffer <= 320 << 10  # granian's default: ~408 KiB


def test_lazy_client_is_made_off_the_event_loop_once_and_retried_after_a_failure() -> None:
    asyncio.run(ready_checks())


async def ready_checks() -> None:
    import threading

    from modvault.errors import Unavailable
    from modvault.sources.lazyclient import client_ready

    made_in: list[str] = []
    fail = [True]

    def factory() -> httpx.AsyncClient:
        made_in.append(threading.current_thread().name)
        if fail[0]:
            raise ValueError("no CA bundle")
        return httpx.AsyncClient()

    lazy = LazyClient(factory)
    try:
        await client_ready(lazy)
    except Unavailable as exc:
        assert "no CA bundle" in exc.message
    else:
        raise AssertionError("a failing factory must surface as Unavailable")
    fail[0] = False
    await asyncio.gather(*(client_ready(lazy) for _ in range(5)))  # concurrent first fetches
    assert lazy.made and len(made_in) == 2
    assert threading.main_thread().name not in made_in  # never on the loop's thread
    await client_ready(lazy)
    await client_ready(None)  # a chain without HTTP upstreams
    assert len(made_in) == 2
    await lazy.aclose()
