"""The local work directory: scratch space that is not the store.

Downloads in progress (``tmp/``) and git mirrors (``vcs/``) are per-replica working files: they
never go to a shared store, and a crash leaves nothing a reader could mistake for an artifact. With
the filesystem store the default work directory is ``<data_dir>/.modvault``, on the same filesystem
as the store, so a finished download is linked into place rather than copied.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

# A temp file of no known process untouched for this long is a leftover (a download keeps writing).
STALE_SECONDS = 3600.0


def temp_name(prefix: str) -> str:
    """``<prefix><pid>-<random>``: the pid tells a sweep whether the writer is still alive."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex}"


def _owner_alive(name: str) -> bool | None:
    """Whether the process that made temp file *name* runs; None when the name has no pid."""
    _, sep, rest = name.partition("-")
    pid = rest.split("-", 1)[0]
    if not sep or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped still answers kill(0): a zombie writes nothing
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def sweep(tmp: Path) -> None:
    """Remove temp files whose writer died (a crash, kill -9): nothing refers to them. Workers
    and respawned workers of a running process share the directory, so live writers' files stay."""
    cutoff = time.time() - STALE_SECONDS
    for entry in tmp.iterdir():
        try:
            alive = _owner_alive(entry.name)
            if alive or (alive is None and entry.lstat().st_mtime > cutoff):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        except OSError:
            pass


class WorkDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.tmp = self.root / "tmp"
        self.vcs = self.root / "vcs"
        self.tmp.mkdir(parents=True, exist_ok=True)
        sweep(self.tmp)

    def temp_path(self, prefix: str = "dl-") -> Path:
        """A fresh name for a download in progress; the caller creates and removes the file."""
        return self.tmp / temp_name(prefix)


def default_work_dir(data_dir: str, work_dir: str) -> Path:
    return Path(work_dir) if work_dir else Path(data_dir) / ".modvault"
