"""Validation of the access-control settings (called by config.validate), naming the setting."""

from __future__ import annotations

import os

from modvault.auth.policy import parse_roles
from modvault.config import ConfigError, Settings


def validate_auth(settings: Settings) -> None:
    if settings.auth not in ("on", "off"):
        raise ConfigError(f"auth: expected on or off, got {settings.auth!r}")
    try:
        roles = parse_roles(settings.roles)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.anonymous_role and settings.anonymous_role not in roles:
        raise ConfigError(f"anonymous_role: no role named {settings.anonymous_role!r} "
                          f"(known: {', '.join(sorted(roles))})")
    for path in key_files(settings):
        if not os.path.isfile(path):
            raise ConfigError(f"jwt_key_files: no such file {path!r}")
    if settings.jwt_jwks_url and not settings.jwt_jwks_url.startswith(("https://", "http://")):
        raise ConfigError("jwt_jwks_url: expected an http(s) URL")
    if not settings.jwt_roles_claim:
        raise ConfigError("jwt_roles_claim: must not be empty")
    if settings.audit_log_max_bytes < 1024 or settings.audit_log_keep < 1:
        raise ConfigError("audit_log_max_bytes/audit_log_keep: at least 1024 bytes and 1 file")
    if settings.auth == "on" and not roles:
        raise ConfigError("roles: auth is on but no role exists")


def key_files(settings: Settings) -> list[str]:
    return [p.strip() for p in settings.jwt_key_files.split(",") if p.strip()]
