"""Class 7: our own storage failures are 503 naming the store, never retried against or blamed on an
upstream, leave nothing behind, and what is stored keeps being served (disk full, read-only).

Before: on a full disk .info/.mod answered 500 and .zip 502 blaming the upstream after downloading it
four times; on a read-only store every new fetch was a 500; each /readyz left an empty probe file.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ModvaultFactory
from tests.support.probes import leftovers
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

MOD = "/github.com/acme/hello/@v/"
CACHED = [MOD + "list", MOD + "v1.0.0.info", MOD + "v1.0.0.mod", MOD + "v1.0.0.zip"]
NEW = [MOD + "v1.1.0.info", MOD + "v1.1.0.mod", MOD + "v1.1.0.zip"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: fillable in a moment, remountable read-only."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = _run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt))
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        _run("umount", "-l", str(mnt))


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 512):  # big blocks, then the last pages
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and p.name != "filler"}


def _check_failing_store(mv_url: str, upstream: TestUpstreamServer, data: Path,
                         cached: dict[str, bytes]) -> None:
    before = _files(data)
    with httpx.Client(base_url=mv_url, timeout=60) as client:
        for path, body in cached.items():  # what is stored keeps being served
            r = client.get(path)
            assert r.status_code == 200 and r.content == body, (path, r.status_code, r.text)
        upstream.requests.clear()
        for path in NEW:
            r = client.get(path)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.text.startswith("modvault store:"), r.text
            assert upstream.url.removeprefix("http://") not in r.text  # not blamed on it
            assert upstream.count(path) <= 1  # never retried against the upstream
        for _ in range(5):
            r = client.get("/readyz")
            assert r.status_code == 503 and "store" in r.text
    assert _files(data) == before  # nothing partial, no probe files
    assert not leftovers(data)


def test_full_then_read_only_store(small_disk: Path, upstream_a: TestUpstreamServer,
                                   modvault: ModvaultFactory) -> None:
    data = small_disk  # the whole file system is the store (the server's log lives beside it)
    mv = modvault(upstream_a.url, data_dir=data, env={"MODVAULT_NEGATIVE_TTL": "0"})
    cached: dict[str, bytes] = {}
    with httpx.Client(base_url=mv.url, timeout=60) as client:
        for path in CACHED:
            r = client.get(path)
            assert r.status_code == 200, (path, r.text)
            cached[path] = r.content
        assert client.get("/readyz").status_code in (200, 503)  # upstream probe aside: no leftovers
        # The index feed's log is written by a periodic walk of the store: let it record the version
        # before the disk fills, so the check below sees only what the failing requests leave.
        deadline = time.monotonic() + 60
        while "v1.0.0" not in client.get("/index").text:
            assert time.monotonic() < deadline, "the index feed never named the cached version"
            time.sleep(0.2)

    filler = _fill(small_disk)
    _check_failing_store(mv.url, upstream_a, data, cached)

    filler.unlink()
    res = _run("mount", "-o", "remount,ro", str(small_disk))
    assert res.returncode == 0, res.stderr
    _check_failing_store(mv.url, upstream_a, data, cached)

    res = _run("mount", "-o", "remount,rw", str(small_disk))
    assert res.returncode == 0, res.stderr
    with httpx.Client(base_url=mv.url, timeout=60) as client:  # and it recovers on its own
        for path in NEW:
            assert client.get(path).status_code == 200, path
    assert os.listdir(data / ".modvault" / "tmp") == []
