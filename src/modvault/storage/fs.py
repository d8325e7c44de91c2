"""Filesystem store: one file per key under a root directory, written atomically.

Writes go to a temp file in ``<root>/.modvault/tmp`` (same filesystem), are fsynced, then renamed into
place, and the directory is fsynced: a crash leaves either the old state or the whole new file, and a
leftover temp file is never visible under a key.

Every OSError from our own disk (full, read-only, I/O error) becomes a StorageError (503) naming the
store and the cause, after cleaning up what the failed write created: it is never mistaken for an
upstream failure, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as stat_module
import tempfile
import uuid
from pathlib import Path

from modvault.errors import StorageError
from modvault.storage.base import StoredObject

TMP_DIR = ".modvault/tmp"
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


class FileStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self.tmp = self.root / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._clean_tmp()

    def _clean_tmp(self) -> None:
        """Temp files left by a crash are garbage: nothing refers to them."""
        for entry in self.tmp.iterdir():
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
            except OSError:
                pass

    def path(self, key: str) -> Path:
        # Keys are built from validated parts; this check is a second line of defence.
        if key.startswith("/") or "\x00" in key or any(p in ("", ".", "..") for p in key.split("/")):
            raise ValueError(f"invalid store key {key!r}")
        return self.root / key

    def stat(self, key: str) -> StoredObject | None:
        # On the hot path: plain strings and one stat() call, no pathlib.
        if key.startswith("/") or "\x00" in key or "/../" in f"/{key}/" or "/./" in f"/{key}/" \
                or "//" in key:
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
        return StoredObject(key, st.st_size, st.st_mtime, p)

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            raise storage_error("read", key, exc) from None

    def read_range(self, key: str, start: int, end: int) -> bytes:
        try:
            with open(self.path(key), "rb") as fh:
                fh.seek(start)
                return fh.read(max(0, end - start))
        except OSError as exc:
            raise storage_error("read", key, exc) from None

    def temp_path(self) -> Path:
        return self.tmp / f"dl-{uuid.uuid4().hex}"

    def put_atomic(self, key: str, data: bytes | Path, *, overwrite: bool = True) -> StoredObject:
        dest = self.path(key)
        created: list[Path] = []
        src: Path | None = data if isinstance(data, Path) else None
        try:
            created = _make_parents(dest.parent)
            if isinstance(data, Path):
                with open(data, "rb+") as fh:
                    os.fsync(fh.fileno())
            else:
                fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
                src = Path(name)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            assert src is not None
            os.chmod(src, 0o644)
            written = True
            if overwrite:
                os.replace(src, dest)
            else:
                # link() never replaces an existing name: first writer wins, atomically.
                try:
                    os.link(src, dest)
                except FileExistsError:
                    written = False
                finally:
                    discard(src)
            dir_fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            st = dest.stat()
        except OSError as exc:
            if src is not None and not isinstance(data, Path):
                discard(src)
            for d in reversed(created):  # directories this failed write made, deepest first
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise storage_error("write", key, exc) from None
        return StoredObject(key, st.st_size, st.st_mtime, str(dest), written)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix.rstrip("/"))
        try:
            names = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [f"{prefix.rstrip('/')}/{n}" for n in names if (base / n).is_file()]

    def writable(self) -> bool:
        """Can we write (readiness)? The probe file is removed whatever happens: on a full disk
        the create succeeds and the write fails, and each /readyz must not leave one behind."""
        probe = self.tmp / f"probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"ok")
            return True
        except OSError:
            return False
        finally:
            discard(probe)


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
