"""Identity: who a request comes from, as authentication established it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """A token holder, a JWT subject, or the anonymous caller.

    ``roles`` name roles of :class:`modvault.auth.policy.RoleSet`; ``modules`` (GOPRIVATE-style
    patterns, empty for none) narrows what a token may touch below what its role allows."""

    name: str
    roles: tuple[str, ...]
    method: str  # "token", "jwt" or "anonymous"
    modules: str = ""
    anonymous: bool = False

    @property
    def role(self) -> str:
        return ",".join(self.roles)


ANONYMOUS_NAME = "anonymous"
