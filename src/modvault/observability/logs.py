"""Structured logs: one JSON access-log line per request; never query strings or credentials."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

ACCESS = logging.getLogger("modvault.access")
LOG = logging.getLogger("modvault")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        else:
            doc["msg"] = record.getMessage()
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger("modvault")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def access(method: str, path: str, status: int, size: int, started: float, tier: str,
           upstream: str) -> None:
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    ACCESS.info("", extra={"fields": {
        "method": method, "path": path, "status": status, "bytes": size,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "cache": tier, "upstream": upstream,
    }})
