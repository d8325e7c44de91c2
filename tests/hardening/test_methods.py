"""Class 10 (methods): the non-protocol endpoints answer 405 with Allow to anything but GET/HEAD.

Before: /metrics, /healthz, /readyz and / answered 200 to PUT, DELETE, TRACE and CONNECT.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

PATHS = ["/metrics", "/healthz", "/readyz", "/", "/github.com/acme/hello/@v/list",
         "/sumdb/sum.golang.org/supported"]


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_only_get_and_head(upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    with httpx.Client(base_url=mv.url, timeout=30) as client:
        for path in PATHS:
            assert client.get(path).status_code == 200, path
            assert client.head(path).status_code == 200, path
            for method in ("PUT", "DELETE", "POST", "PATCH", "OPTIONS", "TRACE"):
                r = client.request(method, path, content=b"x" if method in ("PUT", "POST") else None)
                assert r.status_code == 405, (method, path, r.status_code)
                assert r.headers["allow"] == "GET, HEAD", (method, path)
    for path in PATHS:
        # CONNECT takes an authority, not a path: whatever the server makes of it, never a 2xx/5xx.
        for target in (path, "127.0.0.1:443"):
            head = _raw(mv.port, f"CONNECT {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 400
            assert 400 <= status < 500, (path, target, head[:100])
