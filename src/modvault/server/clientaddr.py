"""The client's address: the socket peer, or X-Forwarded-For when (and only when) the peer is one of
our trusted proxies.

X-Forwarded-For is a list each proxy appends the address it saw to; only the entries added by proxies
we trust are believable. So walk it from the right, skipping trusted proxies, and take the first
address that is not one: everything left of it could have been written by the client itself.
"""

from __future__ import annotations

import functools
import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidrs(text: str, setting: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks; ValueError naming the setting otherwise."""
    out: list[Network] = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: not an address or CIDR block: {item[:60]!r}") from None
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip("[]")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    addr = _address(address)
    return addr is not None and any(addr in net for net in networks)


class ClientAddressResolver:
    def __init__(self, trusted_proxies: tuple[Network, ...]) -> None:
        self.trusted = trusted_proxies
        self._is_trusted = functools.lru_cache(maxsize=4096)(self._trusted_uncached)

    def _trusted_uncached(self, address: str) -> bool:
        return in_networks(address, self.trusted)

    def resolve(self, peer: str, forwarded_for: str | None) -> str:
        if not forwarded_for or not self.trusted or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",")][-32:]
        for hop in reversed(hops):
            addr = _address(hop)
            if addr is None:
                return peer  # garbage in the chain: believe only the socket
            if not self._is_trusted(str(addr)):
                return str(addr)
        first = _address(hops[0]) if hops else None
        return str(first) if first is not None else peer
