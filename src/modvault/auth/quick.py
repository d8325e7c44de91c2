"""The access middleware's decision for a prebuilt answer, made at once on granian's thread.

With auth on or a client allowlist, every request used to take the general path before its
prebuilt answer: an asyncio Task on the loop's thread, the request object, each middleware
awaited in turn (bench/README.md: about twice the instructions of the answer alone). For a GET of
a path a prebuilt table holds, :class:`QuickAccess` makes the same decision as the middleware,
from what the middleware has already established, and lets the table answer on granian's thread
(``HotPath.serve_now``, server/scheduling.py). It declines, and the general path decides, audits
and answers exactly as before, whenever it could not be sure to agree:

- credentials not verified a moment ago (``AuthenticationMiddleware.remembered``: the same
  memory, expiry and token-record version as the middleware's own);
- any refusal (client allowlist, a role not usable from this address, no read permission), so
  every denial is still audited and counted by the middleware;
- an identity with a rate limit (the buckets are the loop's);
- a middleware it does not know: then it is not built at all.

It only reads what the loop's thread owns (the middleware's memory of verified credentials, the
policy, the prebuilt tables); what an answer records is queued by the table, as with auth off.
"""

from __future__ import annotations

import time
from typing import Any

from modvault.auth.identity import Identity
from modvault.auth.middleware import (
    AuthenticationMiddleware,
    AuthorizationMiddleware,
    ClientAllowMiddleware,
    RateLimitMiddleware,
)
from modvault.server.clientaddr import ClientAddressResolver, in_networks
from modvault.server.hotpath import HotPath
from modvault.server.middleware import AccessLogMiddleware, Middleware, defines
from modvault.server.request import peer_address
from modvault.server.routes import READ
from modvault.ui.activity import RecentActivity

# Middleware whose after hook a prebuilt answer's record stands for: the access log and request
# metrics (HotPath records the same), the recent-activity ring (it keeps only fetches and errors).
_AFTER_KNOWN = (AccessLogMiddleware, RecentActivity)


class QuickAccess:
    def __init__(self, middleware: list[Middleware], resolver: ClientAddressResolver,
                 public: HotPath | None, private: HotPath | None) -> None:
        self.public, self.private = public, private
        self.resolver = resolver
        self.allow: ClientAllowMiddleware | None = None
        self.authn: AuthenticationMiddleware | None = None
        self.authz: AuthorizationMiddleware | None = None
        self.limited = False
        for m in middleware:
            if isinstance(m, ClientAllowMiddleware):
                self.allow = m
            elif isinstance(m, AuthenticationMiddleware):
                self.authn = m
            elif isinstance(m, AuthorizationMiddleware):
                self.authz = m
            elif isinstance(m, RateLimitMiddleware):
                self.limited = True
        self.tables = [t for t in (public, private) if t is not None]
        # Derived once: what each request needs checked beyond its credentials.
        authn = self.authn
        self.role_cidrs = authn if authn is not None and authn.any_role_cidrs else None
        self.needs_client = self.allow is not None or self.role_cidrs is not None
        self.policy = self.authz.policy if self.authz is not None else None

    @classmethod
    def build(cls, middleware: list[Middleware], resolver: ClientAddressResolver,
              public: HotPath | None, private: HotPath | None) -> QuickAccess | None:
        """None unless every middleware is one whose decision this makes (or whose record a
        prebuilt answer makes), authorization comes with authentication, and a table exists."""
        known = (ClientAllowMiddleware, AuthenticationMiddleware, AuthorizationMiddleware,
                 RateLimitMiddleware)
        for m in middleware:
            if defines(m, "before") and type(m) not in known:
                return None
            if defines(m, "after") and type(m) not in _AFTER_KNOWN:
                return None
        kinds = {type(m) for m in middleware}
        if (AuthenticationMiddleware in kinds) != (AuthorizationMiddleware in kinds):
            return None
        if public is None and private is None:
            return None
        return cls(middleware, resolver, public, private)

    def off_loop(self, loop: Any) -> None:
        for table in self.tables:
            table.off_loop(loop)

    def serve_now(self, scope: Any, proto: Any) -> bool:
        """Answer from a prebuilt table on granian's thread if the middleware would let this
        request through to it; False leaves it to the general path (see the module docstring)."""
        if scope.method != "GET":
            return False
        headers = scope.headers
        authn = self.authn
        identity: Identity | None = None
        table = self.public
        if authn is not None:
            header = headers.get("authorization")
            if header is None:
                identity = authn.anonymous
            else:
                identity = authn.remembered(header, time.monotonic())
                if identity is None:
                    return False
                if not identity.anonymous:
                    table = self.private
        if table is None:
            return False
        entry = table.entries.get(scope.path)
        if entry is None:
            return False
        if self.needs_client:
            client = self.resolver.resolve(peer_address(scope.client),
                                           headers.get("x-forwarded-for"))
            allow, roles = self.allow, self.role_cidrs
            if allow is not None and not in_networks(client, allow.networks):
                return False
            if roles is not None and identity is not None:  # identity: set with authn
                identity = roles.usable_from(identity, client)
                if identity is None:
                    return False
        policy = self.policy
        if policy is not None and identity is not None:  # authz comes with authn (build)
            if not policy.allows(identity, READ, entry.module):
                return False
            if self.limited and policy.rate_of(identity)[0] > 0:
                return False
        return table.serve_now(scope, proto)
