"""Filesystem store: one file per key under a root directory, written atomically.

Writes go to a temp file in ``<root>/.modvault/tmp`` (same filesystem), are fsynced, then renamed into
place, and the directory is fsynced: a crash leaves either the old state or the whole new file, and a
leftover temp file is never visible under a key.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_module
import tempfile
import uuid
from pathlib import Path

from modvault.storage.base import StoredObject

TMP_DIR = ".modvault/tmp"


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
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_module.S_ISREG(st.st_mode):
            return None
        return StoredObject(key, st.st_size, st.st_mtime, p)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with open(self.path(key), "rb") as fh:
            fh.seek(start)
            return fh.read(max(0, end - start))

    def temp_path(self) -> Path:
        return self.tmp / f"dl-{uuid.uuid4().hex}"

    def put_atomic(self, key: str, data: bytes | Path, *, overwrite: bool = True) -> StoredObject:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            src = data
            with open(src, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            fd, name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
            src = Path(name)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException:
                src.unlink(missing_ok=True)
                raise
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
                src.unlink(missing_ok=True)
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        st = dest.stat()
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
        probe = self.tmp / f"probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False
