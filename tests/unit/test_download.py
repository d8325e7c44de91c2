"""DownloadFile: a download written and hashed in one pass, batched to a writer thread, that never
leaves an open file or an unretrieved error behind when it fails or is cancelled."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import threading
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.errors import StorageError
from modvault.sources.download import BATCH, DOWNLOAD_SCAN, DownloadFile, ScanSlot
from modvault.storage import writeback


def open_fds() -> int:
    """This process's open descriptors, once the write-back helper has closed the duplicates an
    earlier download handed it (storage/writeback.py: one thread, tasks in order)."""
    writeback._helper().submit(lambda: None).result(timeout=30)
    return len(os.listdir("/proc/self/fd"))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=70_000), max_size=16), st.sampled_from([1, 2]))
def test_digest_and_bytes_match_what_was_written(tmp_path_factory: pytest.TempPathFactory,
                                                 chunks: list[bytes], repeat: int) -> None:
    chunks = chunks * repeat * 2  # past a batch or two
    dest = tmp_path_factory.mktemp("dl") / "out"

    async def main() -> DownloadFile:
        async with DownloadFile(dest, "zip m@v1.0.0") as out:
            for c in chunks:
                await out.write(c)
        return out

    out = asyncio.run(main())
    data = b"".join(chunks)
    assert dest.read_bytes() == data
    assert out.sha256 == hashlib.sha256(data).hexdigest() and out.size == len(data)


def test_sync_writer_off_the_loop(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with DownloadFile(dest, "zip m@v1.0.0") as out:
        for _ in range(3):
            out.write_sync(b"abc" * 1000)
    assert out.sha256 == hashlib.sha256(b"abc" * 3000).hexdigest()
    assert dest.read_bytes() == b"abc" * 3000


def test_failure_inside_closes_the_file_and_propagates(tmp_path: Path) -> None:
    before = open_fds()

    async def main() -> None:
        async with DownloadFile(tmp_path / "out", "zip m@v1.0.0") as out:
            for _ in range(5):
                await out.write(b"x" * BATCH)  # batches in flight in the writer thread
            raise ValueError("upstream said something wrong")

    with pytest.raises(ValueError, match="wrong"):
        asyncio.run(main())  # asyncio.run waits for the executor: the deferred close has run
    assert open_fds() == before


@pytest.mark.parametrize("scanned", [False, True], ids=["writer lane", "writer and scan lanes"])
def test_cancelled_download_closes_the_file_and_leaves_no_noise(tmp_path: Path,
                                                                scanned: bool) -> None:
    before = open_fds()

    async def main() -> None:
        started = asyncio.Event()

        async def download() -> None:
            async with DownloadFile(tmp_path / "out", "zip m@v1.0.0") as out:
                while True:
                    await out.write(b"y" * (BATCH // 2))
                    started.set()

        token = DOWNLOAD_SCAN.set(ScanSlot(Recorder) if scanned else None)
        try:
            task = asyncio.create_task(download())
        finally:
            DOWNLOAD_SCAN.reset(token)
        await started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())
        gc.collect()
    assert open_fds() == before


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_a_storage_error() -> None:
    async def main() -> None:
        async with DownloadFile(Path("/dev/full"), "zip m@v1.0.0") as out:
            for _ in range(4):
                await out.write(b"z" * BATCH)

    with pytest.raises(StorageError, match=r"cannot write the download of zip m@v1\.0\.0"):
        asyncio.run(main())


def test_unwritable_destination_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot write the download"), \
            DownloadFile(tmp_path / "missing-dir" / "out", "zip m@v1.0.0"):
        pass


def test_upstream_client_reads_bodies_in_big_chunks() -> None:
    """A canary for the httpcore attribute make_client raises (cold-path CPU, see upstream.py):
    if httpcore renames it, this fails instead of the tuning silently doing nothing."""
    import httpcore

    from modvault.sources.upstream import READ_BYTES, UpstreamLimits, make_client

    client = make_client(UpstreamLimits())
    asyncio.run(client.aclose())
    assert httpcore.AsyncHTTP11Connection.READ_NUM_BYTES >= READ_BYTES


class Recorder:
    """A scanner that keeps what it was fed."""

    def __init__(self) -> None:
        self.fed = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.fed += chunk


def test_scan_slot_gets_the_scanner_of_the_bytes_written(tmp_path: Path) -> None:
    """Each attempt feeds a fresh scanner; only a clean finish leaves one, tied to its digest:
    a failed first attempt (or a source that wrote the file itself) is never taken for it."""
    slot = ScanSlot(Recorder)

    async def main() -> str:
        token = DOWNLOAD_SCAN.set(slot)
        try:
            with pytest.raises(ValueError):
                async with DownloadFile(tmp_path / "out", "zip m@v1.0.0") as out:
                    await out.write(b"half" * BATCH)
                    raise ValueError("the upstream died")
            assert slot.result is None
            async with DownloadFile(tmp_path / "out", "zip m@v1.0.0") as out:
                for _ in range(3):
                    await out.write(b"whole" * 100_000)
            return out.sha256
        finally:
            DOWNLOAD_SCAN.reset(token)

    sha = asyncio.run(main())
    scanner = slot.scanner_for(sha)
    assert isinstance(scanner, Recorder) and bytes(scanner.fed) == b"whole" * 300_000
    assert slot.scanner_for(hashlib.sha256(b"other bytes").hexdigest()) is None
    assert slot.scanner_for(None) is None
    # Outside the context, downloads are not scanned.
    with DownloadFile(tmp_path / "plain", "zip m@v1.0.0") as out:
        out.write_sync(b"abc")
    assert slot.scanner_for(out.sha256) is None


def test_a_file_upstream_copy_is_scanned_too(tmp_path: Path) -> None:
    """file:// upstreams copy the zip in a worker thread: the scan reaches it there (the context
    is carried into the thread) and the service gets the copy's scanner by its digest."""
    from modvault.module.zipstream import ZipStreamScan
    from modvault.sources.upstream import FileUpstream, UpstreamLimits

    at = tmp_path / "proxy" / "example.com" / "m" / "@v"
    at.mkdir(parents=True)
    with zipfile.ZipFile(at / "v1.0.0.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("example.com/m@v1.0.0/go.mod", "module example.com/m\n")
        zf.writestr("example.com/m@v1.0.0/m.go", "package m\n" * 1000)
    slot = ScanSlot(ZipStreamScan)

    async def main() -> str:
        source = FileUpstream((tmp_path / "proxy").as_uri(), UpstreamLimits())
        token = DOWNLOAD_SCAN.set(slot)
        try:
            return await source.zip("example.com/m", "v1.0.0", tmp_path / "out.zip")
        finally:
            DOWNLOAD_SCAN.reset(token)

    sha = asyncio.run(main())
    scan = slot.scanner_for(sha)
    assert isinstance(scan, ZipStreamScan) and len(scan.entries) == 2


def test_the_scan_runs_beside_the_write_not_after_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On the loop, a batch is scanned in its own lane while the writer lane writes and hashes
    it: a writer that cannot finish before the scan has seen the batch still completes (run one
    after the other in one thread, as before, this waits out the timeout and fails)."""
    seen = threading.Event()

    class Gate:
        def feed(self, chunk: bytes) -> None:
            seen.set()

    real_write = DownloadFile._write

    def write_after_the_scan(self: DownloadFile, chunk: bytes) -> None:
        assert seen.wait(10), "the scan waited for the write"
        real_write(self, chunk)

    monkeypatch.setattr(DownloadFile, "_write", write_after_the_scan)
    slot = ScanSlot(Gate)

    async def main() -> DownloadFile:
        token = DOWNLOAD_SCAN.set(slot)
        try:
            async with DownloadFile(tmp_path / "out", "zip m@v1.0.0") as out:
                await out.write(b"b" * BATCH)
                await out.write(b"c" * 10)
            return out
        finally:
            DOWNLOAD_SCAN.reset(token)

    out = asyncio.run(main())
    assert (tmp_path / "out").read_bytes() == b"b" * BATCH + b"c" * 10
    assert isinstance(slot.scanner_for(out.sha256), Gate)


def test_a_failing_scan_lane_fails_the_download_and_closes_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scanner must not raise; if one does anyway, the download fails with it and leaves no open
    file or unretrieved error (the writer lane's batch is still waited for and closed)."""
    before = open_fds()

    class Broken:
        def feed(self, chunk: bytes) -> None:
            raise RuntimeError("scanner bug")

    async def main() -> None:
        token = DOWNLOAD_SCAN.set(ScanSlot(Broken))
        try:
            async with DownloadFile(tmp_path / "out", "zip m@v1.0.0") as out:
                for _ in range(3):
                    await out.write(b"d" * BATCH)
        finally:
            DOWNLOAD_SCAN.reset(token)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="scanner bug"):
            asyncio.run(main())
        gc.collect()
    assert open_fds() == before
