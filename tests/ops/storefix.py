"""Build small stores on disk in the GOPROXY layout for the operations tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from modvault.module.path import escape_path, escape_version


def put_version(root: Path, module: str, version: str, *, zip_bytes: int = 1000,
                mtime: float | None = None, with_zip: bool = True) -> list[Path]:
    d = root / escape_path(module) / "@v"
    d.mkdir(parents=True, exist_ok=True)
    ev = escape_version(version)
    files = [d / f"{ev}.info", d / f"{ev}.mod"]
    files[0].write_text(json.dumps({"Version": version, "Time": "2023-11-14T22:13:20Z"}))
    files[1].write_text(f"module {module}\n")
    if with_zip:
        files.append(d / f"{ev}.zip")
        files[2].write_bytes(b"z" * zip_bytes)
    if mtime is not None:
        for f in files:
            os.utime(f, (mtime, mtime))
    return files
