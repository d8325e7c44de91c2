"""Class 2: a bounded number of connections cannot deny service.

Before: about 1,024 TCP connections that sent nothing held every one of granian's connection slots
for as long as they stayed open, and no other client got an answer. Now silent connections are cut
after client_first_byte_timeout, idle keep-alive ones after client_idle_timeout, and each worker
holds at most max_connections (modvault.server.connreaper).
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

ENV = {"MODVAULT_MAX_CONNECTIONS": "64", "MODVAULT_CLIENT_FIRST_BYTE_TIMEOUT": "2",
       "MODVAULT_CLIENT_IDLE_TIMEOUT": "3", "MODVAULT_UPSTREAM_READ_TIMEOUT": "15"}


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_silent_connections_cannot_lock_clients_out(upstream_a: TestUpstreamServer,
                                                    modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url, env=ENV)
    silent = [socket.create_connection(("127.0.0.1", mv.port), timeout=10) for _ in range(300)]
    try:
        time.sleep(0.5)  # every slot (64) is taken by a silent connection; 236 wait in the backlog
        started = time.monotonic()
        r = httpx.get(mv.url + "/healthz", timeout=30)
        waited = time.monotonic() - started
        assert r.status_code == 200
        # Cut after 2 s of silence, scanned every second: a few rounds for 300 of them.
        assert waited < 20, waited
        assert _closed_by_server(silent[0], 10)
    finally:
        for s in silent:
            s.close()


def test_idle_keep_alive_is_cut_but_a_slow_request_is_not(upstream_a: TestUpstreamServer,
                                                          modvault: ModvaultFactory) -> None:
    slow = "/github.com/acme/hello/@v/v1.1.0.info"
    upstream_a.behaviours[slow] = Behaviour(delay=6)  # longer than the idle time-out (3 s)
    mv = modvault(upstream_a.url, env=ENV)
    with httpx.Client(base_url=mv.url, timeout=30) as client:
        r = client.get(slow)  # in flight for 6 s with no byte either way: not cut
        assert r.status_code == 200 and r.json()["Version"] == "v1.1.0"

    idle = socket.create_connection(("127.0.0.1", mv.port), timeout=10)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    assert b"200" in idle.recv(4096).split(b"\r\n", 1)[0]
    started = time.monotonic()
    assert _closed_by_server(idle, 15)  # keep-alive idle: closed after ~3 s
    assert time.monotonic() - started < 12
    idle.close()

    partial = socket.create_connection(("127.0.0.1", mv.port), timeout=10)
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # slowloris: half a header, then nothing
    assert _closed_by_server(partial, 15)
    partial.close()
