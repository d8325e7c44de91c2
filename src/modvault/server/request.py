"""Request: one HTTP request as every layer of the server sees it.

It wraps granian's RSGI scope and protocol and carries what the middleware learns on the way (client
address with trusted proxies applied, identity, request id, the parsed artifact ref) and what the
response was (status, size, cache tier, upstream), for metrics, the access log and the audit log.

Everything not needed by the cached-artifact hot path is computed lazily: with auth off a request
costs one object and no parsing beyond the path.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modvault.errors import BadRequest, ModvaultError
from modvault.observability.audit import mask

if TYPE_CHECKING:
    from modvault.artifact import ArtifactRef
    from modvault.auth.identity import Identity
    from modvault.server.clientaddr import ClientAddressResolver

TEXT = "text/plain; charset=utf-8"
Headers = list[tuple[str, str]]

LOG = logging.getLogger("modvault.server")
_ids = itertools.count(1)
_ID_PREFIX = f"{os.getpid():x}-{os.urandom(3).hex()}-"


class PayloadTooLarge(ModvaultError):
    status = 413


def peer_address(client: object) -> str:
    """The address in granian's ``scope.client`` ("host:port", "[v6]:port"), without the port."""
    text = str(client or "")
    host = text.rsplit(":", 1)[0] if ":" in text else text
    return host.strip("[]")


def error_headers() -> Headers:
    return [("content-type", TEXT), ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff")]


class Request:
    """The request, plus the facts about its answer that logs and metrics need."""

    # Class-level defaults: a request only pays for the attributes it sets (the hot path sets four).
    identity: Identity | None = None
    ref: ArtifactRef | None = None
    route: Any = None
    kind = "other"  # the metrics label
    status = 500
    size = 0
    tier = ""
    upstream = ""
    _client: str | None = None
    _request_id: str | None = None
    _target: str | None = None
    params: dict[str, str] | None = None  # what a route's target parsed from the path
    # Set per application (App makes a subclass with its own resolver).
    resolver: ClientAddressResolver | None = None

    def __init__(self, scope: Any, proto: Any) -> None:
        self.scope = scope
        self.proto = proto
        self.method: str = scope.method
        self.path: str = scope.path

    @property
    def target(self) -> str:
        """What the request is about (module or module@version), for the audit log."""
        if self._target is None:
            ref = self.ref
            if ref is None:
                return ""
            self._target = f"{ref.module}@{ref.version}" if ref.version else ref.module
        return self._target

    @target.setter
    def target(self, value: str) -> None:
        self._target = value

    # -- what was asked --------------------------------------------------------------------

    @property
    def headers(self) -> Any:
        """granian's header map: ``in``, ``get(name)``, names in lower case."""
        return self.scope.headers

    @property
    def query_string(self) -> str:
        return str(self.scope.query_string or "")

    @property
    def http_version(self) -> str:
        return str(self.scope.http_version)

    @property
    def peer(self) -> str:
        """The socket peer's address (without port)."""
        return peer_address(self.scope.client)

    @property
    def client(self) -> str:
        """The client's address: the socket peer, or from X-Forwarded-For when the peer is a
        trusted proxy."""
        if self._client is None:
            peer = self.peer
            self._client = (self.resolver.resolve(peer, self.headers.get("x-forwarded-for"))
                            if self.resolver is not None else peer)
        return self._client

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            self._request_id = _ID_PREFIX + str(next(_ids))
        return self._request_id

    @property
    def authenticated(self) -> bool:
        return self.identity is not None and not self.identity.anonymous

    # -- the body --------------------------------------------------------------------------

    def _declared_length(self, limit: int) -> int | None:
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        if not raw.isdigit():
            raise BadRequest("invalid Content-Length")
        n = int(raw)
        if n > limit:
            raise PayloadTooLarge(f"request body of {n} bytes exceeds the limit of {limit} bytes")
        return n

    async def read_body(self, limit: int) -> bytes:
        """The whole body, refused with 413 past ``limit`` bytes (never buffered beyond it)."""
        self._declared_length(limit)
        parts: list[bytes] = []
        total = 0
        async for chunk in self.proto:
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            parts.append(bytes(chunk))
        return b"".join(parts)

    async def body_to_file(self, path: Path, limit: int) -> int:
        """Stream the body into ``path`` (created), at most ``limit`` bytes; returns the size."""
        self._declared_length(limit)
        total = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            async for chunk in self.proto:
                total += len(chunk)
                if total > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
        finally:
            os.close(fd)
        return total

    # -- answering -------------------------------------------------------------------------

    def send_bytes(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        if self.method == "HEAD":
            self.proto.response_empty(status, headers)
            return
        self.size = len(body)
        self.proto.response_bytes(status, headers, body)

    def send_text(self, status: int, text: str, extra: Headers | None = None) -> None:
        headers = [("content-type", TEXT), ("cache-control", self.cache_control("no-store")),
                   *(extra or [])]
        self.send_bytes(status, headers, text.encode())

    def send_json(self, status: int, doc: Any, extra: Headers | None = None) -> None:
        body = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
        headers = [("content-type", "application/json"), ("cache-control", "no-store"),
                   *(extra or [])]
        self.send_bytes(status, headers, body)

    def send_error(self, status: int, message: str, extra: Headers | None = None) -> None:
        """A one-line text/plain error body (what the go command shows its user)."""
        body = (mask(message.replace("\n", " ")[:1000]) + "\n").encode()
        self.status, self.size = status, len(body)
        if status >= 500:
            # The reason of every 5xx reaches the log (the access line only has the status); the
            # client gets the id to quote.
            rid = self.request_id
            LOG.warning("%s %s answered %d: %s (request %s)", self.method, self.path[:300], status,
                        body.decode("utf-8", "replace").rstrip("\n"), rid)
            extra = [*(extra or []), ("x-request-id", rid)]
        self.proto.response_bytes(status, error_headers() + (extra or []), body)

    def send_exception(self, exc: ModvaultError) -> None:
        self.send_error(exc.status, exc.message, getattr(exc, "headers", None))

    def cache_control(self, public_value: str) -> str:
        """``public_value``, or ``private`` for answers to authenticated requests."""
        if self.authenticated and public_value != "no-store":
            return "private" + public_value[public_value.index(","):] if "," in public_value \
                else "private"
        return public_value
