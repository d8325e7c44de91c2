"""``/api/v1/modules/...`` (publish) and ``/api/v1/blocks`` (block/unblock), and vanity go-get pages.

- ``PUT /api/v1/modules/{module}/@v/{version}``: the body is the module zip (at most
  ``max_zip_bytes``, streamed to a temp file); 201 when stored, 200 when identical bytes were already
  there, 409 for different bytes, 403 outside the publisher's ``publish`` patterns or the private
  patterns. Optional ``X-Modvault-Origin-Hash`` / ``X-Modvault-Origin-Ref`` headers (set by
  ``modvault publish --git``) go into the ``.info``'s ``Origin``.
- ``PUT /api/v1/blocks/{module}/@v/{version}`` with ``{"reason": "..."}``, ``DELETE`` the same path,
  ``GET /api/v1/blocks``.
- ``GET /{module}[/pkg]?go-get=1`` for a published module: the ``go-import`` meta tag with the ``mod``
  VCS pointing at this server (go.dev/ref/mod#serving-from-proxy), so a client in direct mode finds it.

Module paths and versions in these URLs are case-encoded as in the proxy protocol.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from modvault.cache.coordination.state import Change
from modvault.errors import BadRequest, Forbidden, ModvaultError, NotFound
from modvault.gate import GateError, block_version_async, read_blocks_async, unblock_version_async
from modvault.observability import metrics
from modvault.server.request import Request
from modvault.server.routes import BLOCK, PUBLISH, RouteTable
from modvault.server.routing import parse_module_path, parse_version
from modvault.sources.published import is_published, publish

if TYPE_CHECKING:
    from modvault.server.app import App

MODULES = "/api/v1/modules/"
BLOCKS = "/api/v1/blocks/"
MAX_JSON = 64 * 1024
_ORIGIN_VALUE = re.compile(r"[A-Za-z0-9._/@+\-]{1,200}")


def _module_version(req: Request, prefix: str) -> str:
    """Parse ``{prefix}{module}/@v/{version}``; keep both on the request; return the module."""
    rest = req.path[len(prefix):]
    head, sep, escaped_version = rest.partition("/@v/")
    if not sep or not escaped_version or "/" in escaped_version:
        raise NotFound(f"not found: expected {prefix}MODULE/@v/VERSION")
    module, _ = parse_module_path(head)
    version = parse_version(escaped_version)
    req.params = {"module": module, "version": version}
    req.target = f"{module}@{version}"
    return module


def register(app: App, table: RouteTable) -> None:
    api = ModulesApi(app)
    table.add(MODULES, api.publish, kind="publish", prefix=True, methods=("PUT",),
              permission=PUBLISH, target=lambda req: _module_version(req, MODULES))
    table.add(BLOCKS, api.block, kind="api", prefix=True, methods=("PUT",), permission=BLOCK,
              target=lambda req: _module_version(req, BLOCKS))
    table.add(BLOCKS, api.unblock, kind="api", prefix=True, methods=("DELETE",),
              permission=BLOCK, target=lambda req: _module_version(req, BLOCKS))
    table.add("/api/v1/blocks", api.list_blocks, kind="api", permission=BLOCK)
    app.fallback_pages.append(api.vanity)



_VANITY_HOST = re.compile(r"[a-z0-9\-]+(\.[a-z0-9\-]+)+")


def vanity_host(host_header: str) -> str:
    """The host name a client used (no port), when it can begin a module path; else ""."""
    host = host_header.strip().lower().rsplit(":", 1)[0] if not host_header.startswith("[") else ""
    return host if _VANITY_HOST.fullmatch(host) else ""

class ModulesApi:
    def __init__(self, app: App) -> None:
        self.app = app

    def _params(self, req: Request, prefix: str) -> tuple[str, str]:
        if req.params is None:
            _module_version(req, prefix)
        assert req.params is not None
        return req.params["module"], req.params["version"]

    def _require_auth(self, what: str) -> None:
        if self.app.settings.auth != "on":
            raise Forbidden(f"{what} through the API needs auth = on (an identity to record)")

    def _audit(self, req: Request, event: str, result: str, reason: str = "", **extra: object) -> None:
        ident = req.identity
        self.app.audit.record(event, result=result, identity=ident.name if ident else "",
                              role=ident.role if ident else "", client=req.client,
                              request_id=req.request_id, action=f"{req.method} {req.path[:300]}",
                              target=req.target, reason=reason, extra=extra)

    async def publish(self, req: Request) -> None:
        module, version = self._params(req, MODULES)
        app = self.app
        service = app.service
        tmp: Path = service.work.temp_path("publish-")
        try:
            self._require_auth("publishing")
            assert req.identity is not None
            origin = {}
            for header, field in (("x-modvault-origin-hash", "Hash"),
                                  ("x-modvault-origin-ref", "Ref")):
                value = req.headers.get(header)
                if value:
                    if not _ORIGIN_VALUE.fullmatch(value):
                        raise BadRequest(f"invalid {header} header")
                    origin[field] = value
            await req.body_to_file(tmp, app.settings.max_zip_bytes)
            result = await publish(service, module, version, tmp, publisher=req.identity.name,
                                   origin=origin)
        except ModvaultError as exc:
            metrics.PUBLISHES.labels(str(exc.status)).inc()
            self._audit(req, "publish", "denied" if exc.status in (401, 403) else "failed",
                        exc.message)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        metrics.PUBLISHES.labels("created" if result.created else "unchanged").inc()
        self._audit(req, "publish", "ok" if result.created else "unchanged",
                    zip_h1=result.zip_h1, mod_h1=result.mod_h1)
        req.send_json(201 if result.created else 200, {
            "module": module, "version": version, "created": result.created,
            "h1": result.zip_h1, "go.mod h1": result.mod_h1})

    async def _read_json(self, req: Request) -> dict[str, object]:
        raw = await req.read_body(MAX_JSON)
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            raise BadRequest("expected a JSON object") from None
        if not isinstance(doc, dict):
            raise BadRequest("expected a JSON object")
        return doc

    async def block(self, req: Request) -> None:
        module, version = self._params(req, BLOCKS)
        try:
            self._require_auth("blocking")
            doc = await self._read_json(req)
            reason = doc.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise BadRequest('a block needs a reason: {"reason": "..."}')
            assert req.identity is not None
            store = self.app.service.store
            b = await block_version_async(store, module, version, reason, req.identity.name)
        except ModvaultError as exc:
            self._audit(req, "block", "failed", exc.message)
            raise
        await self.app.service.announce(Change("block", module, version))  # every replica, now
        await self.app.service.gate.refresh()
        self._audit(req, "block", "ok", b.reason)
        req.send_json(200, {"module": module, "version": version, "reason": b.reason,
                            "blocked": True})

    async def unblock(self, req: Request) -> None:
        module, version = self._params(req, BLOCKS)
        try:
            self._require_auth("unblocking")
            store = self.app.service.store
            await unblock_version_async(store, module, version)
        except GateError as exc:
            self._audit(req, "unblock", "failed", str(exc))
            raise NotFound(str(exc)) from None
        except ModvaultError as exc:
            self._audit(req, "unblock", "failed", exc.message)
            raise
        await self.app.service.announce(Change("unblock", module, version))
        await self.app.service.gate.refresh()
        self._audit(req, "unblock", "ok")
        req.send_json(200, {"module": module, "version": version, "blocked": False})

    async def list_blocks(self, req: Request) -> None:
        blocks = await read_blocks_async(self.app.service.store)
        req.send_json(200, {"blocks": [
            {"module": b.module, "version": b.version, "reason": b.reason, "by": b.by,
             "time": b.time} for b in blocks.values()]})

    async def vanity(self, req: Request) -> bool:
        """``?go-get=1`` for a path inside a published module: the go-import meta tag."""
        if req.method not in ("GET", "HEAD") or "go-get=1" not in req.query_string.split("&"):
            return False
        path = req.path.strip("/")
        if not path or len(path) > 1000:
            return False
        elems = path.split("/")
        # The go command asks https://<first path element>/<rest>?go-get=1 (go.dev/ref/mod#vcs-find):
        # reached under the module's host name (DNS pointing it here), the path lacks the host.
        # Also accepted: the whole module path on this server's own name.
        bases = [elems]
        host = vanity_host(req.headers.get("host") or req.scope.authority or "")  # h2: :authority
        if host:
            bases.insert(0, [host, *elems])
        store = self.app.service.store
        module = ""
        for whole in bases:
            for n in range(len(whole), 0, -1):
                candidate = "/".join(whole[:n])
                if await is_published(store, candidate):
                    module = candidate
                    break
            if module:
                break
        if not module:
            return False
        policy = self.app.access_policy
        if policy is not None and (req.identity is None
                                   or not policy.allows(req.identity, "read", module)):
            return False  # as if it did not exist
        import html  # with its entity table (0.4 MiB): loaded by the first such page

        base = self.app.base_url(req)
        content = html.escape(f"{module} mod {base}", quote=True)
        body = (f'<!DOCTYPE html>\n<html><head><meta name="go-import" content="{content}">'
                f"</head><body>{html.escape(module)}: go get {html.escape(module)}</body></html>\n")
        req.send_bytes(200, [("content-type", "text/html; charset=utf-8"),
                             ("cache-control", req.cache_control("public, max-age=300"))],
                       body.encode())
        return True
