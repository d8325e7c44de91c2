"""A download's temp file, hashed as it is written: one pass over the bytes of a new zip.

The SHA-256 of a zip is its strong ETag once stored. Computing it while the bytes arrive, rather than
by reading the finished file again, saves a whole pass over a file that may be 500 MB; the store takes
the digest with the file (``put_if_absent(..., sha256=...)``).

On the event loop (``async with``), chunks are gathered into batches of about :data:`BATCH` bytes,
and each batch is written and hashed in a worker thread, one batch behind the loop: receiving the
next batch overlaps writing and hashing this one (both release the GIL), the loop never stalls on a
slow disk, and a thread hand-off costs once per batch, not once per 64 KiB read. Off the loop
(``with``, e.g. copying a local file in a thread), :meth:`write_sync` does the same inline.

A download may also be *scanned* as it is written: the caller who wants it (the service, for a new
zip: module/zipstream.py) sets :data:`DOWNLOAD_SCAN` to a :class:`ScanSlot` around the source's
``zip()``; every DownloadFile made meanwhile feeds a fresh scanner each batch and a clean finish
leaves (SHA-256, scanner) in the slot. On the loop the scan is a second lane, in its own thread
beside the writer's, one batch behind the loop too: it costs more than writing and hashing (it
inflates, checksums and hashes every entry), and run after them in one thread it made the loop wait
for the sum of both on each batch (a cold 5 MiB zip: 15 ms of the download's 26 ms here).
The digest ties the scan to the file: a failed attempt, a retry, or another source that wrote the
file without a DownloadFile cannot leave a scan that is taken for the bytes in it. (A context
variable, not a Source argument: every source and the chain stay as they are; a source that ignores
it costs the whole-file read the scan saves.)

A failure to write (disk full, read-only) is our storage's fault: StorageError (503), never the
upstream's, and it is not retried against another upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from modvault.errors import StorageError
from modvault.storage.writeback import WriteBehind

__all__ = ["BATCH", "DOWNLOAD_SCAN", "DownloadFile", "ScanSlot", "Scanner"]

BATCH = 1024 * 1024  # bytes handed to the lanes at once (two batches in memory at most)


class Scanner(Protocol):
    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the download (in order; must not raise)."""


class ScanSlot:
    """Makes a scanner for each download attempt and keeps the one of the last clean finish."""

    def __init__(self, factory: Callable[[], Scanner]) -> None:
        self.factory = factory
        self.result: tuple[str, Scanner] | None = None  # (SHA-256 hex of the bytes, scanner)

    def scanner_for(self, sha256: str | None) -> Scanner | None:
        """The scanner that read exactly the bytes whose digest is *sha256*, if any did."""
        if sha256 is None or self.result is None or self.result[0] != sha256:
            return None
        return self.result[1]


DOWNLOAD_SCAN: ContextVar[ScanSlot | None] = ContextVar("modvault_download_scan", default=None)


