"""A git host on 127.0.0.1: real ``git http-backend`` (smart HTTP) behind a small HTTP server whose
failures and latency a test controls (answer a status, hold every answer, stop and come back)."""

from __future__ import annotations

import os
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

from tests.support.local_http import LocalHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: GitHTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        srv = self.server
        path, _, query = self.path.partition("?")
        body = self._body()
        with srv.lock:
            srv.requests.append(path)
            status, delay = srv.fail_status, srv.delay
        if delay:
            time.sleep(delay)
        if status:
            self._send(status, [("Content-Type", "text/plain")], b"down\n")
            return
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(srv.root),
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": method, "PATH_INFO": unquote(path),
               "QUERY_STRING": query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                              check=False)
        head, sep, out = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, _, out = proc.stdout.partition(b"\n\n")
        code = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.split()[0])
            elif name:
                headers.append((name.strip(), value.strip()))
        self._send(code, headers, out)

    def _send(self, code: int, headers: list[tuple[str, str]], body: bytes) -> None:
        try:
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client (a killed git) went away


class GitHTTPServer(LocalHTTPServer):
    """Serves the bare repositories under ``root`` (``root/<owner>/<repo>``) over smart HTTP."""

    def __init__(self, root: Path, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.root = root
        self.requests: list[str] = []
        self.fail_status = 0
        self.delay = 0.0

    def count(self, fragment: str) -> int:
        with self.lock:
            return sum(1 for p in self.requests if fragment in p)

    def fail_everything(self, status: int = 503) -> None:
        with self.lock:
            self.fail_status = status

    def hold_everything(self, delay: float) -> None:
        """Every answer waits ``delay`` seconds (a host that accepts and then goes silent)."""
        with self.lock:
            self.delay = delay

    def reset(self) -> None:
        with self.lock:
            self.fail_status = 0
            self.delay = 0.0


def insteadof_config(path: Path, server_url: str) -> dict[str, str]:
    """A git config rewriting ``https://github.com/`` to the server; the environment to use it."""
    path.write_text(f'[url "{server_url}/"]\n\tinsteadOf = https://github.com/\n')
    return {"GIT_CONFIG_GLOBAL": str(path), "GIT_CONFIG_NOSYSTEM": "1"}
