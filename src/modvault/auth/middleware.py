"""The access-control middleware: client allowlist, authentication, authorization, rate limits.

Each is one entry of the server's ordered middleware list (:mod:`modvault.server.middleware`); every
refusal is a value with its HTTP meaning (401 with the Basic challenge, 403, 429 with Retry-After)
and one audit-log line. Credentials are never logged, echoed or counted: only the identity's name.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from modvault.auth.identity import ANONYMOUS_NAME, Identity
from modvault.auth.policy import ALL_PRIVATE, AccessPolicy
from modvault.auth.tokens import TokenBook
from modvault.cache.coordination.state import RateLimiter
from modvault.errors import Forbidden, TooManyRequests, Unauthorized
from modvault.observability import metrics
from modvault.observability.audit import AuditLog
from modvault.server.clientaddr import Network, in_networks
from modvault.server.middleware import Middleware
from modvault.server.request import Request
from modvault.server.routes import METRICS, PUBLIC

if TYPE_CHECKING:  # PyJWT and cryptography (~9 MiB) only where JWTs are configured
    from modvault.auth.jwt import JwtVerifier

MAX_CREDENTIAL = 16 * 1024
TOKEN_REMEMBER = 1.0
JWT_REMEMBER = 30.0
RECENT_MAX = 10_000


def _audit(audit: AuditLog, req: Request, event: str, result: str, reason: str,
           identity: Identity | None = None) -> None:
    ident = identity or req.identity
    audit.record(event, result=result, identity=ident.name if ident else "",
                 role=ident.role if ident else "", client=req.client, request_id=req.request_id,
                 action=f"{req.method} {req.path[:300]}", target=req.target, reason=reason)


class ClientAllowMiddleware(Middleware):
    """Only clients inside ``allow_cidrs`` are answered (403 otherwise)."""

    def __init__(self, networks: tuple[Network, ...], audit: AuditLog) -> None:
        self.networks = networks
        self.audit = audit

    async def before(self, req: Request) -> None:
        if req.route is not None and req.route.permission == PUBLIC and req.kind == "health":
            return  # liveness probes come from the orchestrator, wherever it is
        if not in_networks(req.client, self.networks):
            _audit(self.audit, req, "authz.denied", "denied", "client address not allowed")
            metrics.AUTH_DENIALS.labels("client_address").inc()
            raise Forbidden("client address not allowed")


def credential_of(header: str) -> str:
    """The token in ``Authorization: Basic base64(user:TOKEN)`` or ``Bearer TOKEN``."""
    if len(header) > MAX_CREDENTIAL:
        raise Unauthorized("authentication failed: credentials too long")
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("authentication failed: malformed Basic credentials") from None
        _user, sep, password = decoded.partition(":")
        if sep and password:
            return password
        raise Unauthorized("authentication failed: Basic credentials without a password")
    raise Unauthorized("authentication failed: unsupported Authorization scheme "
                       "(use Basic with the token as password, or Bearer)")


class AuthenticationMiddleware(Middleware):
    """Sets ``req.identity``: a token holder, a JWT subject, or the anonymous caller."""

    def __init__(self, tokens: TokenBook, jwt: JwtVerifier | None, policy: AccessPolicy,
                 anonymous_role: str, audit: AuditLog) -> None:
        self.tokens = tokens
        self.jwt = jwt
        self.policy = policy
        self.anonymous = Identity(ANONYMOUS_NAME, (anonymous_role,) if anonymous_role else (),
                                  "anonymous", anonymous=True)
        self.audit = audit
        self.any_role_cidrs = any(r.allow_cidrs for r in policy.roles.values())
        # Verified Authorization headers, remembered briefly (in memory only, never logged): a
        # hot client does not pay for a hash or a signature check per request. Tokens are
        # remembered for at most TOKEN_REMEMBER seconds and never past a change of the token
        # record, so revocation still takes effect within seconds.
        self._recent: dict[str, tuple[Identity, float, object]] = {}

    async def before(self, req: Request) -> None:
        header = req.headers.get("authorization")
        if header is None:
            identity = self.anonymous
        else:
            now = time.monotonic()
            remembered = self.remembered(header, now)
            if remembered is not None:
                identity = remembered
            else:
                try:
                    identity, ttl = await self._verify(credential_of(header))
                except Unauthorized as exc:
                    _audit(self.audit, req, "authn.failure", "denied", exc.message,
                           Identity("", (), "unknown"))
                    metrics.AUTH_DENIALS.labels("authentication").inc()
                    raise
                if len(self._recent) >= RECENT_MAX:
                    self._recent.clear()
                self._recent[header] = (identity, now + ttl, self.tokens.version)
        if not self.any_role_cidrs:
            req.identity = identity
            return
        usable = self.usable_from(identity, req.client)
        if usable is None:
            req.identity = identity
            _audit(self.audit, req, "authz.denied", "denied", "client address not allowed for role")
            metrics.AUTH_DENIALS.labels("client_address").inc()
            raise Forbidden(f"client address not allowed for role {identity.role}")
        req.identity = usable

    def remembered(self, header: str, now: float) -> Identity | None:
        """The identity of an Authorization header verified a moment ago, if still good to use.
        Only reads (auth/quick.py calls it from granian's thread)."""
        hit = self._recent.get(header)
        if hit is not None and hit[1] > now and hit[2] == self.tokens.version:
            return hit[0]
        return None

    def usable_from(self, identity: Identity, client: str) -> Identity | None:
        """``identity`` with only the roles usable from ``client`` (roles' ``allow_cidrs``);
        None when it has roles of the policy and none is usable from there."""
        roles = tuple(r for r in identity.roles
                      if r in self.policy.roles and self.policy.roles[r].usable_from(client))
        if identity.roles and not roles and any(r in self.policy.roles for r in identity.roles):
            return None
        if roles != identity.roles:
            return Identity(identity.name, roles, identity.method, identity.modules,
                            identity.anonymous)
        return identity

    async def _verify(self, token: str) -> tuple[Identity, float]:
        """The identity, and how long it may be remembered for this exact header."""
        if self.jwt is not None and _looks_like_jwt(token):
            from modvault.auth.jwt import InvalidToken

            try:
                return await self.jwt.verify(token), JWT_REMEMBER
            except InvalidToken as exc:
                raise Unauthorized(f"authentication failed: {exc}") from None
        identity = await self.tokens.verify(token)
        if identity is None:
            raise Unauthorized("authentication failed: unknown, revoked or expired token")
        return identity, TOKEN_REMEMBER


def _looks_like_jwt(token: str) -> bool:
    from modvault.auth.jwt import looks_like_jwt

    return looks_like_jwt(token)


class AuthorizationMiddleware(Middleware):
    """The route's permission on the route's target, or 401 (anonymous) / 403 (known identity)."""

    def __init__(self, policy: AccessPolicy, audit: AuditLog, metrics_auth: bool) -> None:
        self.policy = policy
        self.audit = audit
        self.metrics_auth = metrics_auth

    async def before(self, req: Request) -> None:
        route = req.route
        permission = route.permission
        if permission == PUBLIC or (permission == METRICS and not self.metrics_auth):
            return
        target = route.target(req)
        identity = req.identity
        assert identity is not None
        if self.policy.allows(identity, permission, target):
            return
        what = "the private checksum database" if target == ALL_PRIVATE else (req.target or target)
        if target == ALL_PRIVATE:
            req.target = "private checksum database"
        _audit(self.audit, req, "authz.denied", "denied", f"no {permission} permission")
        metrics.AUTH_DENIALS.labels("authorization").inc()
        if identity.anonymous:
            raise Unauthorized(f"authentication required to {permission} {what}".strip())
        raise Forbidden(f"{identity.name} ({identity.role or 'no role'}) may not {permission} "
                        f"{what}".strip())


class TokenBuckets:
    """Per-identity token buckets in bounded memory (the oldest idle buckets are dropped)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, key: str, rate: float, burst: float, now: float) -> float:
        """0 if a request may pass now, else the seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [burst, now]
            if len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / rate


class RateLimitMiddleware(Middleware):
    def __init__(self, policy: AccessPolicy, audit: AuditLog,
                 shared: RateLimiter | None = None) -> None:
        self.policy = policy
        self.audit = audit
        self.buckets = TokenBuckets()
        # Buckets shared by every replica (Redis coordination); None: this process's own.
        self.shared = shared

    async def before(self, req: Request) -> None:
        identity = req.identity
        if identity is None:
            return
        rate, burst = self.policy.rate_of(identity)
        if rate <= 0:
            return
        key = f"anon:{req.client}" if identity.anonymous else f"{identity.method}:{identity.name}"
        if self.shared is not None:
            wait = await self.shared.take(key, rate, burst)
        else:
            wait = self.buckets.take(key, rate, burst, time.monotonic())
        if wait > 0:
            _audit(self.audit, req, "ratelimit.hit", "denied", f"over {rate:g} requests/s")
            metrics.AUTH_DENIALS.labels("rate_limit").inc()
            raise TooManyRequests(f"rate limit exceeded for {identity.name}; retry later",
                                  math.ceil(wait))
