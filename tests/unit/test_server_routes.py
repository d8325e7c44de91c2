"""The route table and the client-address rule (trusted proxies)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.errors import NotFound
from modvault.server.clientaddr import ClientAddressResolver, in_networks, parse_cidrs
from modvault.server.request import Request
from modvault.server.routes import MethodNotAllowed, Route, RouteTable


async def _h(req: Request) -> None:
    return None


async def _other(req: Request) -> None:
    return None


def _table() -> RouteTable:
    t = RouteTable()
    t.add("/healthz", _h, kind="health")
    t.add("/sumdb/", _h, kind="sumdb", prefix=True)
    t.add("/api/v1/", _h, kind="api", prefix=True)
    t.add("/api/v1/modules/", _other, kind="publish", prefix=True, methods=("PUT",))
    t.add("/api/v1/modules/", _h, kind="api-modules", prefix=True, methods=("GET",))
    t.set_protocol(Route("", _h, "invalid"))
    t.set_fallback(Route("", _other, "fallback"))
    return t


def test_exact_prefix_protocol_fallback() -> None:
    t = _table()
    assert t.match("GET", "/healthz").kind == "health"
    assert t.match("GET", "/sumdb/sum.golang.org/latest").kind == "sumdb"
    assert t.match("GET", "/api/v1/status").kind == "api"
    # The longest prefix wins, and picks the route of the method asked.
    assert t.match("PUT", "/api/v1/modules/example.com/m/@v/v1.0.0").kind == "publish"
    assert t.match("GET", "/api/v1/modules/example.com/m/@v/v1.0.0").kind == "api-modules"
    assert t.match("GET", "/example.com/m/@v/list").kind == "invalid"
    assert t.match("HEAD", "/example.com/m/@latest").kind == "invalid"
    assert t.match("GET", "/example.com/m").kind == "fallback"


def test_method_not_allowed_names_the_allowed_methods() -> None:
    t = _table()
    with pytest.raises(MethodNotAllowed) as exc:
        t.match("POST", "/example.com/m/@v/list")
    assert exc.value.status == 405 and exc.value.headers == [("allow", "GET, HEAD")]
    with pytest.raises(MethodNotAllowed) as exc:
        t.match("DELETE", "/api/v1/modules/x")
    assert exc.value.headers == [("allow", "PUT, GET")]


def test_no_fallback_is_not_found() -> None:
    t = RouteTable()
    with pytest.raises(NotFound):
        t.match("GET", "/nothing")


def test_prefix_routes_cannot_shadow_modules() -> None:
    t = RouteTable()
    with pytest.raises(ValueError, match="shadow"):
        t.add("/example.com/", _h, prefix=True)
    with pytest.raises(ValueError, match="end with"):
        t.add("/api", _h, prefix=True)


TRUSTED = parse_cidrs("10.0.0.0/8, 192.168.1.1", "trusted_proxies")


def test_forwarded_for_only_from_trusted_peer() -> None:
    r = ClientAddressResolver(TRUSTED)
    # An untrusted peer's X-Forwarded-For is ignored: the socket is the truth.
    assert r.resolve("203.0.113.9", "1.2.3.4") == "203.0.113.9"
    # A trusted proxy: the rightmost address it did not add itself.
    assert r.resolve("10.1.1.1", "1.2.3.4") == "1.2.3.4"
    assert r.resolve("10.1.1.1", "6.6.6.6, 1.2.3.4, 10.2.2.2") == "1.2.3.4"
    # A client that writes its own X-Forwarded-For cannot pick the answer: it is left of the hop
    # our trusted proxy appended.
    assert r.resolve("192.168.1.1", "127.0.0.1, 198.51.100.7") == "198.51.100.7"
    # Garbage in the chain: the peer.
    assert r.resolve("10.1.1.1", "not-an-ip") == "10.1.1.1"
    # No trusted proxies configured: never believed.
    assert ClientAddressResolver(()).resolve("10.1.1.1", "1.2.3.4") == "10.1.1.1"


def test_parse_cidrs_names_the_setting() -> None:
    with pytest.raises(ValueError, match="allow_cidrs"):
        parse_cidrs("10.0.0.0/8,bogus", "allow_cidrs")
    assert in_networks("::ffff:10.0.0.1", TRUSTED)
    assert not in_networks("11.0.0.1", TRUSTED)


@given(st.ip_addresses(v=4), st.lists(st.ip_addresses(v=4), max_size=5))
def test_untrusted_peer_always_wins(peer: ipaddress.IPv4Address,
                                    chain: list[ipaddress.IPv4Address]) -> None:
    r = ClientAddressResolver(TRUSTED)
    got = r.resolve(str(peer), ", ".join(map(str, chain)) or None)
    if not in_networks(str(peer), TRUSTED):
        assert got == str(peer)
    else:
        assert got == str(peer) or got in {str(a) for a in chain}
