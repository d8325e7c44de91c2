"""The threaded HTTP server on 127.0.0.1 that the test upstreams and git hosts are built on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHTTPServer(ThreadingHTTPServer):
    """Binds 127.0.0.1 (``port`` 0: a free one; an old server's port: bring a host "back up"),
    serves from a daemon thread once started, and closes its port on stop()."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.lock = threading.Lock()
        # A short poll: stop() (shutdown) waits for serve_forever to notice, 0.5 s by default.
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Close the port: connections are refused until a new server takes it."""
        self.shutdown()
        self.server_close()
