"""Structured logs: JSON lines for application logs, and one access-log line per request (never query
strings or credentials)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from typing import Any

from modvault.observability.audit import mask


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        if record.exc_info:
            doc["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(doc, separators=(",", ":"))


def emit(level: str, logger: str, msg: str) -> None:
    """One JSON line on stderr whatever the configured level (start-up and shutdown lines)."""
    record = logging.LogRecord(logger, getattr(logging, level.upper()), "", 0, msg, None, None)
    sys.stderr.write(JSONFormatter().format(record) + "\n")
    sys.stderr.flush()


def granian_log_config() -> dict[str, Any]:
    """granian's logging dictconfig: its own lines as JSON on stderr, like ours."""
    handler = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "modvault.observability.logs.JSONFormatter"}},
        "handlers": {"console": handler, "access": dict(handler)},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "modvault": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger("modvault")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


_SAFE_PATH = re.compile(r"[A-Za-z0-9./@!+_~%:=,;-]*")
# The general path's lines: the fixed parts of the last _MEMO_LINES distinct ones, for paths of up
# to _MEMO_PATH characters (a bound on the memo's memory, whatever clients send).
_MEMO_LINES, _MEMO_PATH = 1024, 256


class AccessLog:
    """One JSON line per request, buffered and written straight to a file descriptor.

    The logging module costs more per record than the whole cached-.info request path, so access
    lines bypass it: lines are formatted with an f-string (json.dumps only for unusual paths) and
    written in batches, at most ``flush_interval`` seconds late, or sooner when the buffer fills.

    Credentials are kept out where a line's parts are made (:meth:`fixed_parts`): each text that
    comes from outside (method, path, upstream) goes through :func:`mask`, which passes texts
    without a suspect word at once and remembers its answer for short suspect ones. The other
    fields are numbers, the HTTP version and constants. Masking the values (not a finished line
    or batch) keeps each line JSON, and costs the prebuilt hot path nothing per request: it makes
    an entry's parts once. A module path with a suspect word in it (``sigs.k8s.io/...``,
    ``golang.org/x/oauth2``, ``.../go-digest``) is then no dearer to log than any other; masked
    again at every flush, such a line cost seven times a whole cached hit.
    """

    def __init__(self, enabled: bool, fd: int = 2, flush_interval: float = 0.1,
                 max_buffer: int = 64 * 1024) -> None:
        self.enabled = enabled
        self.fd = fd
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self._buf: list[str] = []
        self._size = 0
        self._scheduled = False
        self._parts: dict[tuple[str, str, int, int, str, str], tuple[str, str]] = {}

    def __call__(self, method: str, path: str, status: int, size: int, started: float, tier: str,
                 upstream: str, http: str = "1.1") -> None:
        """A line of the general path: its fixed parts are remembered like a prebuilt answer's
        (the masks and the formatting cost more than the rest of a cached answer)."""
        if not self.enabled:
            return
        key = (method, path, status, size, tier, upstream)
        parts = self._parts.get(key)
        if parts is None:
            parts = self.fixed_parts(method, path, status, size, tier, upstream)
            if len(path) <= _MEMO_PATH:
                if len(self._parts) >= _MEMO_LINES:
                    self._parts.clear()  # cheaper than finding the oldest, the same bound
                self._parts[key] = parts
        self.line(http, parts[0], parts[1], started)

    @staticmethod
    def fixed_parts(method: str, path: str, status: int, size: int, tier: str,
                    upstream: str) -> tuple[str, str]:
        """The parts of a line that do not change between two identical requests, masked: what
        follows the HTTP version up to the duration, and what follows the duration."""
        path = mask(path)
        # Letters alone are never masked (every pattern of mask() needs a non-letter), nor is
        # an empty text.
        jmethod = f'"{method}"' if method.isalpha() else json.dumps(mask(method))
        jupstream = json.dumps(mask(upstream)) if upstream else '""'
        jpath = f'"{path}"' if _SAFE_PATH.fullmatch(path) else json.dumps(path)
        return (f'","method":{jmethod},"path":{jpath},"status":{status},"bytes":{size},'
                f'"duration_ms":', f',"cache":"{tier}","upstream":{jupstream}}}\n')

    def line(self, http: str, middle: str, tail: str, started: float) -> None:
        """Append one line from its fixed parts (:meth:`fixed_parts`) and the request's timing."""
        self.line_at(http, middle, tail, time.time(), time.perf_counter() - started)

    def line_at(self, http: str, middle: str, tail: str, ts: float, elapsed: float) -> None:
        """:meth:`line` for a request answered at ``ts`` in ``elapsed`` seconds (an answer given
        on another thread, logged later on the loop's)."""
        line = (f'{{"ts":{ts:.3f},"level":"info","logger":"modvault.access","http":"'
                f'{http}{middle}{elapsed * 1000:.3f}{tail}')
        self._buf.append(line)
        self._size += len(line)
        if self._size >= self.max_buffer:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._buf:
            return
        data = "".join(self._buf).encode()
        self._buf.clear()
        self._size = 0
        with contextlib.suppress(OSError):
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
