"""Checking an untrusted module zip before it is stored (mirrors golang.org/x/mod/zip).

The rules are those of go.dev/ref/mod "Module zip files" and x/mod ``zip.CheckZip``, plus what the
go command's download path (``HashZip`` and ``zip.Unzip``) verifies while reading entries:

- every entry name starts with ``<module>@<version>/`` (exact, case-sensitive prefix);
- the rest of the name is a clean, valid file path (``module.CheckFilePath``);
- no two names are equal under Unicode case folding, and no name is both a file and a directory;
- ``go.mod`` may appear only at the module root and only in lower case;
- the zip file, and the total declared uncompressed size, are at most :data:`MAX_ZIP_FILE`;
  a root ``go.mod`` or ``LICENSE`` at most :data:`MAX_GO_MOD` / :data:`MAX_LICENSE`;
- each entry decompresses to exactly its declared size with a matching CRC-32 (the data is read
  with a bound, so a lying header cannot make us inflate more than it declares).

Zips are read by :class:`ZipReader`, a port of what Go's ``archive/zip`` reader accepts (not
:mod:`zipfile`, whose ``ZipExtFile`` silently truncates data longer than declared, and which
decodes names and rejects some archives Go reads). Names are kept as the raw bytes Go sees,
decoded as UTF-8 with ``surrogateescape`` (invalid bytes show up as lone surrogates).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from modvault.module import path as modpath
from modvault.module.errors import ModuleError, ZipError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from _typeshed import WriteableBuffer

    from modvault.module.zipstream import StreamedEntry

__all__ = [
    "MAX_GO_MOD",
    "MAX_LICENSE",
    "MAX_ZIP_FILE",
    "CollisionChecker",
    "ZipEntry",
    "ZipReader",
    "ZipSummary",
    "check_zip",
    "equal_fold",
    "go_path_clean",
    "read_root_files",
    "str_to_fold",
]

# x/mod zip.MaxZipFile, MaxGoMod, MaxLICENSE (also cmd/go codehost's limits).
MAX_ZIP_FILE = 500 << 20
# modvault's own bound (x/mod has none): the central directory is held in memory while checking,
# and a hostile 500 MiB zip of empty entries could otherwise hold ~10 million of them.
MAX_ZIP_ENTRIES = 1_000_000
MAX_GO_MOD = 16 << 20
MAX_LICENSE = 16 << 20

_CHUNK = 64 << 10
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_DATA_DESCRIPTOR_SIG = 0x08074B50
_FLAG_DATA_DESCRIPTOR = 0x8


# --- case folding -----------------------------------------------------------------------------

# Unicode simple case folding (CaseFolding.txt status C and S) is what Go's unicode.SimpleFold
# walks. Python only has full folding (str.casefold), which differs where a character's full fold
# is several characters; these are the "S" entries Python cannot see (checked against Go 1.27).
_SIMPLE_FOLD_EXTRA = {"\u1fd3": "\u0390", "\u1fe3": "\u03b0", "\ufb06": "\ufb05"}
_CASED_LIMIT = 0x1E950  # no cased character lies above the Adlam block


def _fold_key(c: str) -> str:
    extra = _SIMPLE_FOLD_EXTRA.get(c)
    if extra is not None:
        return extra
    cf = c.casefold()
    if len(cf) == 1:
        return cf
    lower = c.lower()
    if len(lower) == 1:
        return lower
    return c


@functools.cache
def _fold_table() -> dict[str, str]:
    """Each cased character -> the smallest member of its simple-folding orbit."""
    orbits: dict[str, list[str]] = {}
    for cp in range(0x80, _CASED_LIMIT):
        c = chr(cp)
        key = _fold_key(c)
        if key != c or c.upper() != c:
            orbits.setdefault(key, []).append(c)
    table: dict[str, str] = {}
    for key, members in orbits.items():
        members.append(key)
        least = min(members)
        if "A" <= least <= "Z":
            least = least.lower()
        for m in members:
            if m != least and ord(m) >= 0x80:
                table[m] = least
    return table


def str_to_fold(s: str) -> str:
    """x/mod zip.strToFold: ``equal_fold(s, t)`` iff ``str_to_fold(s) == str_to_fold(t)``.

    Each character is replaced by the least member of its Unicode simple-folding orbit (ASCII
    upper case by lower case), so ``"K"``, ``"k"`` and KELVIN SIGN share one key, as do ``"ß"`` and
    ``"ẞ"`` (but not ``"ss"``).
    """
    if s.isascii():
        return s.lower()
    table = _fold_table()
    return "".join(c.lower() if c < "\x80" else table.get(c, c) for c in s)


def equal_fold(a: str, b: str) -> bool:
    """strings.EqualFold under simple Unicode case folding."""
    return str_to_fold(a) == str_to_fold(b)


# --- paths ------------------------------------------------------------------------------------


def go_path_clean(p: str) -> str:
    """Go's path.Clean: the shortest equivalent slash-separated path ("." for an empty one)."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for elem in p.split("/"):
        if elem in ("", "."):
            continue
        if elem == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(elem)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _plainly_clean(p: str) -> bool:
    """A quick sufficient test for ``go_path_clean(p) == p``: no element is empty or starts with
    a dot, so none is "." or "..". Names it does not settle (the empty one among them: a
    directory entry named just "<prefix>/") go to go_path_clean."""
    return p != "" and p[0] not in "./" and p[-1] != "/" and "/." not in p and "//" not in p


