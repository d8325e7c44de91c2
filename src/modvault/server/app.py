"""The RSGI application granian runs: Request -> route table -> middleware -> handler.

RSGI rather than ASGI because the hot path (a cached .info) is mostly header rendering and granian's
RSGI interface cuts that overhead roughly in half, and it offers zero-copy file and file-range
responses for zips. Routes are listed in :mod:`modvault.server.endpoints`, middleware in
:meth:`App.build_middleware`, rendering of artifacts lives in :mod:`modvault.server.render`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modvault.auth.policy import AccessPolicy
from modvault.config import SETTINGS_ENV, Settings
from modvault.errors import ModvaultError
from modvault.observability import logs, metrics
from modvault.observability.audit import AuditLog, audit_path
from modvault.ops.runtime import OpsRuntime
from modvault.server import endpoints
from modvault.server.accel import AccelRedirect
from modvault.server.clientaddr import ClientAddressResolver, parse_cidrs
from modvault.server.compress import GzipCache
from modvault.server.connreaper import ConnectionReaper
from modvault.server.drain import Drain
from modvault.server.hotpath import MAX_BODY_BYTES, MAX_ENTRIES, HotPath
from modvault.server.idlememory import IdleTrim, glibc_trim
from modvault.server.middleware import AccessLogMiddleware, Middleware, defines
from modvault.server.render import FileHandles, PrivateRenderer, Renderer
from modvault.server.request import Request, error_headers
from modvault.server.routes import RouteTable
from modvault.server.zipredirect import ZipRedirect, build_zip_redirect
from modvault.service import ModuleService
from modvault.ui.activity import RecentActivity
from modvault.wiring import build_ops, build_service

if TYPE_CHECKING:
    from modvault.auth.quick import QuickAccess

LOG = logging.getLogger("modvault.server")

STATE_REFRESH = 1.0
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")

RouteRegistrar = Callable[["App", RouteTable], None]
FallbackPage = Callable[[Request], Awaitable[bool]]


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: ModuleService | None = None
        self.ops: OpsRuntime | None = None
        self.reaper: ConnectionReaper | None = None
        self.started = time.time()
        self.access_log = logs.AccessLog(settings.access_log)
        self.audit = AuditLog(audit_path(settings.audit_log, settings.data_dir),
                              settings.audit_log_max_bytes, settings.audit_log_keep)
        # Recent upstream fetches and errors for the dashboard (modvault.ui).
        self.activity = RecentActivity()
        self.drain = Drain(port=settings.port)  # graceful SIGTERM: finish in-flight requests, then exit
        files = FileHandles()
        short = f"public, max-age={max(0, int(settings.mutable_ttl))}"
        gzip_cache = GzipCache()  # one per process, shared by both cache policies
        self.renderer = Renderer(short, files, gzip_cache)
        self.private_renderer = PrivateRenderer(short, files, gzip_cache)
        if settings.accel_redirect and settings.store == "fs":
            self.renderer.accel = self.private_renderer.accel = AccelRedirect(
                settings.accel_redirect, str(Path(settings.data_dir).resolve()))
        self.resolver = ClientAddressResolver(parse_cidrs(settings.trusted_proxies, "trusted_proxies"))
        self.request_class = type("AppRequest", (Request,), {"resolver": self.resolver})
        # Hooks for other rooms: extra route registrars and fallback pages (tried in order for
        # paths no route claims, e.g. vanity ?go-get=1 pages; return True when answered).
        self.extra_routes: list[RouteRegistrar] = []
        self.fallback_pages: list[FallbackPage] = []
        self.routes = RouteTable()
        self.middleware: list[Middleware] = []
        self.access_policy: AccessPolicy | None = None  # set when auth is on
        self.zip_redirect: ZipRedirect | None = None  # redirect_zips (server/zipredirect.py)
        self._refresher: asyncio.Task[None] | None = None
        self.idle_trim: IdleTrim | None = None
        self._before: list[Callable[[Request], Awaitable[None]]] = []
        self._after: list[Callable[[Request, float], None]] = []
        # Prebuilt answers for cached artifacts (server/hotpath.py). ``hot`` answers before
        # anything else, so it exists only while no middleware must see requests first. With
        # middleware (authentication, client allowlist), the two after it answer the requests
        # the middleware lets through, in place of the handler: ``hot_public`` those answered
        # with the public cache policy, ``hot_private`` authenticated ones.
        self.hot: HotPath | None = None
        self.hot_public: HotPath | None = None
        self.hot_private: HotPath | None = None
        # The middleware's decision for those two, made on granian's thread (auth/quick.py).
        self.quick: QuickAccess | None = None

    @property
    def service(self) -> ModuleService:
        assert self._service is not None, "service is built in __rsgi_init__"
        return self._service

    def setup(self, service: ModuleService) -> None:
        """Wire the service, the routes and the middleware (once per worker)."""
        self._service = service
        self.zip_redirect = build_zip_redirect(self.settings.redirect_zips,
                                               self.settings.redirect_zips_expiry, service.store)
        self.middleware = self.build_middleware()
        endpoints.register(self, self.routes)
        self._before = [m.before for m in self.middleware if defines(m, "before")]
        self._after = [m.after for m in self.middleware if defines(m, "after")]
        settings = self.settings
        if not self._before:
            self.hot = HotPath(self.renderer, service, self.access_log,
                               max_zip_bytes=settings.hot_zip_bytes,
                               max_zip_item=settings.memory_item_max_bytes)
            return
        # Requests that reach a handler without credentials: every one with auth off (a client
        # allowlist), those of the anonymous role with auth on.
        public = settings.auth != "on" or bool(settings.anonymous_role)
        private = settings.auth == "on"
        share = 2 if public and private else 1  # two tables keep one table's bounds

        def table(renderer: Renderer) -> HotPath:
            return HotPath(renderer, service, self.access_log, max_entries=MAX_ENTRIES // share,
                           max_body_bytes=MAX_BODY_BYTES // share,
                           max_zip_bytes=settings.hot_zip_bytes // share,
                           max_zip_item=settings.memory_item_max_bytes)

        self.hot_public = table(self.renderer) if public else None
        self.hot_private = table(self.private_renderer) if private else None
        from modvault.auth.quick import QuickAccess  # only with middleware

        self.quick = QuickAccess.build(self.middleware, self.resolver, self.hot_public,
                                       self.hot_private)

    def hot_for(self, req: Request) -> HotPath | None:
        """The prebuilt answers whose headers are those of this request's renderer."""
        if req.authenticated:
            return self.hot_private
        return self.hot if self.hot is not None else self.hot_public

    def build_middleware(self) -> list[Middleware]:
        """The ordered list: client address, authentication, authorization, rate limit, access log."""
        from modvault.auth.build import build_access_middleware, build_policy

        if self.settings.auth == "on":
            self.access_policy = build_policy(self.settings)
        return [*build_access_middleware(self.settings, self.service.store, self.audit,
                                         self.access_policy, self.service.coordination.rates),
                AccessLogMiddleware(self.access_log), self.activity]

    def base_url(self, req: Request) -> str:
        """This server's URL as the client reached it (for go-import meta tags)."""
        host = req.headers.get("host") or req.scope.authority or self.settings.listen
        if not _HOST.fullmatch(host):
            host = self.settings.listen
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://{host}"

    async def _refresh_state(self) -> None:
        """Pick up blocks made by CLI commands (or other replicas) within about a second."""
        gate = self.service.gate
        while True:
            await asyncio.sleep(STATE_REFRESH)
            try:
                await gate.refresh()
            except (OSError, ValueError, ModvaultError) as exc:
                LOG.warning("cannot reread the block list: %s", exc)

    def renderer_for(self, req: Request) -> Renderer:
        return self.private_renderer if req.authenticated else self.renderer

    # RSGI lifecycle hooks: one service per worker process and event loop.
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        logs.setup_logging(self.settings.log_level)
        service = build_service(self.settings)
        self.ops = build_ops(self.settings, service)
        self.setup(service)
        self.ops.start(loop)
        loop.call_soon(service.start)  # health probes, once the loop runs
        self._refresher = loop.create_task(self._refresh_state())
        self.idle_trim = IdleTrim(metrics.REQUESTS.total, lambda: self.drain.inflight, glibc_trim())
        self.idle_trim.start(loop)
        self.reaper = ConnectionReaper(
            self.settings.port, first_byte_timeout=self.settings.client_first_byte_timeout,
            idle_timeout=self.settings.client_idle_timeout,
            max_connections=self.settings.max_connections)
        self.reaper.start()
        self.drain.install(loop, self._aclose)

    def _tables(self) -> list[HotPath]:
        """The prebuilt tables: those that exist may answer on granian's thread."""
        return [t for t in (self.hot, self.hot_public, self.hot_private) if t is not None]

    async def _aclose(self) -> None:
        """The worker's clean-up when it stops after draining (see server/drain.py)."""
        for t in self._tables():
            t.close()  # what granian's thread answered is recorded, and it answers no more
        self.access_log.flush()
        if self._refresher is not None:
            self._refresher.cancel()
        if self.idle_trim is not None:
            self.idle_trim.stop()
        if self.reaper is not None:
            self.reaper.stop()
        if self.ops is not None:
            await self.ops.aclose()
        if self._service is not None:
            await self._service.aclose()
        for t in self._tables():  # an answer given on granian's thread while closing
            t.settle()
        self.access_log.flush()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        for t in self._tables():
            t.close()
        self.access_log.flush()
        if self._refresher is not None:
            self._refresher.cancel()
        if self.idle_trim is not None:
            self.idle_trim.stop()
        if self.reaper is not None:
            self.reaper.stop()
        if self._service is not None and not loop.is_closed() and not loop.is_running():
            if self.ops is not None:
                loop.run_until_complete(self.ops.aclose())
            loop.run_until_complete(self._service.aclose())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        """granian's entry when its scheduler is its own (server/scheduling.py not installed)."""
        hot = self.hot
        if hot is not None and hot.serve(scope, proto):
            return
        await self.answer(scope, proto)

    async def answer(self, scope: Any, proto: Any) -> None:
        """Every request that the prebuilt ``hot`` did not answer: route, middleware, handler."""
        if scope.proto != "http":
            return
        started = time.perf_counter()
        req = self.request_class(scope, proto)
        self.drain.inflight += 1
        reaper, peer = self.reaper, scope.client
        if reaper is not None:  # a connection with a request in flight is never cut as idle
            reaper.enter(peer)
        try:
            try:
                route = req.route = self.routes.match(req.method, req.path)
                req.kind = route.kind
                for before in self._before:
                    await before(req)
                hot = self.hot_private if req.authenticated else self.hot_public
                if hot is None or route is not self.routes.protocol or not hot.serve_request(req):
                    await route.handler(req)
            except ModvaultError as exc:
                req.send_exception(exc)
        except Exception:  # last resort: a bug must still answer a one-line 500, not a trace
            LOG.exception("unhandled error for %s (request %s)", req.path[:200], req.request_id)
            if req.status == 500 and req.size == 0:
                proto.response_bytes(500, error_headers(), b"internal error\n")
        finally:
            self.drain.inflight -= 1
            if reaper is not None:
                reaper.leave(peer)
        for after in self._after:
            after(req, started)


def create_app() -> App:
    """Factory granian calls in each worker; settings arrive through the environment."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.from_json(raw) if raw else Settings()
    return App(settings)
