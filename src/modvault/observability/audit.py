"""The audit log: an append-only JSON-lines record of security-relevant events, rotated by size.

Every authentication failure, authorization denial, rate-limit hit, publish, block/unblock, token
create/revoke and admin action becomes one line: time, event, identity, role, client address, request
id, action, target, result and a reason. Lines are written with one ``O_APPEND`` write each, so
several worker processes (and CLI commands) may share the file; rotation (``audit.log`` ->
``audit.log.1`` ... ``.N``) is serialized by an advisory lock.

Secrets are kept out by structure (callers pass names, never credentials or headers), and every line
then goes through :func:`mask`, the last-resort pattern mask that the application log and the access
log use as well.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from modvault.sources.redact import redact_text

DEFAULT_AUDIT_LOG = ".modvault/audit/audit.log"
# modvault's own API tokens, wherever they appear.
_MODVAULT_TOKEN = re.compile(r"mvt_[A-Za-z0-9_\-]{8,}")


def mask(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``.

    The patterns cost ~40 µs for a one-line message, more than the 404 or 400 answer whose body it
    is, so a text :func:`suspect` passes is returned as it is, and a short suspect one (an error
    message naming an upstream URL, the same for each repetition of a request) is masked once and
    remembered (the last _MEMO_TEXTS texts of up to _MEMO_CHARS each)."""
    if not suspect(text):
        return text
    return _mask_always(text) if len(text) > _MEMO_CHARS else _mask_remembered(text)


def _mask_always(text: str) -> str:
    return redact_text(_MODVAULT_TOKEN.sub("mvt_***", text))


_MEMO_TEXTS, _MEMO_CHARS = 256, 512
_mask_remembered = functools.lru_cache(maxsize=_MEMO_TEXTS)(_mask_always)

# A word every match of mask()'s patterns contains, case-folded (sources/redact.py: the header
# names and scheme words, "://" of URL userinfo, the secret parameter names; mvt_ and eyJ).
_SUSPECT_WORDS = ("mvt_", "eyj", "://", "auth", "bearer", "basic", "token", "digest", "negotiate",
                  "pass", "pwd", "secret", "key", "sig", "credential")


def suspect(text: str) -> bool:
    """Whether ``mask`` might act on ``text``; when False, it would not. Substring tests on the
    case-folded text: a case-insensitive regex alternation of the same words cost ~30 µs per
    access-log line (more than the request it logs); this is about 1 µs. Any non-ASCII text is
    suspect: a case-insensitive pattern matches letters no ASCII word finds (a dotted capital I
    for "i", a Kelvin sign for "k")."""
    if not text.isascii():
        return True
    folded = text.lower()
    for word in _SUSPECT_WORDS:  # noqa: SIM110 (a loop: half the time of any() over a generator)
        if word in folded:
            return True
    return False


def mask_values(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: mask(v) if isinstance(v, str) else v for k, v in doc.items()}


def audit_path(settings_path: str, data_dir: str) -> Path:
    return Path(settings_path) if settings_path else Path(data_dir) / DEFAULT_AUDIT_LOG


class AuditLog:
    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, keep: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = max(1, keep)
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, *, result: str, identity: str = "", role: str = "",
               client: str = "", request_id: str = "", action: str = "", target: str = "",
               reason: str = "", extra: dict[str, Any] | None = None, **fields: Any) -> None:
        doc: dict[str, Any] = {
            "ts": round(time.time(), 3), "event": event, "result": result, "identity": identity,
            "role": role, "client": client, "request_id": request_id, "action": action,
            "target": target,
        }
        if reason:
            doc["reason"] = reason
        doc.update(extra or {})
        doc.update(fields)
        line = json.dumps(mask_values(doc), separators=(",", ":"), default=str) + "\n"
        self._write(line.encode())

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                size = 0
            if size + len(data) > self.max_bytes and size > 0:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def _rotate(self) -> None:
        lock = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:  # another process may have rotated while we waited
                if os.stat(self.path).st_size <= self.max_bytes // 2:
                    return
            except FileNotFoundError:
                return
            for n in range(self.keep, 0, -1):
                src = self.path if n == 1 else Path(f"{self.path}.{n - 1}")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(src, f"{self.path}.{n}")
        finally:
            os.close(lock)

    def files(self) -> list[Path]:
        """The current file and the rotated ones that exist, newest first."""
        out = [self.path] if self.path.exists() else []
        out += [p for n in range(1, self.keep + 1) if (p := Path(f"{self.path}.{n}")).exists()]
        return out
