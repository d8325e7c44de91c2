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

from modvault.observability.audit import mask, mask_json_line, suspect


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


class AccessLog:
    """One JSON line per request, buffered and written straight to a file descriptor.

    The logging module costs more per record than the whole cached-.info request path, so access
    lines bypass it: lines are formatted with an f-string (json.dumps only for unusual paths) and
    written in batches, at most ``flush_interval`` seconds late, or sooner when the buffer fills.
    Lines whose fixed parts were checked once (:meth:`fixed_parts`, the prebuilt hot path) skip the
    last-resort credential scan; every other line is scanned at flush time.
    """

    def __init__(self, enabled: bool, fd: int = 2, flush_interval: float = 0.1,
                 max_buffer: int = 64 * 1024) -> None:
        self.enabled = enabled
        self.fd = fd
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self._buf: list[str] = []
        self._unchecked: list[int] = []  # indexes in _buf of lines not yet scanned for secrets
        self._size = 0
        self._scheduled = False

    def __call__(self, method: str, path: str, status: int, size: int, started: float, tier: str,
                 upstream: str, http: str = "1.1") -> None:
        if not self.enabled:
            return
        middle, tail = self.fixed_parts(method, path, status, size, tier, upstream)
        self.line(http, middle, tail, started, checked=False)

    @staticmethod
    def fixed_parts(method: str, path: str, status: int, size: int, tier: str,
                    upstream: str) -> tuple[str, str]:
        """The parts of a line that do not change between two identical requests: what follows
        the HTTP version up to the duration, and what follows the duration."""
        jpath = f'"{path}"' if _SAFE_PATH.fullmatch(path) else json.dumps(path)
        jmethod = f'"{method}"' if method.isalpha() else json.dumps(method)
        jupstream = json.dumps(upstream) if upstream else '""'
        return (f'","method":{jmethod},"path":{jpath},"status":{status},"bytes":{size},'
                f'"duration_ms":', f',"cache":"{tier}","upstream":{jupstream}}}\n')

    @staticmethod
    def safe(middle: str, tail: str) -> bool:
        """Whether fixed parts need no credential scan (callers check once, then pass checked)."""
        return not suspect(middle + tail)

    def line(self, http: str, middle: str, tail: str, started: float, checked: bool) -> None:
        """Append one line from its fixed parts and the request's timing; ``checked`` says the
        fixed parts passed :meth:`safe` (the other fields are numbers and the HTTP version)."""
        if not checked:
            self._unchecked.append(len(self._buf))
        line = (f'{{"ts":{time.time():.3f},"level":"info","logger":"modvault.access","http":"'
                f'{http}{middle}{(time.perf_counter() - started) * 1000:.3f}{tail}')
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
        # The last-resort credential mask: one scan per batch over the lines not checked before,
        # not per request; only lines that hold something it might remove are masked (value by
        # value, so they stay JSON).
        buf, unchecked = self._buf, self._unchecked
        if unchecked and suspect("".join([buf[i] for i in unchecked])):
            for i in unchecked:
                if suspect(buf[i]):
                    buf[i] = mask_json_line(buf[i])
        data = "".join(buf).encode()
        buf.clear()
        unchecked.clear()
        self._size = 0
        with contextlib.suppress(OSError):
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
