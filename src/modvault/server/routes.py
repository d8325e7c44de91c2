"""The route table: which handler answers a path, and what permission it needs.

Adding a route is one line in :func:`modvault.server.endpoints.register` (the single place where every
route is listed)::

    table.add("/api/v1/status", handler, kind="api", permission=ADMIN)           # exact path
    table.add("/api/v1/provenance/", handler, prefix=True, kind="api",
              permission=READ, target=module_after_prefix)                        # a path prefix

A handler is ``async def handler(req: Request) -> None`` and answers through ``req.send_*`` (or the
renderer for artifacts); it raises :class:`modvault.errors.ModvaultError` values for errors, which the
app maps to one-line answers. ``permission`` names what the identity needs (see
:mod:`modvault.auth.policy`); ``target(req)`` returns the module the request is about (or "" when the
route is not about one module) and may stash what it parsed on the request. Authorization runs after
routing and before the handler, so a handler never runs for a request it would refuse.

Lookup order: exact paths (a dict), then prefixes (longest first: ``/sumdb/``, ``/api/v1/``...), then
the module-proxy protocol (``/@v/`` or ``/@latest``), then the fallback (vanity ``?go-get=1`` pages and
404). Prefix routes can never shadow a module: a module path's first element holds a dot, and no
prefix route's first element does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modvault.errors import ModvaultError, NotFound

if TYPE_CHECKING:
    from modvault.server.request import Request

Handler = Callable[["Request"], Awaitable[None]]
Target = Callable[["Request"], str]

# Permissions a route may ask for (modvault.auth.policy gives them meaning).
PUBLIC = ""  # no identity needed (health checks)
READ = "read"
PUBLISH = "publish"
BLOCK = "block"
ADMIN = "admin"
METRICS = "metrics"


class MethodNotAllowed(ModvaultError):
    status = 405

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("method not allowed")
        self.headers = [("allow", ", ".join(allowed))]


def no_target(req: Request) -> str:
    return ""


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    handler: Handler
    kind: str = "other"  # the metrics label: info, zip, sumdb, api, health, ...
    methods: tuple[str, ...] = ("GET", "HEAD")
    permission: str = READ
    target: Target = field(default=no_target)
    prefix: bool = False


class RouteTable:
    def __init__(self) -> None:
        self.exact: dict[str, list[Route]] = {}
        self.prefixes: list[Route] = []
        self._prefix_tuple: tuple[str, ...] = ()
        self.protocol: Route | None = None
        self.fallback: Route | None = None

    def add(self, path: str, handler: Handler, *, kind: str = "other",
            methods: tuple[str, ...] = ("GET", "HEAD"), permission: str = READ,
            target: Target = no_target, prefix: bool = False) -> Route:
        """Register ``handler`` for ``path`` (or every path under it when ``prefix``).

        The same path may be registered several times with different methods."""
        route = Route(path, handler, kind, methods, permission, target, prefix)
        if prefix:
            if not path.startswith("/") or not path.endswith("/"):
                raise ValueError(f"prefix route {path!r} must start and end with '/'")
            if "." in path.split("/")[1]:
                raise ValueError(f"prefix route {path!r} would shadow module paths")
            self.prefixes.append(route)
            self.prefixes.sort(key=lambda r: -len(r.path))
            self._prefix_tuple = tuple({r.path for r in self.prefixes})
        else:
            self.exact.setdefault(path, []).append(route)
        return route

    def set_protocol(self, route: Route) -> None:
        """The module-proxy protocol route: any path with ``/@v/`` or ending in ``/@latest``."""
        self.protocol = route

    def set_fallback(self, route: Route) -> None:
        """What answers every other path (vanity pages, 404)."""
        self.fallback = route

    def match(self, method: str, path: str) -> Route:
        """The route for ``method path``; raises MethodNotAllowed or NotFound."""
        candidates = self.exact.get(path)
        if candidates is None:
            if self._prefix_tuple and path.startswith(self._prefix_tuple):
                found = [r for r in self.prefixes if path.startswith(r.path)]
                # Several prefixes may match: the longest wins, with all its methods.
                candidates = [r for r in found if r.path == found[0].path]
            else:
                route = self.protocol
                if route is None or ("/@v/" not in path and not path.endswith("/@latest")):
                    route = self.fallback
                    if route is None:
                        raise NotFound("not found")
                if method in route.methods:
                    return route
                raise MethodNotAllowed(route.methods)
        for route in candidates:
            if method in route.methods:
                return route
        allowed: list[str] = []
        for route in candidates:
            allowed.extend(m for m in route.methods if m not in allowed)
        raise MethodNotAllowed(tuple(allowed))
