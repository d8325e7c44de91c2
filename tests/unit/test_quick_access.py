"""auth/quick.py: the access decision on granian's thread is made only for middleware it knows
(the end-to-end checks of each decision are in tests/e2e/test_access_e2e.py and test_hot_path.py)."""

from __future__ import annotations

from typing import Any

from modvault.auth.middleware import ClientAllowMiddleware
from modvault.auth.quick import QuickAccess
from modvault.observability.logs import AccessLog
from modvault.server.clientaddr import ClientAddressResolver, parse_cidrs
from modvault.server.middleware import AccessLogMiddleware, Middleware
from modvault.server.request import Request, peer_address
from modvault.ui.activity import RecentActivity

TABLE: Any = object()  # a prebuilt table: build only asks whether there is one
RESOLVER = ClientAddressResolver(())


class Unknown(Middleware):
    async def before(self, req: Request) -> None:
        return None


class Watching(Middleware):
    def after(self, req: Request, started: float) -> None:
        return None


def known() -> list[Middleware]:
    audit: Any = None
    return [ClientAllowMiddleware(parse_cidrs("10.0.0.0/8", "allow_cidrs"), audit),
            AccessLogMiddleware(AccessLog(enabled=False)), RecentActivity()]


def test_built_for_the_middleware_it_decides_for() -> None:
    quick = QuickAccess.build(known(), RESOLVER, TABLE, None)
    assert quick is not None and quick.tables == [TABLE] and quick.allow is not None
    assert quick.authn is None and not quick.limited


def test_not_built_for_middleware_it_does_not_know_or_without_a_table() -> None:
    assert QuickAccess.build([*known(), Unknown()], RESOLVER, TABLE, None) is None
    assert QuickAccess.build([*known(), Watching()], RESOLVER, TABLE, None) is None
    assert QuickAccess.build(known(), RESOLVER, None, None) is None


def test_peer_address_drops_the_port() -> None:
    assert peer_address("127.0.0.1:5000") == "127.0.0.1"
    assert peer_address("[::1]:5000") == "::1"
    assert peer_address(None) == ""
