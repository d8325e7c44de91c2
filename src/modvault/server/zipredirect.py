"""``redirect_zips``: answer a zip request with a redirect to a short-lived presigned URL, so the object
store sends the bytes and the replica only signs (the go command follows redirects).

Only plain GETs of zips held in a store that can presign (S3) are redirected; HEAD, ranges and
conditional requests, and stores with local files, are answered as before. The URL is valid for
``redirect_zips_expiry`` seconds and is answered ``no-store``: whoever holds it can read that one object
until it expires, so the redirect is sent only after authorization passed, like the bytes would be.
"""

from __future__ import annotations

import logging
from typing import Protocol

from modvault.artifact import Artifact, Kind
from modvault.errors import ModvaultError
from modvault.observability.metrics import REGISTRY
from modvault.observability.prom import Counter
from modvault.server.request import Request

LOG = logging.getLogger("modvault.server")
REDIRECTS = Counter("modvault_zip_redirects_total",
                    "Zip requests answered with a redirect to a presigned object-store URL",
                    registry=REGISTRY)


class Presigner(Protocol):
    async def presign_get(self, key: str, expires_seconds: int) -> str: ...


class ZipRedirect:
    def __init__(self, store: Presigner, expiry: int) -> None:
        self.store = store
        self.expiry = expiry

    async def answer(self, req: Request, art: Artifact) -> bool:
        """Send the redirect and return True, or False when the request is answered with bytes."""
        blob = art.blob
        if (art.kind is not Kind.ZIP or blob is None or req.method != "GET"
                or "range" in req.headers or "if-none-match" in req.headers):
            return False
        key = getattr(getattr(blob, "info", None), "key", None)
        if not isinstance(key, str):
            return False
        try:
            url = await self.store.presign_get(key, self.expiry)
        except ModvaultError as exc:  # cannot sign: send the bytes ourselves
            LOG.warning("redirect_zips: cannot presign %s (%s); serving it directly", key, exc.message)
            return False
        REDIRECTS.inc()
        req.send_bytes(302, [("location", url), ("cache-control", "no-store"),
                             ("content-type", "text/plain; charset=utf-8")], b"")
        return True


def build_zip_redirect(enabled: bool, expiry: int, store: object) -> ZipRedirect | None:
    if not enabled or not hasattr(store, "presign_get"):
        return None
    return ZipRedirect(store, expiry)