class DownloadFile:
    """Write a download to ``dest`` (created or truncated) and hash it on the way.

    After a clean exit, :attr:`sha256` is the hex digest and :attr:`size` the byte count of what
    was written. One writer at a time: the async :meth:`write` keeps at most one batch in flight.
    """

    def __init__(self, dest: Path, what: str) -> None:
        self.dest, self.what = dest, what
        self.size = 0
        self.sha256 = ""
        self._fh: BinaryIO | None = None
        self._hash = hashlib.sha256()
        # Held while a chunk is written: the file is closed only when no thread writes to it.
        self._lock = threading.Lock()
        self._pending: asyncio.Future[None] | None = None  # the writer lane's batch
        self._scanning: asyncio.Future[None] | None = None  # the scan lane's batch
        self._batch: list[bytes] = []
        self._batched = 0
        self._writeback = WriteBehind()
        self._slot = DOWNLOAD_SCAN.get()
        self._scanner = self._slot.factory() if self._slot is not None else None

    # -- off the event loop ------------------------------------------------------------------------

    def __enter__(self) -> DownloadFile:
        try:
            self._fh = open(self.dest, "wb")
        except OSError as exc:
            raise self._error(exc) from None
        return self

    def write_sync(self, chunk: bytes) -> None:
        self._write(chunk)
        if self._scanner is not None:
            self._scanner.feed(chunk)

    def _write_batch(self, chunks: list[bytes]) -> None:
        self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _scan_batch(self, chunks: list[bytes]) -> None:
        assert self._scanner is not None
        for chunk in chunks:
            self._scanner.feed(chunk)

    def _write(self, chunk: bytes) -> None:
        with self._lock:
            fh = self._fh
            if fh is None:
                raise self._error(None)
            try:
                fh.write(chunk)
                fh.flush()
            except OSError as exc:
                raise self._error(exc) from None
            self._hash.update(chunk)
            self.size += len(chunk)
            # The pages written so far start going to disk (storage/writeback.py, from a helper
            # thread): the fsync before the file becomes visible then has little left to do.
            self._writeback.grown(fh.fileno(), self.size)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close(raise_errors=exc_type is None)
        if exc_type is None:
            self.sha256 = self._hash.hexdigest()
            if self._slot is not None and self._scanner is not None:
                self._slot.result = (self.sha256, self._scanner)

    def _close(self, *, raise_errors: bool) -> None:
        with self._lock:
            fh, self._fh = self._fh, None
            if fh is None:
                return
            try:
                fh.close()
            except OSError as exc:
                if raise_errors:
                    raise self._error(exc) from None

    # -- on the event loop -------------------------------------------------------------------------

    async def __aenter__(self) -> DownloadFile:
        return self.__enter__()

    async def write(self, chunk: bytes) -> None:
        """Add *chunk*; a full batch waits for the previous one in each lane (raising the first
        failure, if any), then goes to the writer lane (and the scan lane, when scanned)."""
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        await self._settle()
        if self._batch:
            # One buffer per batch: a write and a hash update each per batch, not per chunk.
            # Each C call that releases the GIL has to take it back from the event loop, which
            # is busy receiving the next batch: fewer, longer calls wait less.
            batch, self._batch, self._batched = self._batch, [], 0
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._write_batch, batch))
            if self._scanner is not None:
                self._scanning = asyncio.ensure_future(asyncio.to_thread(self._scan_batch, batch))

    async def _settle(self) -> None:
        """Wait for the batch in flight in each lane (raising the first failure)."""
        for lane in ("_pending", "_scanning"):
            fut = getattr(self, lane)
            if fut is not None:
                setattr(self, lane, None)
                try:
                    await fut
                except BaseException:
                    setattr(self, lane, fut)  # still to be retrieved by _abandon
                    raise

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                await self._flush()
                await self._settle()
            except BaseException:
                self._abandon()
                raise
            self.__exit__(None, None, None)
            return
        self._abandon()

    def _abandon(self) -> None:
        """Failing or cancelled: drop the batch; a thread may still be writing the previous one
        (a cancelled wait does not stop it), so the file is closed after it, by the lock, in the
        executor, without holding up the failure here."""
        pending, self._pending = self._pending, None
        scanning, self._scanning = self._scanning, None
        self._batch = []
        if scanning is not None:  # the scan touches no file: only its outcome is retrieved
            if scanning.done():
                _consume(scanning)
            else:
                scanning.add_done_callback(_consume)
        if pending is None:
            self._close(raise_errors=False)
            return
        if pending.done():
            _consume(pending)
        else:
            pending.add_done_callback(_consume)
        with contextlib.suppress(RuntimeError):  # executor already shut down: GC closes it
            asyncio.get_running_loop().run_in_executor(None, self._close_quietly)

    def _close_quietly(self) -> None:
        self._close(raise_errors=False)

    def _error(self, exc: OSError | None) -> StorageError:
        why = "closed" if exc is None else exc.strerror or type(exc).__name__
        return StorageError(f"modvault store: cannot write the download of {self.what}: {why}")


def _consume(fut: asyncio.Future[None]) -> None:
    """Retrieve a dropped future's outcome (no 'exception was never retrieved' noise)."""
    if not fut.cancelled():
        fut.exception()
