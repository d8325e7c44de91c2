"""h11's receive buffer, without its copies of a body that a read hands over whole.

Why: a cold zip is received on the event loop, and there h11 copied every byte of a body three
times and httpcore a fourth, after the read that took it from the connection's buffer
(sources/loopnet.py): ``+=`` into h11's bytearray, a slice that ``maybe_extract_at_most`` makes
only to see whether it is empty, the slice it returns, then httpcore's ``bytes(event.data)``. With
reads of up to a megabyte, glibc serves each new buffer with fresh pages, so each copy also
faults every page in. py-spy (``--gil``) found a third of the time the loop held the GIL during a
cold 5 MiB download in these copies (TLS's read, which lets go of the GIL to decrypt, had 2%).

How: :class:`WholeReadBuffer` keeps a read given to an empty buffer as the ``bytes`` object it is,
and hands that same object over when a body reader asks for at least all of it, which is what a
``Content-Length`` or chunked body's reader does with each read while the body lasts
(``bytes()`` of a ``bytes`` object is that object: httpcore's copy goes too). Everything else (a
head, a line, part of a read, a second read before the first is taken) first moves the kept
bytes into h11's bytearray and runs h11's own method: what h11 parses and what it answers are
h11's, and tests/unit/test_receive_buffer.py checks the two buffers against each other on random
sequences of operations.

It is installed as the buffer that ``h11.Connection`` makes (``h11._connection.ReceiveBuffer``),
only when that is h11's class with the methods this one wraps, so a later h11 that changes them
keeps its own buffer (and its copies), never a wrong one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "installed"]

# The methods of h11's ReceiveBuffer (as in h11 0.16) that WholeReadBuffer wraps or relies on.
_WRAPPED = ("__iadd__", "__len__", "__bool__", "__bytes__", "_extract", "maybe_extract_at_most",
            "maybe_extract_next_line", "maybe_extract_lines",
            "is_next_line_obviously_invalid_request_line")


def _make(base: Any) -> type:
    class WholeReadBuffer(base):  # type: ignore[misc]
        """h11's ReceiveBuffer; a read given to it while empty is kept whole (see the module)."""

        def __init__(self) -> None:
            super().__init__()
            self._whole: bytes | None = None  # set only while h11's bytearray is empty

        def _spill(self) -> None:
            """Move the read kept whole into h11's bytearray, for h11's own methods."""
            whole, self._whole = self._whole, None
            if whole is not None:
                base.__iadd__(self, whole)

        def __iadd__(self, data: bytes | bytearray) -> WholeReadBuffer:
            if self._whole is None and type(data) is bytes and data and not self._data:
                self._whole = data
                return self
            self._spill()
            base.__iadd__(self, data)
            return self

        def __len__(self) -> int:
            return len(self._whole) if self._whole is not None else len(self._data)

        def __bool__(self) -> bool:
            return bool(len(self))

        def __bytes__(self) -> bytes:
            if self._whole is not None:
                return self._whole
            return bytes(self._data)

        def maybe_extract_at_most(self, count: int) -> bytes | bytearray | None:
            whole = self._whole
            if whole is not None and count >= len(whole):
                self._whole = None
                self._next_line_search = 0  # as h11's _extract leaves them
                self._multiple_lines_search = 0
                return whole
            self._spill()
            # h11 slices count bytes only to see whether any are there; so does range().
            if not range(len(self._data))[:count]:
                return None
            out: bytearray = self._extract(count)
            return out

        def _extract(self, count: int) -> bytearray:
            self._spill()
            out: bytearray = base._extract(self, count)
            return out

        def maybe_extract_next_line(self) -> bytearray | None:
            self._spill()
            out: bytearray | None = base.maybe_extract_next_line(self)
            return out

        def maybe_extract_lines(self) -> list[bytearray] | None:
            self._spill()
            out: list[bytearray] | None = base.maybe_extract_lines(self)
            return out

        def is_next_line_obviously_invalid_request_line(self) -> bool:
            self._spill()
            return bool(base.is_next_line_obviously_invalid_request_line(self))

    return WholeReadBuffer


def buffer_class() -> type | None:
    """The buffer class for this h11, or None when h11's buffer is not the one it wraps."""
    try:
        from h11 import _receivebuffer
    except ImportError:
        return None
    base = getattr(_receivebuffer, "ReceiveBuffer", None)
    if not isinstance(base, type) or not all(callable(getattr(base, m, None)) for m in _WRAPPED):
        return None
    probe = base()
    if not isinstance(getattr(probe, "_data", None), bytearray) or not all(
            isinstance(getattr(probe, name, None), int)
            for name in ("_next_line_search", "_multiple_lines_search")):
        return None
    return _make(base)


def install() -> bool:
    """Have every h11 connection made from now on use the buffer; whether it was installed."""
    try:
        from h11 import _connection, _receivebuffer
    except ImportError:
        return False
    if installed():
        return True
    if getattr(_connection, "ReceiveBuffer", None) is not getattr(_receivebuffer, "ReceiveBuffer",
                                                                 None):
        return False  # someone else replaced it: leave theirs
    cls = buffer_class()
    if cls is None:
        return False
    _connection.ReceiveBuffer = cls  # type: ignore[assignment, attr-defined]
    return True


def installed() -> bool:
    try:
        from h11 import _connection
    except ImportError:
        return False
    return getattr(getattr(_connection, "ReceiveBuffer", None), "__name__", "") == "WholeReadBuffer"
