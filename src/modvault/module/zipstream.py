"""Reading a module zip's entries while it downloads, so its check ends with the download.

A zip's local file headers come in file order, each followed by the entry's data: fed the bytes as
they arrive, :class:`ZipStreamScan` inflates every entry, and keeps its CRC-32, its uncompressed
size and the SHA-256 of its content (what the ``h1:`` hash is made of), keyed by the offset of its
local header. Nothing here decides whether a zip is valid: :func:`modvault.module.zipcheck.check_zip`
still reads the central directory and applies every rule, and takes an entry's figures from the
scan only where the scan read exactly the bytes it would read itself (same header offset, method
and data section); any other entry is read from the file as before. So a scan that gives up (an
entry it cannot delimit, bytes it does not expect, a bomb) costs time, never a different verdict.

Pure: no I/O; bounded memory (a header at most, plus one bounded inflate output at a time) and
bounded work (at most :data:`MAX_OUTPUT` inflated bytes in all).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, NamedTuple

# The zip format's constants, as the whole-file check reads them (x/mod and APPNOTE 4.3.7).
from modvault.module.zipcheck import _CENTRAL_SIG, _FLAG_DATA_DESCRIPTOR, _LOCAL_SIG, _U32, MAX_ZIP_FILE
from modvault.module.zipcheck import _LOCAL_HEADER as _LOCAL

__all__ = ["MAX_OUTPUT", "StreamedEntry", "ZipStreamScan"]

# The whole-file check reads at most the declared sizes, whose sum is bounded by MAX_ZIP_FILE; a
# scan inflating more than that is reading something the check would refuse (or never read).
MAX_OUTPUT = MAX_ZIP_FILE
# Compressed bytes handed to one inflate call, and the most it may produce (bounding the memory one
# call takes to a download batch's size): source compresses about 4:1, so a slice is mostly
# inflated whole in one call (what is left unconsumed is copied for the next call), and a download
# batch in about four calls (few calls: each one takes the GIL back from the busy event loop).
_INFLATE_INPUT = 256 << 10
_INFLATE_STEP = 1 << 20
# An entry's first slice: where it ends inside a slice, inflate copies the rest of the slice
# (``unused_data``), so a zip of many small files would copy up to a whole slice per entry (most
# of the scan's time for 1,500 files of a few KiB). Slices start at the compressed size the local
# header declares (Go's writer declares none: data descriptors) or this, and grow fourfold.
_FIRST_INPUT = 8 << 10

_DESCRIPTOR_SIG = b"PK\x07\x08"
# Bytes that tell a data descriptor's length: the longest form (signature, CRC-32, 64-bit sizes)
# and the signature of what follows it.
_DESCRIPTOR_LOOK = 24 + 4
_STORED, _DEFLATED = 0, 8


class StreamedEntry(NamedTuple):
    """What the scan read of the entry whose local header is at ``header_offset`` (a named
    tuple: one per entry, made in a third of a frozen dataclass's time)."""

    method: int
    body_offset: int  # where its data starts (after the local header, name and extra field)
    compressed: int  # data bytes consumed: the deflate stream's length, or the stored size
    size: int  # uncompressed bytes produced
    crc32: int
    sha256: bytes  # digest of the uncompressed content


class ZipStreamScan:
    """Feed it a zip's bytes in order (:meth:`feed`); :attr:`entries` holds what it read.

    It never raises: whatever it cannot follow ends the scan (:attr:`stopped` says why), and the
    entries it has not finished are simply absent.
    """

    def __init__(self) -> None:
        self.entries: dict[int, StreamedEntry] = {}
        self.stopped = ""
        self._offset = 0  # file offset just past the last byte fed
        self._buf = bytearray()  # bytes of a header (or data descriptor) not yet complete
        self._output = 0  # inflated bytes so far, all entries
        self._entry: _Reading | None = None
        self._descriptor_next = False  # a data descriptor comes before the next header

    def feed(self, chunk: bytes | memoryview) -> None:
        if self.stopped:
            return
        try:
            self._feed(memoryview(chunk).cast("B"))
        except Exception as exc:  # a scan that fails only stops
            self._stop(f"scan failed: {type(exc).__name__}")

    def _stop(self, why: str) -> None:
        self.stopped = why
        self._entry = None
        self._buf = bytearray()

    def _feed(self, data: memoryview) -> None:
        pos = 0
        end = len(data)
        while pos < end and not self.stopped:
            if self._entry is not None:
                pos += self._entry.take(data[pos:], self)
                if self._entry is not None and self._entry.complete:
                    self._finish_entry()
            # A header or descriptor cut by a chunk's end is gathered in _buf; one that is all
            # here (the common case) is read in place.
            elif self._descriptor_next:
                if self._buf or end - pos < _DESCRIPTOR_LOOK:
                    pos += self._descriptor(data[pos:])
                else:
                    pos += self._descriptor_length(bytes(data[pos:pos + _DESCRIPTOR_LOOK]))
            elif self._buf or end - pos < _LOCAL.size:
                pos += self._header(data[pos:])
            else:
                pos = self._header_here(data, pos)

    def _header_here(self, data: memoryview, pos: int) -> int:
        """A local header that starts at *pos* (the common case: no bytes gathered before it),
        read in place; falls back to gathering when its name or extra field runs past *data*.
        Returns the position after what was used."""
        fields = _LOCAL.unpack_from(data, pos)
        if fields[0] != _LOCAL_SIG:
            self._not_a_header(fields[0])
            return len(data)
        need: int = _LOCAL.size + fields[-2] + fields[-1]
        if len(data) - pos < need:
            return pos + self._header(data[pos:])
        header_offset = self._offset
        self._offset += need
        self._begin(header_offset, fields)
        return pos + need

    def _gather(self, data: memoryview, need: int) -> int:
        take = max(0, min(need - len(self._buf), len(data)))
        self._buf += data[:take]
        self._offset += take
        return take

    def _header(self, data: memoryview) -> int:
        """Gather a local header (fixed part, then name and extra field); returns bytes used."""
        need = _LOCAL.size
        if len(self._buf) >= _LOCAL.size:
            fields = _LOCAL.unpack_from(self._buf)
            need += fields[-2] + fields[-1]
        used = self._gather(data, need)
        if len(self._buf) >= 4 and bytes(self._buf[:4]) != _LOCAL_SIG:
            self._not_a_header(bytes(self._buf[:4]))
            return len(data)
        if len(self._buf) < need:
            return used
        if need == _LOCAL.size:
            fields = _LOCAL.unpack_from(self._buf)
            if fields[-2] + fields[-1] > 0:
                return used  # the name and extra field follow
        self._start_entry(self._offset - len(self._buf))
        return used

    def _not_a_header(self, sig: bytes) -> None:
        self._stop("central directory reached" if sig == _CENTRAL_SIG else "not a local file header")

    def _start_entry(self, header_offset: int) -> None:
        """The whole header is in _buf (its signature checked by _header)."""
        fields = _LOCAL.unpack_from(self._buf)
        self._buf = bytearray()
        self._begin(header_offset, fields)

    def _begin(self, header_offset: int, fields: tuple[Any, ...]) -> None:
        """The data of the entry whose header (*fields*) is at *header_offset* starts here."""
        flags, method, csize = fields[3], fields[4], fields[8]
        if method == _DEFLATED:
            self._entry = _Reading(header_offset, self._offset, method, flags, None)
            if not flags & _FLAG_DATA_DESCRIPTOR and 0 < csize < _INFLATE_INPUT:
                self._entry.piece = csize  # only a first guess: the entry ends where inflate does
        elif method == _STORED and not flags & _FLAG_DATA_DESCRIPTOR and csize != _U32:
            self._entry = _Reading(header_offset, self._offset, method, flags, csize)
            if self._entry.complete:
                self._finish_entry()
        else:
            # A stored entry whose size is only in a descriptor (or zip64 extra) cannot be
            # delimited without the central directory; other methods are refused by the check.
            self._stop("entry cannot be delimited while streaming")

    def _finish_entry(self) -> None:
        entry = self._entry
        assert entry is not None
        self._entry = None
        self.entries[entry.header_offset] = StreamedEntry(
            entry.method, entry.body_offset, entry.consumed, entry.produced, entry.crc,
            entry.sha.digest())
        # Optional signature, CRC-32, then 32-bit sizes (or 64-bit ones, zip64): which one is
        # known by what follows (the next header, or the central directory).
        self._descriptor_next = bool(entry.flags & _FLAG_DATA_DESCRIPTOR)

    def _descriptor(self, data: memoryview) -> int:
        """Gather enough bytes to tell the descriptor's length by the signature after it.

        A wrong guess only misplaces the scan: an entry's figures depend on the bytes from its
        own header on, and the check uses only entries at offsets the central directory names."""
        used = self._gather(data, _DESCRIPTOR_LOOK)
        if len(self._buf) < _DESCRIPTOR_LOOK:
            return used
        buf = bytes(self._buf)
        self._buf = bytearray()
        self._offset -= _DESCRIPTOR_LOOK  # counted again by _descriptor_length
        length = self._descriptor_length(buf)
        if not self.stopped:
            self._buf = bytearray(buf[length:])  # the start of what follows
            self._offset += len(self._buf)
        return used

    def _descriptor_length(self, buf: bytes) -> int:
        """The descriptor's length, told from *buf* (its first _DESCRIPTOR_LOOK bytes); the scan
        moves past it (or stops, with nothing recognisable after it)."""
        lengths = (16, 24, 12, 20) if buf[:4] == _DESCRIPTOR_SIG else (12, 20)
        for length in lengths:
            if buf[length:length + 4] in (_LOCAL_SIG, _CENTRAL_SIG):
                self._descriptor_next = False
                self._offset += length
                return length
        self._stop("data descriptor not followed by a header")
        return len(buf)

    def charge(self, n: int) -> bool:
        """Count *n* inflated bytes; False once the scan has inflated more than it may."""
        self._output += n
        return self._output <= MAX_OUTPUT


class _Reading:
    """The entry whose data is arriving."""

    def __init__(self, header_offset: int, body_offset: int, method: int, flags: int,
                 stored_size: int | None) -> None:
        self.header_offset, self.body_offset = header_offset, body_offset
        self.method, self.flags = method, flags
        self.left = stored_size  # stored: data bytes still to come
        self.inflate = zlib.decompressobj(-15) if method == _DEFLATED else None
        self.consumed = 0
        self.produced = 0
        self.crc = 0
        self.sha = hashlib.sha256()
        self.complete = stored_size == 0
        self.piece = _FIRST_INPUT  # compressed bytes for the next inflate call (_FIRST_INPUT)

    def _out(self, out: bytes | memoryview) -> None:
        self.produced += len(out)
        self.crc = zlib.crc32(out, self.crc)
        self.sha.update(out)

    def take(self, data: memoryview, scan: ZipStreamScan) -> int:
        """Consume what of *data* belongs to this entry; returns how much."""
        if self.inflate is None:
            assert self.left is not None
            n = min(self.left, len(data))
            self._out(data[:n])
            self.left -= n
            self.consumed += n
            scan._offset += n
            self.complete = self.left == 0
            return n
        # Input in bounded slices: a slice inflate leaves unconsumed is copied on every call.
        start = 0
        while start < len(data):
            piece = data[start:start + self.piece]
            self.piece = min(self.piece * 4, _INFLATE_INPUT)
            pending: bytes | memoryview = piece
            while pending and not self.inflate.eof:
                out = self.inflate.decompress(pending, _INFLATE_STEP)
                if not scan.charge(len(out)):
                    scan._stop("more inflated output than any valid zip holds")
                    return len(data)
                self._out(out)
                pending = self.inflate.unconsumed_tail
            if self.inflate.eof:
                used = start + len(piece) - len(self.inflate.unused_data)
                self.consumed += used
                scan._offset += used
                self.complete = True
                return used
            start += len(piece)
        used = len(data)
        self.consumed += used
        scan._offset += used
        return used
