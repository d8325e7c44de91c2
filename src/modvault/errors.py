"""Errors are values with an HTTP meaning.

Every failure that can reach a client is one of these; the server maps ``status`` to the response and
``message`` to a one-line ``text/plain`` body the go command shows to its user.
"""

from __future__ import annotations


class ModvaultError(Exception):
    """Base class: an error with an HTTP status and a one-line, user-facing message."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())


class BadRequest(ModvaultError):
    """The request itself is malformed (bad escape, non-canonical version, traversal)."""

    status = 400


class Unauthorized(ModvaultError):
    """No or bad credentials. The challenge makes the go command try .netrc / GOAUTH."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = [("www-authenticate", 'Basic realm="modvault"')]


class Forbidden(ModvaultError):
    """Known identity, wrong permissions, or a blocked/denied module: the gatekeeper's answer
    (the go command does not fall back to the next proxy on 403)."""

    status = 403


class Conflict(ModvaultError):
    status = 409


class TooManyRequests(ModvaultError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = [("retry-after", str(max(1, retry_after)))]


class NotFound(ModvaultError):
    """Not here; the go command may try elsewhere."""

    status = 404


class Gone(ModvaultError):
    """Known to be gone (404's stronger sibling in GOPROXY semantics)."""

    status = 410


class Unavailable(ModvaultError):
    """A source failed in a way other than not-found: bad gateway by default."""

    status = 502


class UpstreamTimeout(Unavailable):
    status = 504


class InvalidContent(Unavailable):
    """An upstream answered, but what it sent breaks the rules (bad JSON, bad zip...)."""


class StorageError(ModvaultError):
    """Our own store failed (disk full, read-only, I/O error): 503, never blamed on an upstream,
    never retried against one. The message names the store and the cause, never a secret."""

    status = 503


class CoordinationError(ModvaultError):
    """A step that is only safe with coordination (the private log's one writer) cannot get it
    because Redis is unreachable: refused with 503 rather than done unsafely."""

    status = 503


class SecurityError(Unavailable):
    """Content contradicts the checksum database. The message starts with SECURITY ERROR."""