def _parent(p: str) -> str:
    # Go's path.Dir for the clean, relative paths that reach the collision checker.
    i = p.rfind("/")
    return "." if i < 0 else p[:i]


class CollisionChecker:
    """x/mod zip.collisionChecker: finds case-insensitive name collisions and paths that are
    listed both as a file and as a directory. Parents of every path are registered as directories.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, bool]] = {}
        # Directories whose every parent was registered without a collision: x/mod walks up to
        # the root on every call, and from one of these the rest of the walk finds nothing (what
        # is registered never changes), so it stops there. A walk that failed part-way leaves
        # its directories out: the next entry below them is refused again, as in x/mod.
        self._walked: set[str] = set()

    def check(self, p: str, is_dir: bool) -> str | None:
        """Register ``p``; return why it collides with an earlier path, or None."""
        dirs: list[str] = []
        while True:
            fold = str_to_fold(p)
            other = self._seen.get(fold)
            if other is not None:
                other_path, other_is_dir = other
                if p != other_path:
                    return (
                        "case-insensitive file name collision: "
                        f"{modpath.go_quote(other_path)} and {modpath.go_quote(p)}"
                    )
                if is_dir != other_is_dir:
                    return f"entry {modpath.go_quote(p)} is both a file and a directory"
                if not is_dir:
                    return f"multiple entries for file {modpath.go_quote(p)}"
                # The same directory again (a parent of many files) is fine.
                if fold in self._walked:
                    break
            else:
                self._seen[fold] = (p, is_dir)
            if is_dir:
                dirs.append(fold)
            parent = _parent(p)
            if parent == ".":
                break
            p, is_dir = parent, True
        self._walked.update(dirs)
        return None


# --- reading entries --------------------------------------------------------------------------


class ZipEntry(NamedTuple):
    """One central-directory record, with the name as Go's archive/zip sees it.

    A named tuple, not a frozen dataclass: one is made per entry of every zip checked, and a
    frozen dataclass took 2.9 us to make (8% of a 1,500-file zip's check)."""

    name: str  # raw name bytes decoded as UTF-8 with surrogateescape
    raw_name: bytes
    method: int
    flags: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    header_offset: int
    creator_system: int = 0  # high byte of "version made by" (3 = Unix)
    external_attr: int = 0

    @property
    def is_dir(self) -> bool:
        return self.raw_name.endswith(b"/")


class _Format(Exception):
    """archive/zip ErrFormat / io.ErrUnexpectedEOF while reading the central directory."""


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
_EOCD_SIG = b"PK\x05\x06"
_EOCD64_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64_SIG = b"PK\x06\x06"
_CENTRAL_SIG = b"PK\x01\x02"
_ZIP64_EXTRA = 0x0001
_U16, _U32 = 0xFFFF, 0xFFFFFFFF


def _read_at(fp: BinaryIO, offset: int, n: int) -> bytes:
    """Up to *n* bytes at *offset*; none past the end of the file, or at an offset the file
    system cannot even seek to (a zip64 record may name any 64-bit offset: EINVAL, EOVERFLOW),
    as Go's ReadAt, which then reports io.EOF."""
    if offset < 0:
        return b""
    try:
        fp.seek(offset)
    except (OSError, OverflowError, ValueError):  # ValueError: past 2**63 - 1
        return b""
    return fp.read(n)


def _find_eocd(block: bytes) -> int:
    # archive/zip findSignatureInBlock: the last signature whose comment fits in the block.
    for i in range(len(block) - _EOCD.size, -1, -1):
        if block[i : i + 4] == _EOCD_SIG:
            comment_len = int.from_bytes(block[i + 20 : i + 22], "little")
            if comment_len + _EOCD.size + i > len(block):
                return -1  # truncated comment
            return i
    return -1


def _u64(buf: bytes, j: int) -> tuple[int, int]:
    if len(buf) - j < 8:
        raise _Format("not a valid zip file")
    return int.from_bytes(buf[j : j + 8], "little"), j + 8


def _read_central_header(fp: BinaryIO) -> ZipEntry | None:
    """archive/zip readDirectoryHeader from the current position; None at a clean EOF."""
    fixed = fp.read(_CENTRAL.size)
    if not fixed:
        return None
    if len(fixed) < _CENTRAL.size:
        raise _Format("unexpected EOF")
    fields = _CENTRAL.unpack(fixed)
    (sig, creator_version, _, flags, method, _, _, crc, csize, usize,
     name_len, extra_len, comment_len, _, _, external_attr, header_offset) = fields
    if sig != _CENTRAL_SIG:
        raise _Format("not a valid zip file")
    variable = fp.read(name_len + extra_len + comment_len)
    if len(variable) < name_len + extra_len + comment_len:
        raise _Format("unexpected EOF")
    raw = variable[:name_len]
    extra = variable[name_len : name_len + extra_len]
    csize64, usize64, offset64 = csize, usize, header_offset
    # Only the zip64 extra field matters here; malformed extras end the scan, as in Go.
    i = 0
    while len(extra) - i >= 4:
        tag, size = struct.unpack_from("<2H", extra, i)
        i += 4
        if len(extra) - i < size:
            break
        field_buf = extra[i : i + size]
        i += size
        if tag == _ZIP64_EXTRA:
            # The 64-bit values are present only for the fields that are maxed out.
            j = 0
            if usize == _U32:
                usize64, j = _u64(field_buf, j)
            if csize == _U32:
                csize64, j = _u64(field_buf, j)
            if header_offset == _U32:
                offset64, j = _u64(field_buf, j)
    return ZipEntry(raw.decode("utf-8", "surrogateescape"), raw, method, flags, crc, csize64,
                    usize64, offset64, creator_version >> 8, external_attr)


def _read_directory(fp: BinaryIO) -> list[ZipEntry]:
    """archive/zip Reader.init: the end record (zip64 aware), then central headers until a bad one.

    Raises ZipError where Go's zip.NewReader fails.
    """
    size = fp.seek(0, io.SEEK_END)
    block = b""
    eocd_offset = -1
    for i, block_len in enumerate((1024, 65 * 1024)):
        block_len = min(block_len, size)
        block = _read_at(fp, size - block_len, block_len)
        p = _find_eocd(block)
        if p >= 0:
            block = block[p:]
            eocd_offset = size - block_len + p
            break
        if i == 1 or block_len == size:
            raise ZipError("not a valid zip file")
    _, _, _, _, records, dir_size, dir_offset, _ = _EOCD.unpack_from(block)
    if records == _U16 or dir_size == _U32 or dir_offset == _U32:
        locator = _read_at(fp, eocd_offset - _EOCD64_LOCATOR.size, _EOCD64_LOCATOR.size)
        if eocd_offset - _EOCD64_LOCATOR.size >= 0:
            if len(locator) < _EOCD64_LOCATOR.size:
                raise ZipError("not a valid zip file: unexpected EOF")
            sig, disk, where, disks = _EOCD64_LOCATOR.unpack(locator)
            # (An offset that is negative as a Go int64 also means "no zip64 record".)
            if sig == _EOCD64_LOCATOR_SIG and disk == 0 and disks == 1 and where < 1 << 63:
                end64 = _read_at(fp, where, _EOCD64.size)
                if len(end64) < _EOCD64.size:
                    raise ZipError("not a valid zip file: unexpected EOF")
                fields = _EOCD64.unpack(end64)
                if fields[0] != _EOCD64_SIG:
                    raise ZipError("not a valid zip file")
                eocd_offset = where
                records, dir_size, dir_offset = fields[7], fields[8], fields[9]
    if dir_size >= 1 << 63 or dir_offset >= 1 << 63:
        raise ZipError("not a valid zip file")
    base = eocd_offset - dir_size - dir_offset
    if not 0 <= base + dir_offset < size:
        raise ZipError("not a valid zip file")
    if base > 0:
        # Writers that prepend data sometimes leave the offsets relative to the archive start:
        # if a header parses there, archive/zip trusts the recorded offset.
        fp.seek(dir_offset)
        try:
            if _read_central_header(fp) is not None:
                base = 0
        except _Format:
            pass
    fp.seek(base + dir_offset)
    entries: list[ZipEntry] = []
    stop: _Format | None = None
    while True:
        try:
            entry = _read_central_header(fp)
        except _Format as e:
            stop = e
            break
        if entry is None:
            # io.ReadFull at a clean EOF: archive/zip reports io.EOF itself.
            raise ZipError("not a valid zip file: unexpected EOF in central directory")
        if base:
            entry = entry._replace(header_offset=entry.header_offset + base)
        entries.append(entry)
        if len(entries) > MAX_ZIP_ENTRIES:
            raise ZipError(f"zip has more than {MAX_ZIP_ENTRIES} entries")
    # The record count only has 16 bits in non-zip64 archives; Go compares just those.
    if len(entries) & _U16 != records & _U16:
        raise ZipError(f"not a valid zip file: {stop}")
    return entries


class ZipReader:
    """Reads a zip from a seekable binary file, as Go's archive/zip does.

    Names are Go's raw name bytes (no code page or UTF-8 flag processing). Entry data is read by
    :meth:`open`, which accepts Store and Deflate only and fails (with :class:`ZipError`) when
    the data is longer or shorter than declared, the CRC-32 does not match, or the data is
    truncated or corrupt.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self.entries: Sequence[ZipEntry] = tuple(_read_directory(fp))

    def open(self, entry: ZipEntry) -> BinaryIO:
        """A stream of the entry's uncompressed data, verified as it is read.

        Like Go's ``zip.File.Open``: directory entries (names ending in "/") read as empty and fail
        if they declare a non-zero size; the encryption flag is ignored (the data is read as it
        is, and will not match its CRC-32). Only one stream should be read at a time.
        """
        header = _read_at(self._fp, entry.header_offset, _LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIG:
            raise ZipError(f"{entry.name}: bad local file header")
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[-2], fields[-1]
        body = entry.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if entry.is_dir:
            if entry.uncompressed_size != 0:
                raise ZipError(f"{entry.name}: directory entry has data")
            return io.BytesIO(b"")
        if entry.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ZipError(f"{entry.name}: unsupported compression method {entry.method}")
        return io.BufferedReader(_EntryStream(self._fp, entry, body), buffer_size=_CHUNK)

    def streamed_digest(self, entry: ZipEntry, seen: StreamedEntry | None) -> bytes | None:
        """The SHA-256 of a file entry's content as a download scan read it
        (module/zipstream.py), if :meth:`open` would read exactly those bytes and find them
        valid; None otherwise (the caller then reads the entry itself, and fails as it must).

        The same bytes: the local header at the entry's offset puts the data where the scan
        found it, with the same method; a deflate stream that ended within the declared
        compressed size (what comes after its end is ignored, as by compress/flate), or stored
        data exactly that long. Valid: the declared size and the CRC-32 checks agree."""
        if seen is None or entry.is_dir or seen.method != entry.method:
            return None
        header = _read_at(self._fp, entry.header_offset, _LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIG:
            return None
        fields = _LOCAL_HEADER.unpack(header)
        body = entry.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
        if body != seen.body_offset or seen.size != entry.uncompressed_size:
            return None
        if entry.method == zipfile.ZIP_DEFLATED:
            if seen.compressed > entry.compressed_size:
                return None
        elif entry.method != zipfile.ZIP_STORED or seen.compressed != entry.compressed_size:
            return None
        if _end_error(self._fp, entry, body + entry.compressed_size, seen.size, seen.crc32):
            return None
        return seen.sha256

    def read(self, entry: ZipEntry) -> bytes:
        """The whole (verified) content of a small entry."""
        with self.open(entry) as f:
            return f.read()


class _EntryStream(io.RawIOBase):
    """Go's zip checksumReader over a flate or stored section of the file."""

    def __init__(self, fp: BinaryIO, entry: ZipEntry, body_offset: int) -> None:
        self._fp = fp
        self._entry = entry
        self._pos = body_offset
        self._left = entry.compressed_size
        self._descriptor_offset = body_offset + entry.compressed_size
        self._inflate = (
            zlib.decompressobj(-15) if entry.method == zipfile.ZIP_DEFLATED else None
        )
        self._pending = b""
        self._nread = 0
        self._crc = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _fail(self, why: str) -> ZipError:
        return ZipError(f"{self._entry.name}: {why}")

    def _read_compressed(self, n: int) -> bytes:
        n = min(n, self._left)
        if n == 0:
            return b""
        data = _read_at(self._fp, self._pos, n)
        self._pos += n
        self._left -= n
        if len(data) != n:
            # The section runs past the end of the file: what is there can still be enough
            # (a deflate stream may end early); asking for more then fails as truncated.
            self._left = 0
        return data

    def _produce(self, want: int) -> bytes:
        """Up to ``want`` bytes of output; b"" once the entry is complete (and verified)."""
        want = max(1, min(want, _CHUNK))
        while not self._done:
            if self._inflate is None:
                # Stored: the data is the file section itself.
                data = self._read_compressed(want)
                if not data:
                    self._finish()
                    return b""
                return self._account(data)
            if self._inflate.eof:
                # Bytes after the end of the deflate stream are ignored, as by compress/flate.
                self._finish()
                return b""
            if not self._pending:
                self._pending = self._read_compressed(_CHUNK)
                if not self._pending:
                    raise self._fail("unexpected EOF (deflate stream is truncated)")
            try:
                # max_length bounds what one call may inflate: a bomb is caught after at most
                # declared size + one chunk of output.
                out = self._inflate.decompress(self._pending, want)
            except zlib.error as e:
                raise self._fail(f"corrupt deflate data: {e}") from None
            self._pending = self._inflate.unconsumed_tail
            if out:
                return self._account(out)
        return b""

    def _account(self, out: bytes) -> bytes:
        self._nread += len(out)
        if self._nread > self._entry.uncompressed_size:
            raise self._fail(
                "uncompressed data is larger than declared size "
                f"({self._entry.uncompressed_size} bytes)"
            )
        self._crc = zlib.crc32(out, self._crc)
        return out

    def _finish(self) -> None:
        self._done = True
        why = _end_error(self._fp, self._entry, self._descriptor_offset, self._nread, self._crc)
        if why is not None:
            raise self._fail(why)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._produce(len(view))
        n = len(data)
        view[:n] = data
        return n


def _end_error(fp: BinaryIO, entry: ZipEntry, descriptor_offset: int, nread: int, crc: int
               ) -> str | None:
    """What is wrong with an entry whose data gave *nread* bytes of CRC-32 *crc*, or None."""
    if nread != entry.uncompressed_size:
        return f"uncompressed data is smaller than declared size ({entry.uncompressed_size} bytes)"
    if entry.flags & _FLAG_DATA_DESCRIPTOR:
        # archive/zip readDataDescriptor: optional signature, then the CRC-32 must agree with
        # the central directory; the sizes that follow are ignored.
        desc = _read_at(fp, descriptor_offset, 16)
        if len(desc) >= 4 and struct.unpack_from("<L", desc)[0] == _DATA_DESCRIPTOR_SIG:
            desc = desc[4:]
        if len(desc) < 12:
            return "unexpected EOF (data descriptor is truncated)"
        if struct.unpack_from("<L", desc)[0] != entry.crc32 or crc != entry.crc32:
            return "checksum error"
    elif entry.crc32 != 0 and crc != entry.crc32:
        # Like archive/zip, a zero CRC-32 in the header is taken as "not set".
        return "checksum error"
    return None


# --- CheckZip ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZipSummary:
    """What :func:`check_zip` learned about a valid module zip."""

    file_count: int  # file entries (directory entries are not counted)
    total_size: int  # sum of the uncompressed sizes of the files
    has_gomod: bool  # whether "<module>@<version>/go.mod" is present
    gomod: bytes | None  # its content, if present
    h1: str = ""  # the zip's go.sum hash, as dirhash.hash_zip computes it (same single read)
    # Entries whose content was read from the file / taken from a download scan (how, not what:
    # not part of the verdict).
    from_file: int = dataclasses.field(default=0, compare=False)
    from_scan: int = dataclasses.field(default=0, compare=False)
    # (name, content) of the files directly under the module root that check_zip's *keep* asked
    # for, in zip order.
    kept: tuple[tuple[str, bytes], ...] = ()


def _first_error(size_error: str | None, invalid: list[str]) -> ZipError:
    # x/mod CheckedFiles.Err: the size error wins, then the list of invalid files.
    if size_error is not None:
        return ZipError(size_error)
    more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
    return ZipError(invalid[0] + more)


def check_zip(path: str | os.PathLike[str], module_path: str, version: str,
              streamed: Mapping[int, StreamedEntry] | None = None,
              keep: Callable[[str, int], bool] | None = None) -> ZipSummary:
    """x/mod zip.CheckZip plus the reading checks of HashZip/Unzip, for a zip on disk.

    Raises :class:`ZipError` with a one-line reason if the module path or version is malformed,
    the file is not a readable zip, or any rule in the module docstring is broken.

    *streamed*: what a scan of the download read of each entry, by local header offset
    (module/zipstream.py); entries it read exactly as this check would are not read again.
    The verdict and the h1: hash are the same with or without it.

    *keep*: asked ``keep(name, size)`` for each file directly under the module root, in zip
    order, once every entry is verified (read_root_files); the content of those it accepts comes
    back in :attr:`ZipSummary.kept` (so a caller wanting, say, the licence files does not parse
    the zip again).
    """
    try:
        modpath.check(module_path, version)
    except ModuleError as e:
        raise ZipError(str(e)) from None

    with open(path, "rb") as fp:
        zip_size = os.fstat(fp.fileno()).st_size
        if zip_size > MAX_ZIP_FILE:
            raise ZipError(
                f"module zip file is too large ({zip_size} bytes; limit is {MAX_ZIP_FILE} bytes)"
            )
        reader = ZipReader(fp)
        prefix = f"{module_path}@{version}/"
        summary = _check_names(reader.entries, prefix)
        return _check_contents(reader, prefix, summary, streamed or {}, keep)


def _check_names(entries: Sequence[ZipEntry], prefix: str) -> ZipSummary:
    """The name and declared-size rules of x/mod zip.checkZip."""
    raw_prefix = prefix.encode()
    invalid: list[str] = []
    size_error: str | None = None
    collisions = CollisionChecker()
    total = 0
    files = 0
    has_gomod = False

    def bad(entry: ZipEntry, why: str) -> None:
        invalid.append(f"{entry.name}: {why}")

    for entry in entries:
        if not entry.raw_name.startswith(raw_prefix):
            bad(entry, f"path does not have prefix {modpath.go_quote(prefix)}")
            continue
        name = entry.raw_name[len(raw_prefix) :].decode("utf-8", "surrogateescape")
        if name == "":
            continue
        is_dir = name.endswith("/")
        if is_dir:
            name = name[:-1]
        if not _plainly_clean(name) and go_path_clean(name) != name:
            bad(entry, "file path is not clean")
            continue
        try:
            modpath.check_file_path(name)
        except ModuleError as e:
            bad(entry, str(e))
            continue
        collision = collisions.check(name, is_dir)
        if collision is not None:
            bad(entry, collision)
            continue
        if is_dir:
            continue
        base = name.rsplit("/", 1)[-1]
        if len(base) == 6 and equal_fold(base, "go.mod"):  # simple folding keeps the length
            if base != name:
                bad(entry, "go.mod file not in module root directory")
                continue
            if name != "go.mod":
                bad(entry, "go.mod files must have lowercase names")
                continue
        size = entry.uncompressed_size
        if MAX_ZIP_FILE - total >= size:
            total += size
        elif size_error is None:
            size_error = (
                "total uncompressed size of module contents too large "
                f"(max size is {MAX_ZIP_FILE} bytes)"
            )
        if name == "go.mod" and size > MAX_GO_MOD:
            bad(entry, f"go.mod file too large (max size is {MAX_GO_MOD} bytes)")
            continue
        if name == "LICENSE" and size > MAX_LICENSE:
            bad(entry, f"LICENSE file too large (max size is {MAX_LICENSE} bytes)")
            continue
        files += 1
        has_gomod = has_gomod or name == "go.mod"

    if size_error is not None or invalid:
        raise _first_error(size_error, invalid)
    return ZipSummary(file_count=files, total_size=total, has_gomod=has_gomod, gomod=None)


def _check_contents(reader: ZipReader, prefix: str, summary: ZipSummary,
                    streamed: Mapping[int, StreamedEntry],
                    keep: Callable[[str, int], bool] | None = None) -> ZipSummary:
    """Read entries with a bound: sizes and checksums must be what the headers declare.

    The entries read are those the go command reads: every file (zip.Unzip) and, for each name,
    the last entry of that name (dirhash.HashZip), which covers directory entries. The same
    pass yields the zip's h1: hash.
    """
    gomod_name = (prefix + "go.mod").encode()
    gomod: bytes | None = None
    last = {entry.raw_name: i for i, entry in enumerate(reader.entries)}
    digests: dict[int, bytes] = {}
    from_scan = 0
    for i, entry in enumerate(reader.entries):
        if entry.is_dir and last[entry.raw_name] != i:
            continue
        if entry.raw_name != gomod_name and streamed:
            seen = reader.streamed_digest(entry, streamed.get(entry.header_offset))
            if seen is not None:
                digests[i] = seen
                from_scan += 1
                continue
        h = hashlib.sha256()
        if entry.raw_name == gomod_name:
            gomod = reader.read(entry)
            h.update(gomod)
        else:
            with reader.open(entry) as f:
                for chunk in _chunks(f):
                    h.update(chunk)
        digests[i] = h.digest()
    # dirhash.Hash1 over every entry name (sorted as bytes), each with the content of the last
    # entry of that name, as dirhash.HashZip opens them. Names were checked: none has a newline.
    lines = sorted((e.raw_name, digests[last[e.raw_name]]) for e in reader.entries)
    h1 = hashlib.sha256()
    for raw_name, digest in lines:
        h1.update(digest.hex().encode() + b"  " + raw_name + b"\n")
    return ZipSummary(
        file_count=summary.file_count,
        total_size=summary.total_size,
        has_gomod=gomod is not None,
        gomod=gomod,
        h1="h1:" + base64.b64encode(h1.digest()).decode(),
        from_file=len(digests) - from_scan,
        from_scan=from_scan,
        # Every entry is verified by now: reading the kept ones again cannot change the verdict.
        kept=tuple(read_root_files(reader, prefix, keep)) if keep is not None else (),
    )


def read_root_files(reader: ZipReader, prefix: str, keep: Callable[[str, int], bool]
                    ) -> list[tuple[str, bytes]]:
    """(name, content) of the files directly under *prefix* that ``keep(name, size)`` accepts,
    in zip order, each read and verified (ZipReader.read)."""
    raw_prefix = prefix.encode()
    kept: list[tuple[str, bytes]] = []
    for entry in reader.entries:
        rest = entry.raw_name[len(raw_prefix):]
        if entry.is_dir or not entry.raw_name.startswith(raw_prefix) or b"/" in rest:
            continue
        name = rest.decode("utf-8", "surrogateescape")
        if keep(name, entry.uncompressed_size):
            kept.append((name, reader.read(entry)))
    return kept


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return
        yield chunk
