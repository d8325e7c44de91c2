"""Build the access-control middleware from Settings (the server's wiring for this room)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modvault.auth.middleware import (
    AuthenticationMiddleware,
    AuthorizationMiddleware,
    ClientAllowMiddleware,
    RateLimitMiddleware,
)
from modvault.auth.policy import AccessPolicy, parse_roles
from modvault.auth.settings import key_files
from modvault.auth.tokens import TokenBook
from modvault.cache.coordination.state import RateLimiter
from modvault.config import Settings
from modvault.observability.audit import AuditLog
from modvault.server.clientaddr import parse_cidrs
from modvault.server.middleware import Middleware
from modvault.storage.base import Store

if TYPE_CHECKING:
    from modvault.auth.jwt import JwtVerifier


def build_policy(settings: Settings) -> AccessPolicy:
    return AccessPolicy(parse_roles(settings.roles), settings.private)


def build_jwt(settings: Settings) -> JwtVerifier | None:
    files = key_files(settings)
    if not settings.jwt_jwks_url and not files:
        return None
    # PyJWT + cryptography: only when JWTs are used
    from modvault.auth.jwt import JwtVerifier, jwks_client

    client = jwks_client(settings.upstream_ca_file) if settings.jwt_jwks_url else None
    return JwtVerifier(jwks_url=settings.jwt_jwks_url, key_files=files, issuer=settings.jwt_issuer,
                       audience=settings.jwt_audience, roles_claim=settings.jwt_roles_claim,
                       client=client)


def build_access_middleware(settings: Settings, store: Store, audit: AuditLog,
                            policy: AccessPolicy | None = None,
                            rates: RateLimiter | None = None) -> list[Middleware]:
    """In order: client allowlist, authentication, authorization, rate limit (what is switched on)."""
    out: list[Middleware] = []
    allow = parse_cidrs(settings.allow_cidrs, "allow_cidrs")
    if allow:
        out.append(ClientAllowMiddleware(allow, audit))
    if settings.auth == "on":
        policy = policy or build_policy(settings)
        out.append(AuthenticationMiddleware(TokenBook(store), build_jwt(settings), policy,
                                            settings.anonymous_role, audit))
        out.append(AuthorizationMiddleware(policy, audit, settings.metrics_auth))
        if any(r.rate > 0 for r in policy.roles.values()):
            out.append(RateLimitMiddleware(policy, audit, rates))
    return out
