"""Cutting connections that hold a slot and do nothing, which granian cannot do itself.

granian keeps each accepted connection in one of ``backpressure`` slots per worker until it closes,
and hyper's header-read time-out only starts with the first byte: about a thousand TCP connections
that send nothing held every slot forever and locked every other client out. granian (2.8) has no
idle-before-first-byte or keep-alive idle time-out, so each worker runs this reaper: a thread that
looks at its own accepted sockets once a second (``/proc/self/fd``, the kernel's ``TCP_INFO``) and
shuts down (``shutdown(2)``; hyper then sees end-of-stream and frees the slot):

- connections that have not sent one byte within ``first_byte_timeout``;
- connections with no request in flight that neither sent nor received a byte for ``idle_timeout``
  (keep-alive idle), or for 1 s while the worker holds at least 90% of its ``max_connections``.

A request in flight (tracked by the app per peer address) is never cut for being slow: upstream
fetches have their own deadlines. Linux only; elsewhere the reaper does not start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import sys
import threading

LOG = logging.getLogger("modvault.server")

_TCP_ESTABLISHED = 1
# struct tcp_info (linux/tcp.h): u8 state at 0; u32 last_data_sent at 44, last_data_recv at 52 (ms);
# u64 bytes_received at 128 (Linux 4.1+).
_LAST_SENT, _LAST_RECV, _BYTES_RECEIVED = 44, 52, 128
_INFO_LEN = 136
PRESSURE = 0.9
PRESSURE_IDLE = 1.0


def peer_key(host: str, port: int) -> str:
    return f"{host}:{port}"


def scope_peer(client: str) -> str:
    """granian's ``scope.client`` ("1.2.3.4:5678", "[::1]:5678" or "::1:5678") as a peer key."""
    host, _, port = client.rpartition(":")
    return peer_key(host.strip("[]"), int(port)) if port.isdigit() else client


class ConnectionReaper:
    def __init__(self, port: int, *, first_byte_timeout: float, idle_timeout: float,
                 max_connections: int, interval: float = 1.0) -> None:
        self.port = port
        self.first_byte_ms = first_byte_timeout * 1000
        self.idle_ms = idle_timeout * 1000
        self.max_connections = max_connections
        self.interval = interval
        # granian's scope.client -> requests being handled (the event loop writes, the thread reads)
        self.in_flight: dict[str, int] = {}
        self.connections = 0  # accepted connections at the last scan
        self.cut = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- called by the app on the event loop, per request ----------------------------------

    def enter(self, peer: str) -> None:
        self.in_flight[peer] = self.in_flight.get(peer, 0) + 1

    def leave(self, peer: str) -> None:
        n = self.in_flight.get(peer, 0) - 1
        if n > 0:
            self.in_flight[peer] = n
        else:
            self.in_flight.pop(peer, None)

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        if not sys.platform.startswith("linux") or self.port == 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="modvault-conn-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # never let the reaper die silently; try again next round
                LOG.exception("connection reaper scan failed")

    def scan(self) -> int:
        """One pass over this process's accepted connections; returns how many were cut."""
        candidates: list[tuple[socket.socket, str, bool, float]] = []
        count = 0
        try:
            fds = os.listdir("/proc/self/fd")
        except OSError:
            return 0
        for name in fds:
            sock = self._accepted(int(name))
            if sock is None:
                continue
            try:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_LEN)
                if len(info) < _INFO_LEN or info[0] != _TCP_ESTABLISHED:
                    sock.close()
                    continue
                count += 1
                silent = struct.unpack_from("Q", info, _BYTES_RECEIVED)[0] == 0
                idle_ms = min(struct.unpack_from("I", info, _LAST_RECV)[0],
                              struct.unpack_from("I", info, _LAST_SENT)[0])
                host, port = sock.getpeername()[:2]
                candidates.append((sock, peer_key(host, port), silent, idle_ms))
            except OSError:
                sock.close()
        self.connections = count
        busy = {scope_peer(k) for k in tuple(self.in_flight)}
        idle_limit = self.idle_ms
        if count >= PRESSURE * self.max_connections:
            idle_limit = min(idle_limit, PRESSURE_IDLE * 1000)
        cut = 0
        for sock, peer, silent, idle_ms in candidates:
            with sock:
                if silent:
                    # last_data_recv counts from the handshake when nothing ever arrived
                    reason = "sent nothing" if idle_ms >= self.first_byte_ms else ""
                elif peer not in busy and idle_ms >= idle_limit:
                    reason = "idle"
                else:
                    reason = ""
                if reason:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                        cut += 1
        self.cut += cut
        return cut

    def _accepted(self, fd: int) -> socket.socket | None:
        """A duplicate of ``fd`` if it is a TCP connection accepted on our port, else None."""
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                return None
            dup = os.dup(fd)
        except OSError:
            return None
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            return None
        try:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6) \
                    or sock.getsockname()[1] != self.port:
                sock.close()
                return None
        except OSError:
            sock.close()
            return None
        return sock
