"""A second S3-compatible server for the conformance suite: moto's standalone server (``moto_server``,
PyPI ``moto[server]``), a separate process speaking the S3 wire protocol on a 127.0.0.1 socket.
Optional: the suite runs against it only where it is installed (it is not in the test extra)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.seaweed import ACCESS_KEY, REGION, _free_port


def moto_binary() -> str | None:
    here = Path(sys.executable).parent / "moto_server"
    return str(here) if here.exists() else shutil.which("moto_server")


class MotoS3:
    def __init__(self, root: Path, bucket: str = "modvault") -> None:
        binary = moto_binary()
        if binary is None:
            raise RuntimeError("moto_server not found: pip install 'moto[server]'")
        root.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        self.port = _free_port()
        log = open(root / "moto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited {self.proc.returncode}")
            try:
                httpx.put(f"{self.endpoint}/{bucket}", timeout=2,
                          headers={"authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
                                   f"20240101/{REGION}/s3/aws4_request, SignedHeaders=host, "
                                   f"Signature=0"}).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto_server did not start")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


__all__ = ["MotoS3", "moto_binary"]
