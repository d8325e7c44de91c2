"""The routes modvault answers, and their handlers. ``register`` is THE list of routes: add yours there.

Handlers take a :class:`~modvault.server.request.Request`, answer through it, and raise
:class:`~modvault.errors.ModvaultError` values for errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from modvault.api import modules as api_modules
from modvault.auth.policy import ALL_PRIVATE
from modvault.errors import NotFound
from modvault.module.errors import ModuleError
from modvault.module.path import unescape_path
from modvault.observability import metrics, status
from modvault.observability.prom import CONTENT_TYPE_LATEST, generate_latest
from modvault.ops.http import NDJSON, index_body, refresh_body
from modvault.server.ranges import accepts_gzip
from modvault.server.request import TEXT, Request
from modvault.server.routes import METRICS, PUBLIC, PUBLISH, READ, Route, RouteTable
from modvault.server.routing import parse_artifact_path
from modvault.supply import api as supply_api
from modvault.ui import routes as ui_routes

if TYPE_CHECKING:
    from modvault.server.app import App


def artifact_target(req: Request) -> str:
    """The module a protocol request is about (parses and keeps the ref for the handler)."""
    ref = req.ref = parse_artifact_path(req.path)
    req.kind = ref.kind.value
    return ref.module


def sumdb_target_for(app: App) -> Callable[[Request], str]:
    def sumdb_target(req: Request) -> str:
        rest = req.path[len("/sumdb/"):]
        name, _, tail = rest.partition("/")
        if tail.startswith("lookup/"):
            escaped, _, version = tail[len("lookup/"):].rpartition("@")
            try:
                module = unescape_path(escaped)
            except ModuleError:
                raise NotFound(f"invalid module path in lookup: {escaped[:200]!r}") from None
            req.target = f"{module}@{version}"
            return module
        private = app.service.checksums.private
        if private is not None and name == private.name and tail != "supported":
            return ALL_PRIVATE
        return ""
    return sumdb_target


def register(app: App, table: RouteTable) -> None:
    """Every route of the server. Keep this the one place routes are listed."""
    h = Handlers(app)
    table.add("/healthz", h.healthz, kind="health", permission=PUBLIC)
    table.add("/readyz", h.readyz, kind="health", permission=PUBLIC)
    table.add("/metrics", h.metrics, kind="metrics", permission=METRICS)
    # "/" and /ui/...: the dashboard (modvault.ui), admin-only when authentication is on.
    ui_routes.register(app, table, app.activity)
    table.add("/index", h.index, kind="index", permission=READ, target=lambda req: ALL_PRIVATE)
    table.add("/api/v1/refresh/", h.refresh, kind="api", prefix=True, methods=("POST",),
              permission=PUBLISH, target=lambda req: req.path[len("/api/v1/refresh/"):])
    table.add("/sumdb/", h.sumdb, kind="sumdb", prefix=True, permission=READ,
              target=sumdb_target_for(app))
    table.set_protocol(Route("", h.artifact, "invalid", permission=READ, target=artifact_target))
    table.set_fallback(Route("", h.fallback, "other", permission=PUBLIC))
    supply_api.register(app, table)  # provenance, attestation key, SBOM
    status.register(app, table)  # /api/v1/status
    api_modules.register(app, table)  # publish, blocks, vanity pages
    # Later rooms register here too.
    for extra in app.extra_routes:
        extra(app, table)


class Handlers:
    def __init__(self, app: App) -> None:
        self.app = app

    async def artifact(self, req: Request) -> None:
        ref = req.ref
        if ref is None:
            artifact_target(req)
            ref = req.ref
            assert ref is not None
        app = self.app
        art = await app.service.get(ref)
        req.tier, req.upstream = art.tier, art.upstream
        if art.blob is not None and app.zip_redirect is not None \
                and await app.zip_redirect.answer(req, art):
            return
        renderer = app.renderer if req.identity is None else app.renderer_for(req)
        await renderer._render(req, req.proto, art, req)
        if req.method != "GET" or req.status not in (200, 206):
            return
        hot = app.hot_for(req)
        if hot is not None:
            hot.learn(req.path, ref, art, "accept-encoding" in req.headers
                      and accepts_gzip(req.headers.get("accept-encoding")))

    async def healthz(self, req: Request) -> None:
        req.send_bytes(200, [("content-type", TEXT), ("cache-control", "no-store")], b"ok\n")

    async def readyz(self, req: Request) -> None:
        ok, why = await self.app.service.ready()
        metrics.READINESS_CHECKS.labels("ready" if ok else "not_ready").inc()
        req.send_bytes(200 if ok else 503, [("content-type", TEXT), ("cache-control", "no-store")],
                       (why + "\n").encode())

    async def metrics(self, req: Request) -> None:
        body = generate_latest(metrics.REGISTRY)
        req.send_bytes(200, [("content-type", CONTENT_TYPE_LATEST), ("cache-control", "no-store")],
                       body)

    async def sumdb(self, req: Request) -> None:
        """``/sumdb/<name>/...``: our own private database first, else a proxied one."""
        service = self.app.service
        rest = req.path[len("/sumdb/"):]
        if not service.gate.loaded:
            await service.gate.refresh()
        if service.gate.active and "/lookup/" in rest:  # blocked versions: refused here too
            escaped, _, version = rest.split("/lookup/", 1)[1].rpartition("@")
            with contextlib.suppress(ModuleError):
                service.gate.check(unescape_path(escaped), version)
        checksums = service.checksums
        private, proxy = checksums.private, checksums.proxy
        if private is not None and rest.startswith(private.name + "/"):
            resp = await private.handle(rest[len(private.name) + 1:],
                                        ensure=service.ensure_recorded)
        else:
            routed = proxy.route(rest) if proxy is not None else None
            if proxy is None or routed is None:
                raise NotFound(f"checksum database not proxied here: /sumdb/{rest[:200]}")
            resp = await proxy.handle(*routed)
        headers = [("content-type", resp.content_type),
                   ("cache-control", req.cache_control(resp.cache_control)),
                   ("content-length", str(len(resp.body)))]
        req.send_bytes(resp.status, headers, resp.body)

    async def index(self, req: Request) -> None:
        """The /index feed (modvault.ops): every module version the store holds."""
        assert self.app.ops is not None
        body = await index_body(self.app.ops, req.query_string)
        req.send_bytes(200, [("content-type", NDJSON), ("cache-control", "no-store"),
                             ("content-length", str(len(body)))], body)

    async def refresh(self, req: Request) -> None:
        """Push refresh of one module's list (modvault.ops), e.g. from a git host's tag webhook."""
        assert self.app.ops is not None
        body = await refresh_body(self.app.ops, req.path[len("/api/v1/refresh/"):])
        req.send_bytes(200, [("content-type", "application/json"), ("cache-control", "no-store"),
                             ("content-length", str(len(body)))], body)

    async def fallback(self, req: Request) -> None:
        for page in self.app.fallback_pages:
            if await page(req):
                return
        raise NotFound("not found")
