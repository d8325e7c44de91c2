"""Filesystem store: one file per key under a root directory, written atomically.

The root is a valid ``file://`` GOPROXY. Writes go to a temp file in ``<root>/.modvault/tmp`` (same
filesystem), are fsynced, linked or renamed into place, and the directory is fsynced: a crash leaves
either the old state or the whole new file, never a partial object under a key.

The ETag (SHA-256 of the content) is computed once, when the object is written, and kept with it in
the extended attribute ``user.modvault.etag`` (set on the temp file before it becomes visible, so
content and ETag appear together). Where the filesystem refuses user xattrs, or for files placed by
hand, it is computed on first use and kept in ``.modvault/meta/<key>.etag``.

Compare-and-swap holds an flock(2) on a per-key lock file in ``.modvault/locks`` around
read-compare-rename: the store's own business, so that its users need no lock of their own.

Every OSError from our own disk (full, read-only, I/O error) becomes a StorageError (503) naming the
store and the cause, after cleaning up what the failed write created: it is never mistaken for an
upstream failure, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat as stat_module
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from modvault.errors import StorageError
from modvault.storage.base import (
    STREAM_CHUNK,
    ObjectInfo,
    StagedFile,
    VersionConflict,
    check_key,
    etag_for_digest,
    sha256_file,
)
from modvault.storage.workdir import sweep, temp_name

TMP_DIR = ".modvault/tmp"
META_DIR = ".modvault/meta"
LOCK_DIR = ".modvault/locks"
XATTR = "user.modvault.etag"
P = ParamSpec("P")
R = TypeVar("R")
# A name the file system cannot hold cannot exist in the store (not a storage failure).
_CANNOT_EXIST = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP})


def storage_error(op: str, key: str, exc: OSError) -> StorageError:
    """Our own disk failed: 503, in words that name the store, the object and the cause."""
    why = exc.strerror or type(exc).__name__
    return StorageError(f"modvault store: cannot {op} {key[:300]}: {why}")


def discard(path: Path) -> None:
    """Best-effort removal of a temp file: a failing cleanup must never hide the real error."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class FileBody:
    """An open file-backed object; reads run in threads (pread on a fresh descriptor)."""

    __slots__ = ("info",)

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info

    def _pread(self, start: int, end: int | None) -> bytes:
        assert self.info.local_path is not None
        stop = self.info.size if end is None else min(end, self.info.size)
        with open(self.info.local_path, "rb") as fh:
            return os.pread(fh.fileno(), max(0, stop - start), start)

    async def read(self, start: int = 0, end: int | None = None) -> bytes:
        return await asyncio.to_thread(self._pread, start, end)

    async def stream(self, start: int = 0, end: int | None = None,
                     chunk: int = STREAM_CHUNK) -> AsyncIterator[bytes]:
        assert self.info.local_path is not None
        stop = self.info.size if end is None else min(end, self.info.size)
        fh = await asyncio.to_thread(open, self.info.local_path, "rb")
        try:
            pos = start
            while pos < stop:
                block = await asyncio.to_thread(os.pread, fh.fileno(), min(chunk, stop - pos), pos)
                if not block:
                    return
                pos += len(block)
                yield block
        finally:
            fh.close()


class FileStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self.tmp = self.root / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)
        (self.root / LOCK_DIR).mkdir(parents=True, exist_ok=True)
        self._xattrs = True
        sweep(self.tmp)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key

    # -- reading -------------------------------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo | None:
        # On the hot path: plain strings, one stat() and one getxattr() call, no thread.
        if (not key or key[0] == "/" or "\x00" in key or "//" in key or "/../" in f"/{key}/"
                or "/./" in f"/{key}/" or "\\" in key):
            raise ValueError(f"invalid store key {key!r}")
        p = f"{self._root}/{key}"
        try:
            st = os.stat(p)
        except OSError as exc:
            if exc.errno in _CANNOT_EXIST:
                return None
            raise storage_error("read", key, exc) from None
        if not stat_module.S_ISREG(st.st_mode):
            return None
        etag = self._stored_etag(key, p)
        if etag is None:
            etag = await asyncio.to_thread(self._compute_etag, key, p)
        return ObjectInfo(key, st.st_size, etag, st.st_mtime, p)

    def _stat_sync(self, key: str) -> ObjectInfo | None:
        p = str(self.path(key))
        try:
            st = os.stat(p)
        except OSError as exc:
            if exc.errno in _CANNOT_EXIST:
                return None
            raise
        if not stat_module.S_ISREG(st.st_mode):
            return None
        etag = self._stored_etag(key, p) or self._compute_etag(key, p)
        return ObjectInfo(key, st.st_size, etag, st.st_mtime, p)

    def _stored_etag(self, key: str, p: str) -> str | None:
        if self._xattrs:
            try:
                return os.getxattr(p, XATTR).decode("ascii")
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    self._xattrs = False
                elif exc.errno == errno.ENOENT:
                    return None
        try:
            with open(f"{self._root}/{META_DIR}/{key}.etag", encoding="ascii") as fh:
                return fh.read().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _compute_etag(self, key: str, p: str) -> str:
        """A file without a stored ETag (placed by hand, or an older modvault): hash it once."""
        etag = etag_for_digest(sha256_file(p))
        if not self._set_xattr(p, etag):
            meta = self.root / META_DIR / f"{key}.etag"
            meta.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix=temp_name("meta-") + "-")
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(etag)
            os.replace(tmp, meta)
        return etag

    def _set_xattr(self, p: str | Path, etag: str) -> bool:
        if not self._xattrs:
            return False
        try:
            os.setxattr(p, XATTR, etag.encode("ascii"))
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self._xattrs = False
            return False

    async def open(self, key: str) -> FileBody | None:
        info = await self.stat(key)
        return None if info is None else FileBody(info)

    async def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        return await asyncio.to_thread(self._get_sync, key)

    def _get_sync(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        p = self.path(key)
        try:
            with open(p, "rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat_module.S_ISREG(st.st_mode):
                    return None
                data = fh.read()
        except IsADirectoryError:
            return None
        except OSError as exc:
            if exc.errno in _CANNOT_EXIST:
                return None
            raise storage_error("read", key, exc) from None
        # Content and ETag are read separately: recompute from the bytes we hold, which is cheap
        # for the small records get() is for, and can never pair new bytes with an old ETag.
        etag = etag_for_digest(hashlib.sha256(data).hexdigest())
        return data, ObjectInfo(key, len(data), etag, st.st_mtime, str(p))

    # -- writing -------------------------------------------------------------------------------

    def _staged(self, data: bytes | Path | StagedFile) -> tuple[Path, str, bool]:
        """A fsynced file in our tmp dir holding *data*, its ETag, and whether we made it (and so
        must remove it) rather than the caller. A StagedFile is neither hashed nor synced again."""
        if isinstance(data, (Path, StagedFile)):
            if isinstance(data, StagedFile):
                path, digest = data.path, data.sha256
            else:
                path, digest = data, sha256_file(data)
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
            if os.stat(path).st_dev == os.stat(self.tmp).st_dev:
                # Link the caller's temp file: the caller removes its own name afterwards.
                staged = self.tmp / temp_name("put-")
                os.link(path, staged)
                return staged, etag_for_digest(digest), True
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix=temp_name("put-") + "-")
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            return Path(name), etag_for_digest(digest), True
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix=temp_name("put-") + "-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            discard(Path(name))
            raise
        return Path(name), etag_for_digest(hashlib.sha256(data).hexdigest()), True

    def _finish(self, key: str, staged: Path, etag: str) -> None:
        """Metadata on the staged file before it becomes visible."""
        os.chmod(staged, 0o644)
        if not self._set_xattr(staged, etag):
            meta = self.root / META_DIR / f"{key}.etag"
            meta.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix=temp_name("meta-") + "-")
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(etag)
            os.replace(tmp, meta)

    def _put_if_absent_sync(self, key: str, data: bytes | Path | StagedFile
                            ) -> tuple[ObjectInfo, bool]:
        dest = self.path(key)
        existing = self._stat_sync(key)
        if existing is not None:
            return existing, False
        with _cleanup_on_error(dest.parent):
            return self._link_new(key, dest, data)

    def _link_new(self, key: str, dest: Path, data: bytes | Path | StagedFile
                  ) -> tuple[ObjectInfo, bool]:
        staged, etag, _ = self._staged(data)
        try:
            self._finish(key, staged, etag)
            # link() never replaces an existing name: first writer wins, atomically.
            try:
                os.link(staged, dest)
                written = True
            except FileExistsError:
                written = False
        finally:
            discard(staged)
        _fsync_dir(dest.parent)
        info = self._stat_sync(key)
        if info is None:  # deleted in between
            raise StorageError(f"modvault store: {key[:300]} vanished while being written")
        return info, written

    def _put_sync(self, key: str, data: bytes) -> ObjectInfo:
        dest = self.path(key)
        with _cleanup_on_error(dest.parent):
            return self._replace(key, dest, data)

    def _replace(self, key: str, dest: Path, data: bytes) -> ObjectInfo:
        staged, etag, _ = self._staged(data)
        try:
            self._finish(key, staged, etag)
            os.replace(staged, dest)
        except BaseException:
            discard(staged)
            raise
        _fsync_dir(dest.parent)
        st = dest.stat()
        return ObjectInfo(key, st.st_size, etag, st.st_mtime, str(dest))

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        fd = os.open(self.root / LOCK_DIR / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _put_if_version_sync(self, key: str, data: bytes, version: str | None) -> ObjectInfo:
        self.path(key)
        with self._key_lock(key):
            current = self._get_sync(key)
            have = None if current is None else current[1].etag
            if have != version:
                raise VersionConflict(f"{key}: at version {have}, not {version}")
            return self._put_sync(key, data)

    async def put_if_absent(self, key: str, data: bytes | Path | StagedFile
                            ) -> tuple[ObjectInfo, bool]:
        return await self._run(self._put_if_absent_sync, key, data)

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        return await self._run(self._put_sync, key, data)

    async def put_if_version(self, key: str, data: bytes, version: str | None) -> ObjectInfo:
        return await self._run(self._put_if_version_sync, key, data, version)

    @staticmethod
    async def _run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except OSError as exc:
            raise storage_error("write", str(args[0]), exc) from None

    async def delete(self, key: str) -> None:
        await self._run(self._delete_sync, key)

    def _delete_sync(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self.root / META_DIR / f"{key}.etag")

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list_sync, prefix)

    def _list_sync(self, prefix: str) -> builtins.list[str]:
        base = self.path(prefix.rstrip("/"))
        try:
            entries = sorted((e.name, e.is_file(follow_symlinks=False)) for e in os.scandir(base))
        except OSError as exc:
            if exc.errno in _CANNOT_EXIST:
                return []
            raise storage_error("list", prefix, exc) from None
        return [f"{prefix.rstrip('/')}/{n}" for n, is_file in entries if is_file]

    async def writable(self) -> bool:
        return await asyncio.to_thread(self._writable_sync)

    def _writable_sync(self) -> bool:
        """Can we write (readiness)? The probe file is removed whatever happens: on a full disk
        the create succeeds and the write fails, and each /readyz must not leave one behind."""
        probe = self.tmp / temp_name("probe-")
        try:
            probe.write_bytes(b"ok")
            return True
        except OSError:
            return False
        finally:
            discard(probe)

    async def aclose(self) -> None:
        return None


def fsync_file(path: Path) -> None:
    """Flush a finished temp file to disk (blocking), e.g. while it is being checked."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _cleanup_on_error(directory: Path) -> Iterator[None]:
    """Create *directory* (and parents); if what follows fails, remove the ones created here."""
    created = _make_parents(directory)
    try:
        yield
    except BaseException:
        for d in reversed(created):  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def _make_parents(directory: Path) -> list[Path]:
    """mkdir -p without recursion (deep keys must not hit Python's recursion limit); returns the
    directories it created, outermost first, so a failed write can remove them again."""
    missing: list[Path] = []
    d = directory
    while not d.is_dir():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    created: list[Path] = []
    try:
        for m in reversed(missing):
            try:
                m.mkdir()
            except FileExistsError:
                continue
            created.append(m)
    except OSError:
        for c in reversed(created):
            with contextlib.suppress(OSError):
                c.rmdir()
        raise
    return created
