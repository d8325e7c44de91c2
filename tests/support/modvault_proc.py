"""Start modvault as a real server process on a free 127.0.0.1 port and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ModvaultProcess:
    def __init__(self, data_dir: Path, upstream: str, *args: str, env: dict[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.data_dir = data_dir
        self.scheme = "https" if tls else "http"
        e = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
        # No public checksum database is reachable here: tests that verify configure their own.
        e["MODVAULT_SUMDB_VERIFY"] = "false"
        e.update(env or {})
        # A free port can be taken by another process (another xdist worker's server or client)
        # between free_port() and modvault's bind: start again on a new port when that happens.
        for attempt in range(5):
            self.port = free_port()
            cmd = [sys.executable, "-m", "modvault", "serve", "--listen", f"127.0.0.1:{self.port}",
                   "--data-dir", str(data_dir), "--upstream", upstream, *args]
            if tls:
                cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
            self.log_path = data_dir.parent / f"modvault-{self.port}.log"
            self.log = open(self.log_path, "wb")  # noqa: SIM115
            self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                         start_new_session=True)
            try:
                self._wait_ready()
                return
            except RuntimeError:
                lost_port = self.proc.returncode == 2 and "is already in use" in self.output()
                self.log.close()
                if not lost_port or attempt == 4:
                    raise

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"modvault exited {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if self.scheme == "http":
                    httpx.get(self.url + "/healthz", timeout=2).raise_for_status()
                return
            except (OSError, httpx.HTTPError):
                time.sleep(0.05)
        raise RuntimeError(f"modvault did not start:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
