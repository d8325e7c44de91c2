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

Entry data is read by :class:`ZipReader` (our own bounded reader over the central directory that
:mod:`zipfile` parses) because :class:`zipfile.ZipExtFile` silently truncates data that is longer
than declared, where Go's ``archive/zip`` fails. Names are kept as the raw bytes Go sees, decoded
as UTF-8 with ``surrogateescape`` (invalid bytes show up as lone surrogates).
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from modvault.module import path as modpath
from modvault.module.errors import ModuleError, ZipError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

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
    "str_to_fold",
]

# x/mod zip.MaxZipFile, MaxGoMod, MaxLICENSE (also cmd/go codehost's limits).
MAX_ZIP_FILE = 500 << 20
MAX_GO_MOD = 16 << 20
MAX_LICENSE = 16 << 20

_CHUNK = 64 << 10
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_DATA_DESCRIPTOR_SIG = 0x08074B50
_FLAG_ENCRYPTED = 0x1
_FLAG_DATA_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800


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

    def check(self, p: str, is_dir: bool) -> str | None:
        """Register ``p``; return why it collides with an earlier path, or None."""
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
            else:
                self._seen[fold] = (p, is_dir)
            parent = _parent(p)
            if parent == ".":
                return None
            p, is_dir = parent, True


# --- reading entries --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One central-directory record, with the name as Go's archive/zip sees it."""

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


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    # zipfile decodes names as UTF-8 when flag 0x800 is set and as cp437 otherwise; both decodings
    # are reversible, which gives back the bytes Go uses as File.Name. orig_filename is the name
    # before zipfile cut it at a NUL byte.
    if info.flag_bits & _FLAG_UTF8:
        return info.orig_filename.encode("utf-8")
    return info.orig_filename.encode("cp437")


class ZipReader:
    """Reads a zip from a seekable binary file, as Go's archive/zip does.

    The central directory is parsed by :mod:`zipfile`; entry data is read by :meth:`open`, which
    accepts Store and Deflate only and fails (with :class:`ZipError`) when the data is longer or
    shorter than declared, the CRC-32 does not match, or the data is truncated or corrupt.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        try:
            with zipfile.ZipFile(fp) as zf:  # does not close fp: ZipFile was given a file object
                infos = zf.infolist()
        except zipfile.BadZipFile as e:
            raise ZipError(f"not a valid zip file: {e}") from None
        except UnicodeDecodeError:
            raise ZipError("not a valid zip file: file name marked UTF-8 is not UTF-8") from None
        except (ValueError, EOFError, OSError) as e:
            raise ZipError(f"not a valid zip file: {e}") from None
        entries: list[ZipEntry] = []
        for info in infos:
            raw = _raw_name(info)
            entries.append(
                ZipEntry(
                    name=raw.decode("utf-8", "surrogateescape"),
                    raw_name=raw,
                    method=info.compress_type,
                    flags=info.flag_bits,
                    crc32=info.CRC,
                    compressed_size=info.compress_size,
                    uncompressed_size=info.file_size,
                    header_offset=info.header_offset,
                    creator_system=info.create_system,
                    external_attr=info.external_attr,
                )
            )
        self.entries: Sequence[ZipEntry] = tuple(entries)

    def open(self, entry: ZipEntry) -> BinaryIO:
        """A stream of the entry's uncompressed data, verified as it is read.

        Like Go's ``zip.File.Open``: directory entries (names ending in "/") read as empty and fail
        if they declare a non-zero size. Only one stream should be read at a time.
        """
        if entry.is_dir:
            if entry.uncompressed_size != 0:
                raise ZipError(f"{entry.name}: directory entry has data")
            return io.BytesIO(b"")
        if entry.flags & _FLAG_ENCRYPTED:
            raise ZipError(f"{entry.name}: encrypted entries are not supported")
        if entry.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ZipError(f"{entry.name}: unsupported compression method {entry.method}")
        self._fp.seek(entry.header_offset)
        header = self._fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIG:
            raise ZipError(f"{entry.name}: bad local file header")
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[-2], fields[-1]
        body = entry.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        return io.BufferedReader(_EntryStream(self._fp, entry, body), buffer_size=_CHUNK)

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
        self._fp.seek(self._pos)
        data = self._fp.read(n)
        if len(data) != n:
            raise self._fail("unexpected EOF (entry data is truncated)")
        self._pos += n
        self._left -= n
        return data

    def _produce(self, want: int) -> bytes:
        """Up to ``want`` bytes of output; b"" once the entry is complete (and verified)."""
        want = max(1, min(want, _CHUNK))
        while not self._done:
            if self._inflate is None:
                # Stored: the data is the file section itself.
                if self._left == 0:
                    self._finish()
                    return b""
                return self._account(self._read_compressed(want))
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
        entry = self._entry
        if self._nread != entry.uncompressed_size:
            raise self._fail(
                f"uncompressed data is smaller than declared size ({entry.uncompressed_size} bytes)"
            )
        if entry.flags & _FLAG_DATA_DESCRIPTOR:
            # archive/zip readDataDescriptor: optional signature, then the CRC-32 must agree with
            # the central directory; the sizes that follow are ignored.
            self._fp.seek(self._pos + self._left)
            desc = self._fp.read(16)
            if len(desc) >= 4 and struct.unpack_from("<L", desc)[0] == _DATA_DESCRIPTOR_SIG:
                desc = desc[4:]
            if len(desc) < 8:
                raise self._fail("unexpected EOF (data descriptor is truncated)")
            if struct.unpack_from("<L", desc)[0] != entry.crc32 or self._crc != entry.crc32:
                raise self._fail("checksum error")
        elif entry.crc32 != 0 and self._crc != entry.crc32:
            # Like archive/zip, a zero CRC-32 in the header is taken as "not set".
            raise self._fail("checksum error")

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._produce(len(view))
        n = len(data)
        view[:n] = data
        return n


# --- CheckZip ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZipSummary:
    """What :func:`check_zip` learned about a valid module zip."""

    file_count: int  # file entries (directory entries are not counted)
    total_size: int  # sum of the uncompressed sizes of the files
    has_gomod: bool  # whether "<module>@<version>/go.mod" is present
    gomod: bytes | None  # its content, if present


def _first_error(size_error: str | None, invalid: list[str]) -> ZipError:
    # x/mod CheckedFiles.Err: the size error wins, then the list of invalid files.
    if size_error is not None:
        return ZipError(size_error)
    more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
    return ZipError(invalid[0] + more)


def check_zip(path: str | os.PathLike[str], module_path: str, version: str) -> ZipSummary:
    """x/mod zip.CheckZip plus the reading checks of HashZip/Unzip, for a zip on disk.

    Raises :class:`ZipError` with a one-line reason if the module path or version is malformed,
    the file is not a readable zip, or any rule in the module docstring is broken.
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
        return _check_contents(reader, prefix, summary)


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
        if go_path_clean(name) != name:
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
        if equal_fold(base, "go.mod"):
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


def _check_contents(reader: ZipReader, prefix: str, summary: ZipSummary) -> ZipSummary:
    """Read every entry with a bound: sizes and checksums must be what the headers declare."""
    gomod_name = (prefix + "go.mod").encode()
    gomod: bytes | None = None
    for entry in reader.entries:
        if entry.raw_name == gomod_name:
            gomod = reader.read(entry)
            continue
        with reader.open(entry) as f:
            for _ in _chunks(f):
                pass
    return ZipSummary(
        file_count=summary.file_count,
        total_size=summary.total_size,
        has_gomod=gomod is not None,
        gomod=gomod,
    )


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return
        yield chunk
