"""Roles: permissions over module path patterns, and the decision whether an identity may do something.

Permissions are ``read``, ``publish``, ``block`` and ``admin`` (which implies the other three on its
patterns), each granted over GOPRIVATE-style glob patterns (go.dev/ref/mod#private-modules: comma-
separated globs matched against leading path elements, so ``*`` is every module). The pattern
``$private`` stands for the ``private`` setting. ``metrics`` is a flag (``/metrics``). Pure: no I/O.

Built-in roles (an operator's ``[roles.NAME]`` table of the same name replaces them):

- ``admin``: everything, everywhere;
- ``dev``: read everything, publish to the private patterns;
- ``ci``: read everything;
- ``reader``: read everything.

A role may also limit where it is usable from (``allow_cidrs``) and how fast (a token bucket of
``rate`` requests per second with ``burst``; 0 means unlimited).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from modvault.auth.identity import Identity
from modvault.module.globs import match_prefix_patterns
from modvault.server.clientaddr import Network, in_networks, parse_cidrs

PERMISSIONS = ("read", "publish", "block", "admin")
PRIVATE_PLACEHOLDER = "$private"
# A target meaning "every private module" (the private checksum database's tiles and tree heads).
ALL_PRIVATE = "\x00all-private"


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    grants: dict[str, str] = field(default_factory=dict)  # permission -> comma-separated patterns
    metrics: bool = False
    allow_cidrs: tuple[Network, ...] = ()
    rate: float = 0.0  # requests per second; 0: unlimited
    burst: float = 0.0

    def patterns(self, permission: str) -> list[str]:
        """The patterns this role grants ``permission`` on (admin counts for every permission)."""
        out = [self.grants.get(permission, "")]
        if permission != "admin":
            out.append(self.grants.get("admin", ""))
        return [p for p in out if p]

    def usable_from(self, client: str) -> bool:
        return not self.allow_cidrs or in_networks(client, self.allow_cidrs)


def builtin_roles() -> dict[str, Role]:
    return {
        "admin": Role("admin", {"admin": "*", "read": "*", "publish": "*", "block": "*"},
                      metrics=True),
        "dev": Role("dev", {"read": "*", "publish": PRIVATE_PLACEHOLDER}),
        "ci": Role("ci", {"read": "*"}),
        "reader": Role("reader", {"read": "*"}),
    }


def _patterns(value: Any, where: str) -> str:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise ValueError(f"{where}: expected a list of module patterns")
    return ",".join(i.strip() for i in items if i.strip())


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or math.isnan(value):
        raise ValueError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def parse_roles(text: str) -> dict[str, Role]:
    """Built-in roles overlaid with the ``roles`` setting (JSON of the config file's tables)."""
    roles = builtin_roles()
    if not text.strip():
        return roles
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("roles: expected [roles.NAME] tables in the config file (JSON when set "
                         "through the environment)") from None
    if not isinstance(doc, dict):
        raise ValueError("roles: expected a table of roles")
    for name, table in doc.items():
        where = f"roles.{name}"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a table")
        grants: dict[str, str] = {}
        metrics = False
        cidrs: tuple[Network, ...] = ()
        rate = burst = 0.0
        for key, value in table.items():
            if key in PERMISSIONS:
                grants[key] = _patterns(value, f"{where}.{key}")
            elif key == "metrics":
                if not isinstance(value, bool):
                    raise ValueError(f"{where}.metrics: expected true or false")
                metrics = value
            elif key == "allow_cidrs":
                cidrs = parse_cidrs(",".join(value) if isinstance(value, list) else str(value),
                                    f"{where}.allow_cidrs")
            elif key == "rate":
                rate = _number(value, f"{where}.rate")
            elif key == "burst":
                burst = _number(value, f"{where}.burst")
            else:
                raise ValueError(f"{where}: unknown key {key!r} (read, publish, block, admin, "
                                 "metrics, allow_cidrs, rate, burst)")
        if rate and not burst:
            burst = max(1.0, rate)
        roles[name] = Role(name, grants, metrics or bool(grants.get("admin")), cidrs, rate, burst)
    return roles


class AccessPolicy:
    """Decides whether an identity holds a permission on a target (module path, "", ALL_PRIVATE)."""

    def __init__(self, roles: dict[str, Role], private: str) -> None:
        self.roles = roles
        self.private = private
        self.private_patterns = [p.strip() for p in private.split(",") if p.strip()]
        # Bounded for a small host (README "Memory"): a miss costs one pattern match per role.
        self._allows = functools.lru_cache(maxsize=8192)(self._allows_uncached)

    def _expand(self, patterns: str) -> str:
        if PRIVATE_PLACEHOLDER not in patterns:
            return patterns
        parts = [self.private if p.strip() == PRIVATE_PLACEHOLDER else p
                 for p in patterns.split(",")]
        return ",".join(p for p in parts if p)

    def roles_of(self, identity: Identity) -> list[Role]:
        return [self.roles[r] for r in identity.roles if r in self.roles]

    def allows(self, identity: Identity, permission: str, target: str) -> bool:
        """Memoized: roles are fixed for the life of the process, identities are values."""
        return self._allows(identity, permission, target)

    def _allows_uncached(self, identity: Identity, permission: str, target: str) -> bool:
        if permission == "metrics":
            return any(r.metrics for r in self.roles_of(identity))
        granted = [self._expand(p) for r in self.roles_of(identity) for p in r.patterns(permission)]
        granted = [g for g in granted if g]
        if not granted:
            return False
        if target == "":
            return True
        if target == ALL_PRIVATE:
            # Every private pattern must be covered (the pattern itself matches a grant).
            wanted = self.private_patterns or ["*"]
            return all(self._covers(identity, granted, w) for w in wanted)
        return self._covers(identity, granted, target)

    @staticmethod
    def _covers(identity: Identity, granted: list[str], module: str) -> bool:
        if identity.modules and not match_prefix_patterns(identity.modules, module):
            return False
        return any(match_prefix_patterns(g, module) for g in granted)

    def rate_of(self, identity: Identity) -> tuple[float, float]:
        """(rate, burst) for this identity: unlimited (0) if any of its roles is; else the most
        generous of its roles' limits."""
        roles = self.roles_of(identity)
        if not roles or any(r.rate == 0 for r in roles):
            return 0.0, 0.0
        best = max(roles, key=lambda r: (r.rate, r.burst))
        return best.rate, best.burst
