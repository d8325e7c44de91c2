"""What granian hands an RSGI app per request, for in-process tests of the app and its prebuilt
answers: a plain GET's scope, and a protocol object that keeps the answers it is asked to send."""

from __future__ import annotations

from dataclasses import dataclass, field


class Scope:
    proto, method, http_version, client = "http", "GET", "1.1", "127.0.0.1:5555"
    query_string, scheme, authority = "", "http", None

    def __init__(self, path: str, headers: dict[str, str] | None = None) -> None:
        self.path, self.headers = path, headers or {}


@dataclass
class Proto:
    """The answers sent: (status, body) for bytes, (status, path) for files."""

    answers: list[tuple[int, bytes | str]] = field(default_factory=list)

    @property
    def status(self) -> int:
        """The last answer's status (0 before any)."""
        return self.answers[-1][0] if self.answers else 0

    def response_bytes(self, status: int, headers: object, body: bytes) -> None:
        self.answers.append((status, body))

    def response_file(self, status: int, headers: object, path: str) -> None:
        self.answers.append((status, path))

    def response_file_range(self, status: int, headers: object, path: str, start: int,
                            end: int) -> None:
        self.answers.append((status, path))

    def response_empty(self, status: int, headers: object) -> None:
        self.answers.append((status, b""))
