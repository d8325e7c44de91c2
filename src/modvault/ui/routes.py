"""Dashboard routes: ``/`` (overview), ``/ui/...`` pages, ``/ui/api/overview.json`` (live numbers for the
page's script) and ``/ui/static/...``. Every one asks for the ``admin`` permission (enforced when
authentication is on)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modvault.errors import NotFound
from modvault.server.routes import ADMIN, RouteTable
from modvault.ui.activity import RecentActivity
from modvault.ui.views import Dashboard, query_param

if TYPE_CHECKING:
    from modvault.server.app import App
    from modvault.server.request import Request

HTML = "text/html; charset=utf-8"
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
# Inline scripts are not used: the policy allows only our own files.
SECURITY = [("cache-control", "no-store"), ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer"),
            ("content-security-policy", "default-src 'self'; img-src 'self' data:; "
                                        "style-src 'self'; script-src 'self'; frame-ancestors 'none'")]
MODULE_PAGE = "/ui/module/"
FRESH_SEARCH = 5.0  # seconds a search may lag behind the store


def register(app: App, table: RouteTable, activity: RecentActivity) -> None:
    dash = Dashboard(app, activity)
    if app.ops is not None:
        app.ops.periodic.append(dash.sampler.sample)
    static_dir = Path(__file__).parent / "static"
    static = {name: (static_dir / name).read_bytes() for name in STATIC}

    def page(req: Request, body: bytes) -> None:
        req.send_bytes(200, [("content-type", HTML), ("content-length", str(len(body))), *SECURITY],
                       body)

    async def overview(req: Request) -> None:
        page(req, dash.render("overview.html", page="overview", o=dash.overview()))

    async def overview_json(req: Request) -> None:
        req.send_json(200, dash.overview(), [("cache-control", "no-store")])

    async def upstreams(req: Request) -> None:
        page(req, dash.render("upstreams.html", page="upstreams", upstreams=dash.upstreams()))

    async def activity_page(req: Request) -> None:
        page(req, dash.render("activity.html", page="activity",
                              fetches=list(reversed(activity.fetches)),
                              errors=list(reversed(activity.errors))))

    async def modules(req: Request) -> None:
        q = query_param(req.query_string, "q")
        ops = app.ops
        if ops is not None and time.monotonic() - ops.totals_at > FRESH_SEARCH:
            await ops.refresh_store()  # one walk at a time, shared with the index feed
        page(req, dash.render("modules.html", page="modules", q=q, results=dash.search(q)))

    async def module(req: Request) -> None:
        name = req.path[len(MODULE_PAGE):].strip("/")
        info = await asyncio.to_thread(dash.module, name)
        page(req, dash.render("module.html", page="modules", m=info))

    async def sumdb(req: Request) -> None:
        page(req, dash.render("sumdb.html", page="sumdb", s=dash.sumdb()))

    async def static_file(req: Request) -> None:
        name = req.path.rsplit("/", 1)[-1]
        if name not in static:
            raise NotFound("no such file")
        body = static[name]
        req.send_bytes(200, [("content-type", STATIC[name]), ("content-length", str(len(body))),
                             ("cache-control", "no-cache"), ("x-content-type-options", "nosniff")],
                       body)

    table.add("/", overview, kind="ui", permission=ADMIN)
    table.add("/ui/api/overview.json", overview_json, kind="ui", permission=ADMIN)
    table.add("/ui/upstreams", upstreams, kind="ui", permission=ADMIN)
    table.add("/ui/activity", activity_page, kind="ui", permission=ADMIN)
    table.add("/ui/modules", modules, kind="ui", permission=ADMIN)
    table.add(MODULE_PAGE, module, kind="ui", prefix=True, permission=ADMIN)
    table.add("/ui/sumdb", sumdb, kind="ui", permission=ADMIN)
    table.add("/ui/static/", static_file, kind="ui", prefix=True, permission=ADMIN)
