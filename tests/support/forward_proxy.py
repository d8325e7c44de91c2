"""An HTTPS forward proxy on 127.0.0.1 that tunnels every ``CONNECT`` to one local server, whatever
host it names: it stands in for DNS and the network we cannot reach, so the go command can fetch
``https://corp.example/...`` (through ``HTTPS_PROXY``) and reach a local modvault, TLS and all (the
server's certificate must name the host). Records the hosts it was asked for."""

from __future__ import annotations

import contextlib
import select
import socket
from http.server import BaseHTTPRequestHandler

from tests.support.local_http import LocalHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: TunnelProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # only tunnels: plain http to the named host fails, as it would here
        self.send_error(502, "tunnels only")

    def do_CONNECT(self) -> None:
        with self.server.lock:
            self.server.seen.append(self.path)
        try:
            upstream = socket.create_connection(self.server.backend, timeout=30)
        except OSError:
            self.send_error(502, "backend down")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        with upstream, contextlib.suppress(OSError):
            client = self.connection
            ends = [client, upstream]
            while True:
                ready, _, _ = select.select(ends, [], [], 60)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is client else client).sendall(data)


class TunnelProxy(LocalHTTPServer):
    def __init__(self, backend_port: int) -> None:
        super().__init__(_Handler)
        self.backend = ("127.0.0.1", backend_port)
        self.seen: list[str] = []
