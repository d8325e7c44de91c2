"""Active probes do not depend on the default thread pool (which serves file I/O and, under load, holds
a queue of seconds): they resolve names in threads of their own and still check TLS by name."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from modvault.observability import metrics
from modvault.sources.health import HealthRegistry
from modvault.sources.lazyclient import lazy_client
from modvault.sources.tracking import Prober, make_probe_client, probe_once
from modvault.sources.upstream import tls_context
from tests.support.tls import make_cert


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hosts.append(self.headers.get("Host", ""))
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def dns_count(name: str) -> float:
    for fam in metrics.REGISTRY.collect():
        for s in fam.samples:
            if (s.name == "modvault_upstream_phase_seconds_count"
                    and s.labels == {"upstream": name, "phase": "dns"}):
                return s.value
    return 0.0




def test_probe_by_name_while_the_default_pool_is_blocked(server: ThreadingHTTPServer) -> None:
    """Every default-pool thread is held (and more work queued behind them) for as long as the test
    runs: a probe that needs that pool cannot finish; ours does, and measures its dns phase."""
    port = server.server_address[1]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(2))
        release = threading.Event()
        held = [loop.run_in_executor(None, release.wait, 120) for _ in range(8)]
        try:
            reg = HealthRegistry()
            rec = reg.get("starved", "proxy")
            client = make_probe_client(None, 5.0)
            prober = Prober(reg, client, interval=60, idle=600)
            prober.add(rec, f"http://localhost:{port}/")
            reg.allow(rec)  # in use: due for probing
            await prober.round()
            await prober.aclose()
            assert not any(f.done() for f in held)  # the pool was blocked all along
            assert rec.successes == 1 and rec.failures == 0, rec.last_error
            assert dns_count("starved") == 1
            assert _Hello.hosts[-1] == f"localhost:{port}"  # the name, not the address
        finally:
            release.set()
            await asyncio.gather(*held)

    asyncio.run(main())


def test_probe_by_name_checks_the_certificate_by_name(tmp_path: Path) -> None:
    """Connected to the address, the probe still sends the name (SNI) and verifies it: a
    certificate for the name passes, one for another name fails."""
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good_dir.mkdir()
    bad_dir.mkdir()
    cert, key = make_cert(good_dir, with_ip=False)  # valid for "localhost" only
    other, _ = make_cert(bad_dir, with_ip=False)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://localhost:{srv.server_address[1]}/"
    try:
        async def probe(ca: Path) -> tuple[bool, str]:
            reg = HealthRegistry()
            client = make_probe_client(tls_context(str(ca)), 5.0)
            try:
                return await probe_once(client, url, reg, reg.get("tls", "proxy"))
            finally:
                await client.aclose()

        assert asyncio.run(probe(cert)) == (True, "answered 200")
        ok, why = asyncio.run(probe(other))  # httpx reports a refused certificate as "connect"
        assert not ok, why
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_lazy_probe_client_is_made_off_the_event_loop(server: ThreadingHTTPServer) -> None:
    """The probe client of an online server is lazy (sources/lazyclient.py); the first probe has
    it made in a thread, not on the event loop by touching one of its attributes."""
    port = server.server_address[1]
    made_in: list[int] = []

    def factory() -> httpx.AsyncClient:
        made_in.append(threading.get_ident())
        return make_probe_client(None, 5.0)

    async def main() -> int:
        reg = HealthRegistry()
        rec = reg.get("lazy", "proxy")
        prober = Prober(reg, lazy_client(factory), interval=60, idle=600)
        prober.add(rec, f"http://127.0.0.1:{port}/")
        reg.allow(rec)
        await prober.round()
        await prober.aclose()
        assert rec.successes == 1, rec.last_error
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(made_in) == 1 and made_in[0] != loop_thread


def test_a_probe_client_that_cannot_be_made_is_a_failed_probe() -> None:
    def factory() -> httpx.AsyncClient:
        raise ssl.SSLError("no such CA file")

    async def main() -> tuple[bool, str]:
        reg = HealthRegistry()
        prober = Prober(reg, lazy_client(factory), interval=60, idle=600)
        prober.add(reg.get("broken", "proxy"), "http://127.0.0.1:9/")
        return await prober.probe("broken")

    ok, why = asyncio.run(main())
    assert not ok and "cannot set up the upstream HTTP client" in why, why


def _raw_server(send: Callable[[socket.socket], None]) -> socket.socket:
    """A server whose every connection gets *send* after the request (in a thread)."""
    sock = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return

            def one(c: socket.socket = conn) -> None:
                with c, contextlib.suppress(OSError):
                    c.recv(65536)
                    send(c)

            threading.Thread(target=one, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return sock


@pytest.mark.parametrize("kind", ["flood", "trickle"])
def test_a_probe_of_an_answer_without_end_fails_in_bounded_time(kind: str) -> None:
    """Endless informational heads are refused after 1 MiB (the upstreams' transport); a head
    trickled a byte at a time, each within the read time-out, by the probe's own deadline.
    Before, both kept the probe (and the prober's round) going without end."""
    def flood(c: socket.socket) -> None:
        while True:
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 4000)

    def trickle(c: socket.socket) -> None:
        for _ in range(600):
            c.sendall(b"X")
            time.sleep(0.1)

    sock = _raw_server(flood if kind == "flood" else trickle)

    async def main() -> tuple[bool, str]:
        reg = HealthRegistry()
        client = make_probe_client(None, 1.0)
        try:
            return await asyncio.wait_for(probe_once(
                client, f"http://127.0.0.1:{sock.getsockname()[1]}/", reg, reg.get(kind, "proxy"),
                timeout=1.0), 20)
        finally:
            await client.aclose()

    try:
        ok, why = asyncio.run(main())
    finally:
        sock.close()
    assert not ok
    assert why == ("no final answer head within the first 1048576 bytes" if kind == "flood"
                   else "no answer within 3s"), why
