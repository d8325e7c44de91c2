"""Transparency-log math for the checksum database: hashes, proofs, tiles, tree and record text.

Mirrors the behaviour of golang.org/x/mod/sumdb/tlog. The tree is the Merkle tree of RFC 6962
(section 2.1), so proofs are compatible with Certificate Transparency. Hashes are stored in the
dense order of Crosby and Wallach, "Efficient Data Structures for Tamper-Evident Logging"
(section 3.3), and published in tiles as described in Go proposal 25530 ("Checksum database",
"Tiling a log") and go.dev/ref/mod ("Checksum database"). Pure: every read goes through a
callback the caller supplies; nothing here touches the network or files.

A hash is 32 raw bytes. A *hash reader* is a callable mapping a sequence of stored-hash indexes
to the hashes stored there (same length, same order).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "EMPTY_TREE_HASH",
    "HASH_SIZE",
    "MAX_TREE_TEXT",
    "HashReader",
    "InconsistentTile",
    "MalformedRecord",
    "MalformedTilePath",
    "MalformedTree",
    "ProofError",
    "Tile",
    "TileHashReader",
    "TilePlan",
    "TileReader",
    "TileSaver",
    "TlogError",
    "Tree",
    "check_record",
    "check_tree",
    "format_data_tile",
    "format_hash",
    "format_lookup",
    "format_lookup_record",
    "format_record",
    "format_tree",
    "hash_from_tile",
    "is_valid_record_text",
    "new_tiles",
    "node_hash",
    "parse_hash",
    "parse_lookup",
    "parse_lookup_record",
    "parse_tile_path",
    "parse_tree",
    "plan_tile_reads",
    "prove_record",
    "prove_tree",
    "read_tile_data",
    "record_hash",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes",
    "stored_hashes_for_record_hash",
    "tile_for_index",
    "tile_hash",
    "tile_in_tree",
    "tree_hash",
]

HASH_SIZE = 32
EMPTY_TREE_HASH = bytes(HASH_SIZE)
"""The tree of size zero is defined to have the all-zero hash."""

MAX_TREE_TEXT = 1_000_000
"""x/mod's ParseTree refuses tree texts longer than this."""

_MAX_INT64 = (1 << 63) - 1

HashReader = Callable[[Sequence[int]], Sequence[bytes]]
TileReader = Callable[[Sequence["Tile"]], Sequence[bytes]]
TileSaver = Callable[[Sequence["Tile"], Sequence[bytes]], None]


# --- errors -------------------------------------------------------------------------------------


class TlogError(ValueError):
    """A transparency-log rule was broken (bad input, bad proof, bad encoding)."""


class ProofError(TlogError):
    """A record or tree proof does not prove what it claims."""

    def __init__(self, message: str = "invalid transparency proof") -> None:
        super().__init__(message)


class InconsistentTile(TlogError):
    """Tile data does not hash up to the signed tree head: the tile server sent forged or corrupt
    data. Treat as a security error, never as a cache miss."""

    def __init__(self, message: str = "downloaded inconsistent tile") -> None:
        super().__init__(message)


class MalformedTree(TlogError):
    def __init__(self, message: str = "malformed tree note") -> None:
        super().__init__(message)


class MalformedRecord(TlogError):
    def __init__(self, message: str = "malformed record data") -> None:
        super().__init__(message)


class MalformedTilePath(TlogError):
    def __init__(self, path: str) -> None:
        super().__init__(f"malformed tile path {path!r}")
        self.path = path


# --- hashes -------------------------------------------------------------------------------------


def record_hash(data: bytes) -> bytes:
    """The leaf hash of a record: SHA-256(0x00 || data) (RFC 6962, section 2.1)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right) (RFC 6962, section 2.1)."""
    _check_hash(left)
    _check_hash(right)
    return hashlib.sha256(b"\x01" + left + right).digest()


def format_hash(h: bytes) -> str:
    """Standard base64, as hashes appear in tree notes and CT JSON."""
    _check_hash(h)
    return base64.b64encode(h).decode("ascii")


def parse_hash(s: str) -> bytes:
    """Parse the canonical base64 form of a 32-byte hash."""
    h = _b64decode_exact(s)
    if h is None or len(h) != HASH_SIZE:
        raise TlogError("malformed hash")
    return h


def _b64decode_exact(s: str) -> bytes | None:
    if len(s) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s):
        return None
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == s else None


def _check_hash(h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise TlogError(f"hash must be {HASH_SIZE} bytes, not {len(h)}")


def _maxpow2(n: int) -> tuple[int, int]:
    """(k, log2 k) for k the largest power of two smaller than n (k = 1 when n <= 2)."""
    if n <= 2:
        return 1, 0
    level = (n - 1).bit_length() - 1
    return 1 << level, level


# --- stored hash indexes (Crosby & Wallach, section 3.3) ----------------------------------------


def stored_hash_index(level: int, n: int) -> int:
    """Position, in the dense storage order, of the n'th hash at *level* (level 0 = leaves).

    Level L's n'th hash is stored right after level L+1's (2n+1)'th hash; level 0's n'th hash is
    stored at n + n/2 + n/4 + ... (which is 2n - popcount(n)).
    """
    if level < 0 or n < 0:
        raise TlogError(f"invalid stored hash coordinates ({level}, {n})")
    m = ((n + 1) << level) - 1  # the level-0 record completing this subtree
    return 2 * m - m.bit_count() + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Inverse of :func:`stored_hash_index`: ``(level, n)``."""
    if index < 0:
        raise TlogError(f"invalid stored hash index {index}")
    # stored_hash_index(0, n) <= 2n, so the record that stored this hash is at least index/2.
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n stores 1 + (trailing zeros of n+1) hashes.
        nxt = index_n + 1 + _trailing_zeros(n + 1)
        if nxt > index:
            break
        n += 1
        index_n = nxt
    level = index - index_n
    return level, n >> level


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def stored_hash_count(n: int) -> int:
    """How many hashes a tree of *n* records stores."""
    if n < 0:
        raise TlogError(f"invalid tree size {n}")
    if n == 0:
        return 0
    # Hashes up to the last leaf, plus the subtrees that leaf completes.
    return stored_hash_index(0, n - 1) + 1 + _trailing_zeros(n)


def _read(reader: HashReader, indexes: Sequence[int]) -> list[bytes]:
    hashes = list(reader(indexes))
    if len(hashes) != len(indexes):
        raise TlogError(f"hash reader returned {len(hashes)} hashes for {len(indexes)} indexes")
    for h in hashes:
        _check_hash(h)
    return hashes


def stored_hashes(n: int, data: bytes, read_hashes: HashReader) -> list[bytes]:
    """The hashes to store, starting at ``stored_hash_index(0, n)``, when appending record *n*
    with content *data*. Reads up to log2(n) earlier hashes to complete subtrees."""
    return stored_hashes_for_record_hash(n, record_hash(data), read_hashes)


def stored_hashes_for_record_hash(n: int, h: bytes, read_hashes: HashReader) -> list[bytes]:
    """Like :func:`stored_hashes`, given ``record_hash(data)`` instead of the data."""
    if n < 0:
        raise TlogError(f"invalid record number {n}")
    _check_hash(h)
    # Each trailing 1 bit of n completes a subtree, consuming the hash of its left sibling.
    m = _trailing_zeros(n + 1)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(m))]  # increasing
    old = _read(read_hashes, indexes)
    hashes = [h]
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        hashes.append(h)
    return hashes


# --- tree hash and proofs (RFC 6962, sections 2.1, 2.1.1, 2.1.2) --------------------------------


def _subtree_index(lo: int, hi: int, need: list[int]) -> list[int]:
    """Append the stored indexes whose hashes combine into the hash of records [lo, hi)."""
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        if lo & (k - 1):
            raise AssertionError("tlog: bad math in _subtree_index")
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def _subtree_hash(lo: int, hi: int, hashes: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Hash of records [lo, hi) from the hashes :func:`_subtree_index` asked for; returns the
    leftover hashes too."""
    num = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        num += 1
        lo += k
    if num == 0 or len(hashes) < num:
        raise AssertionError("tlog: bad index math in _subtree_hash")
    h = hashes[num - 1]
    for i in range(num - 2, -1, -1):
        h = node_hash(hashes[i], h)
    return h, hashes[num:]


def tree_hash(n: int, read_hashes: HashReader) -> bytes:
    """The root hash of the tree of *n* records (all zeros for n = 0). One read, at most
    1 + log2(n) hashes."""
    if n < 0:
        raise TlogError(f"invalid tree size {n}")
    if n == 0:
        return EMPTY_TREE_HASH
    indexes = _subtree_index(0, n, [])
    h, rest = _subtree_hash(0, n, _read(read_hashes, indexes))
    if rest:
        raise AssertionError("tlog: bad index math in tree_hash")
    return h


def _leaf_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if not lo <= n < hi:
        raise AssertionError("tlog: bad math in _leaf_proof_index")
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_index(lo, lo + k, n, need)
        _subtree_index(lo + k, hi, need)
    else:
        _subtree_index(lo, lo + k, need)
        _leaf_proof_index(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    if lo + 1 == hi:  # the leaf itself: the verifier knows its hash
        return [], hashes
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        p, hashes = _leaf_proof(lo, lo + k, n, hashes)
        th, hashes = _subtree_hash(lo + k, hi, hashes)
    else:
        th, hashes = _subtree_hash(lo, lo + k, hashes)
        p, hashes = _leaf_proof(lo + k, hi, n, hashes)
    return [*p, th], hashes


def prove_record(t: int, n: int, read_hashes: HashReader) -> list[bytes]:
    """The proof (RFC 6962 "audit path") that the tree of size *t* contains record *n*."""
    if t < 0 or n < 0 or n >= t:
        raise TlogError("tlog: invalid inputs in prove_record")
    indexes = _leaf_proof_index(0, t, n, [])
    if not indexes:
        return []
    p, rest = _leaf_proof(0, t, n, _read(read_hashes, indexes))
    if rest:
        raise AssertionError("tlog: bad index math in prove_record")
    return p


def _run_record_proof(p: Sequence[bytes], lo: int, hi: int, n: int, leaf: bytes) -> bytes:
    if lo + 1 == hi:
        if p:  # no unnecessary hashes allowed
            raise ProofError()
        return leaf
    if not p:
        raise ProofError()
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        return node_hash(_run_record_proof(p[:-1], lo, lo + k, n, leaf), p[-1])
    return node_hash(p[-1], _run_record_proof(p[:-1], lo + k, hi, n, leaf))


def check_record(proof: Sequence[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Check that *proof* shows the tree of size *t* and hash *th* has record *n* with hash *h*.

    Raises :class:`ProofError` when it does not."""
    if t < 0 or n < 0 or n >= t:
        raise TlogError("tlog: invalid inputs in check_record")
    for x in (*proof, th, h):
        _check_hash(x)
    if _run_record_proof(list(proof), 0, t, n, h) != th:
        raise ProofError()


def _tree_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if not lo < n <= hi:
        raise AssertionError("tlog: bad math in _tree_proof_index")
    if n == hi:
        return need if lo == 0 else _subtree_index(lo, hi, need)
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_index(lo, lo + k, n, need)
        _subtree_index(lo + k, hi, need)
    else:
        _subtree_index(lo, lo + k, need)
        _tree_proof_index(lo + k, hi, n, need)
    return need


def _tree_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    if n == hi:
        if lo == 0:  # exactly the old tree: the verifier knows its hash
            return [], hashes
        th, hashes = _subtree_hash(lo, hi, hashes)
        return [th], hashes
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        p, hashes = _tree_proof(lo, lo + k, n, hashes)
        th, hashes = _subtree_hash(lo + k, hi, hashes)
    else:
        th, hashes = _subtree_hash(lo, lo + k, hashes)
        p, hashes = _tree_proof(lo + k, hi, n, hashes)
    return [*p, th], hashes


def prove_tree(t: int, n: int, read_hashes: HashReader) -> list[bytes]:
    """The proof (RFC 6962 "consistency proof") that the tree of size *t* contains the tree of
    size *n* as a prefix."""
    if t < 1 or n < 1 or n > t:
        raise TlogError("tlog: invalid inputs in prove_tree")
    indexes = _tree_proof_index(0, t, n, [])
    if not indexes:
        return []
    p, rest = _tree_proof(0, t, n, _read(read_hashes, indexes))
    if rest:
        raise AssertionError("tlog: bad index math in prove_tree")
    return p


def _run_tree_proof(p: Sequence[bytes], lo: int, hi: int, n: int, old: bytes) -> tuple[bytes, bytes]:
    """(hash of [lo, hi) in the old tree, hash of [lo, hi) in the new tree) implied by *p*."""
    if n == hi:
        if lo == 0:
            if p:
                raise ProofError()
            return old, old
        if len(p) != 1:
            raise ProofError()
        return p[0], p[0]
    if not p:
        raise ProofError()
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        oh, th = _run_tree_proof(p[:-1], lo, lo + k, n, old)
        return oh, node_hash(th, p[-1])
    oh, th = _run_tree_proof(p[:-1], lo + k, hi, n, old)
    return node_hash(p[-1], oh), node_hash(p[-1], th)


def check_tree(proof: Sequence[bytes], t: int, th: bytes, n: int, h: bytes) -> None:
    """Check that *proof* shows the tree of size *t* and hash *th* contains, as a prefix, the tree
    of size *n* and hash *h*. Raises :class:`ProofError` when it does not."""
    if t < 1 or n < 1 or n > t:
        raise TlogError("tlog: invalid inputs in check_tree")
    for x in (*proof, th, h):
        _check_hash(x)
    oh, nh = _run_tree_proof(list(proof), 0, t, n, h)
    if oh != h or nh != th:
        raise ProofError()


# --- tiles (proposal 25530 "Checksum database"; research.swtch.com/tlog "Tiling a log") ---------

_PATH_BASE = 1000
_TILE_PATH = re.compile(
    # H, L, up to seven 3-digit groups of N (int64 has 19 digits), optional .p/W (W < 2**30)
    r"tile/([1-9][0-9]?)/(data|0|[1-9][0-9]?)/((?:x[0-9]{3}/){0,6}[0-9]{3})(?:\.p/([1-9][0-9]{0,9}))?"
)


@dataclass(frozen=True)
class Tile:
    """A tile: W consecutive hashes at tree level H*L starting at hash N * 2**H.

    ``H`` is the tile height (1..30); ``L`` the tiling level (0..63, or -1 for record data);
    ``N`` the tile number within the level; ``W`` the width (1..2**H, 2**H for a full tile).
    Field names follow x/mod's Tile.
    """

    H: int
    L: int
    N: int
    W: int

    def __post_init__(self) -> None:
        if not (
            1 <= self.H <= 30
            and -1 <= self.L <= 63
            and 0 <= self.N <= _MAX_INT64
            and 1 <= self.W <= 1 << self.H
        ):
            raise TlogError(f"invalid tile {self.H}/{self.L}/{self.N}/{self.W}")

    @property
    def is_full(self) -> bool:
        return self.W == 1 << self.H

    def path(self) -> str:
        """The tile coordinate path, e.g. ``tile/8/0/x001/234.p/5`` or ``tile/8/data/000``.

        N is written three digits per path element, all but the last prefixed with ``x``,
        so that no directory has more than 3000 entries; ``.p/W`` marks a partial tile.
        """
        n = self.N
        parts = [f"{n % _PATH_BASE:03d}"]
        while n >= _PATH_BASE:
            n //= _PATH_BASE
            parts.append(f"x{n % _PATH_BASE:03d}")
        level = "data" if self.L == -1 else str(self.L)
        partial = "" if self.is_full else f".p/{self.W}"
        return f"tile/{self.H}/{level}/{'/'.join(reversed(parts))}{partial}"


def parse_tile_path(path: str) -> Tile:
    """Parse a tile coordinate path (as :meth:`Tile.path` writes it, nothing else).

    Raises :class:`MalformedTilePath` for anything not in canonical form: leading zeros,
    signs, a ``.p/W`` with W >= 2**H, missing or extra ``x`` prefixes, N beyond int64, ...
    """
    m = _TILE_PATH.fullmatch(path)
    if m is None:
        raise MalformedTilePath(path)
    h = int(m.group(1))
    level = -1 if m.group(2) == "data" else int(m.group(2))
    n = 0
    for part in m.group(3).split("/"):
        n = n * _PATH_BASE + int(part.removeprefix("x"))
    width = (1 << h) if m.group(4) is None else int(m.group(4))
    try:
        tile = Tile(h, level, n, width)
    except TlogError:
        raise MalformedTilePath(path) from None
    if tile.path() != path:  # e.g. "x000/123" or ".p/W" for a full width
        raise MalformedTilePath(path)
    return tile


def _tile_for_index(h: int, index: int) -> tuple[Tile, int, int]:
    """The least-width tile of height *h* holding stored hash *index*, with the byte range of the
    tile data that :func:`tile_hash` turns into that hash."""
    level, n = split_stored_hash_index(index)
    tl = level // h
    level -= tl * h  # level within the tile
    tn = (n << level) >> h
    n -= (tn << h) >> level  # n within the tile, at that level
    width = (n + 1) << level
    return Tile(h, tl, tn, width), (n << level) * HASH_SIZE, ((n + 1) << level) * HASH_SIZE


def tile_for_index(h: int, index: int) -> Tile:
    """The tile of height *h* and least width that stores hash *index*."""
    if not 1 <= h <= 30:
        raise TlogError(f"invalid tile height {h}")
    return _tile_for_index(h, index)[0]


def tile_hash(data: bytes) -> bytes:
    """The subtree hash of the 2**k hashes in *data*."""
    count, extra = divmod(len(data), HASH_SIZE)
    if count == 0 or extra or count & (count - 1):
        raise TlogError("tile data is not a power-of-two number of hashes")
    if len(data) == HASH_SIZE:
        return bytes(data)
    half = len(data) // 2
    return node_hash(tile_hash(data[:half]), tile_hash(data[half:]))


def hash_from_tile(tile: Tile, data: bytes, index: int) -> bytes:
    """The hash at stored *index*, read from the data of *tile*, which must be
    ``tile_for_index(tile.H, index)`` or a wider version of it."""
    if tile.L < 0:
        raise TlogError(f"invalid tile {tile.path()}")
    if len(data) < tile.W * HASH_SIZE:
        raise TlogError(f"data len {len(data)} too short for tile {tile.path()}")
    t1, start, end = _tile_for_index(tile.H, index)
    if tile.L != t1.L or tile.N != t1.N or tile.W < t1.W:
        raise TlogError(f"index {index} is in {t1.path()} not {tile.path()}")
    return tile_hash(data[start:end])


def new_tiles(h: int, old_n: int, new_n: int) -> list[Tile]:
    """The hash tiles of height *h* to publish when the tree grows from *old_n* to *new_n*
    records (every tile that is new or wider)."""
    if not 1 <= h <= 30:
        raise TlogError(f"invalid tile height {h}")
    if old_n < 0 or new_n < 0:
        raise TlogError("invalid tree size")
    tiles: list[Tile] = []
    level = 0
    while new_n >> (h * level) > 0:
        old_count = old_n >> (h * level)
        new_count = new_n >> (h * level)
        if old_count != new_count:
            for n in range(old_count >> h, new_count >> h):
                tiles.append(Tile(h, level, n, 1 << h))
            n = new_count >> h
            width = new_count - (n << h)
            if width > 0:
                tiles.append(Tile(h, level, n, width))
        level += 1
    return tiles


def read_tile_data(tile: Tile, read_hashes: HashReader) -> bytes:
    """The content of hash *tile*: its W hashes, concatenated, read through *read_hashes*."""
    if tile.L < 0:
        raise TlogError("read_tile_data: data tiles hold records, not hashes")
    start = tile.N << tile.H
    indexes = [stored_hash_index(tile.H * tile.L, start + i) for i in range(tile.W)]
    return b"".join(_read(read_hashes, indexes))


def tile_in_tree(tile: Tile, n: int) -> bool:
    """Whether *tile* (hash or data) is fully determined by the tree of *n* records, i.e. a server
    publishing that tree can serve it."""
    available = n if tile.L < 0 else n >> (tile.H * tile.L)
    return available >= (tile.N << tile.H) + tile.W


def format_data_tile(records: Sequence[bytes]) -> bytes:
    """The content of a data tile: each record text followed by a blank line (x/mod's server
    serves formatted records without their id line)."""
    for text in records:
        if not is_valid_record_text(text):
            raise MalformedRecord()
    return b"".join(text + b"\n" for text in records)


# --- tree heads ---------------------------------------------------------------------------------

_TREE_PREFIX = "go.sum database tree\n"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")  # non-negative, canonical, at most int64's 19 digits


@dataclass(frozen=True)
class Tree:
    """A tree head: size ``N`` and root hash ``Hash`` (names follow x/mod's Tree)."""

    N: int
    Hash: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.N <= _MAX_INT64:
            raise TlogError(f"invalid tree size {self.N}")
        _check_hash(self.Hash)


def format_tree(tree: Tree) -> str:
    """The tree note text: ``go.sum database tree\\n<N>\\n<base64 hash>\\n``."""
    return f"{_TREE_PREFIX}{tree.N}\n{format_hash(tree.Hash)}\n"


def parse_tree(text: str | bytes) -> Tree:
    """Parse a tree note text.

    Strict in the three lines (canonical decimal size, canonical base64 of 32 bytes); like x/mod,
    lines after the third are ignored for forward compatibility (they are covered by the note
    signature all the same). Raises :class:`MalformedTree`."""
    if isinstance(text, bytes):
        if len(text) > MAX_TREE_TEXT:
            raise MalformedTree()
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedTree() from None
    if len(text) > MAX_TREE_TEXT or not text.startswith(_TREE_PREFIX) or text.count("\n") < 3:
        raise MalformedTree()
    lines = text.split("\n", 3)
    if not _DECIMAL.fullmatch(lines[1]) or int(lines[1]) > _MAX_INT64:
        raise MalformedTree()
    h = _b64decode_exact(lines[2])
    if h is None or len(h) != HASH_SIZE:
        raise MalformedTree()
    return Tree(int(lines[1]), h)


# --- records and lookups ------------------------------------------------------------------------


def is_valid_record_text(text: bytes) -> bool:
    """Record text is non-empty UTF-8 without ASCII control characters other than newline, ends
    in a newline and has no blank line (x/mod tlog: FormatRecord)."""
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return (
        s.endswith("\n")
        and not s.startswith("\n")
        and "\n\n" not in s
        and not any(c < " " and c != "\n" for c in s)
    )


def format_lookup_record(record_id: int, text: bytes) -> bytes:
    """A record as a lookup response carries it: ``<id>\\n<text>\\n`` (text then a blank line)."""
    if not 0 <= record_id <= _MAX_INT64 or not is_valid_record_text(text):
        raise MalformedRecord()
    return b"%d\n" % record_id + text + b"\n"


def parse_lookup_record(msg: bytes) -> tuple[int, bytes, bytes]:
    """Parse a record at the start of *msg*: ``(id, text, rest after the blank line)``."""
    first, nl, msg = msg.partition(b"\n")
    if not nl or not _DECIMAL.fullmatch(first.decode("ascii", "replace")):
        raise MalformedRecord()
    record_id = int(first)
    if record_id > _MAX_INT64:
        raise MalformedRecord()
    end = msg.find(b"\n\n")
    if end < 0:
        raise MalformedRecord()
    text, rest = msg[: end + 1], msg[end + 2 :]
    if not is_valid_record_text(text):
        raise MalformedRecord()
    return record_id, text, rest


def format_lookup(record_id: int, text: bytes, signed_tree_note: bytes) -> bytes:
    """The body of a ``/lookup/M@V`` response: the formatted record, then the signed tree note
    of a tree containing it (go.dev/ref/mod "Checksum database"; x/mod sumdb server)."""
    return format_lookup_record(record_id, text) + signed_tree_note


def parse_lookup(body: bytes) -> tuple[int, bytes, bytes]:
    """Split a lookup response into ``(record id, record text, signed tree note bytes)``.

    Only the syntax is checked; the caller must open the note and authenticate the record
    against the tree (e.g. with a :class:`TileHashReader`)."""
    record_id, text, note = parse_lookup_record(body)
    if not note:
        raise MalformedRecord("lookup response has no signed tree note")
    return record_id, text, note


_H1 = re.compile(r"h1:[A-Za-z0-9+/]{43}=")


def _check_go_sum_field(what: str, value: str) -> None:
    if not value or any(c.isspace() or c < " " or c == "\x7f" for c in value):
        raise MalformedRecord(f"invalid {what} {value!r} for a go.sum record")


def format_record(module: str, version: str, zip_h1: str, mod_h1: str) -> bytes:
    """The checksum-database record text for one module version: two go.sum lines,
    ``M V h1:...\\nM V/go.mod h1:...\\n`` (zip hash, then go.mod hash)."""
    _check_go_sum_field("module path", module)
    _check_go_sum_field("version", version)
    for h in (zip_h1, mod_h1):
        if not _H1.fullmatch(h) or _b64decode_exact(h[3:]) is None:
            raise MalformedRecord(f"invalid h1 hash {h!r}")
    return f"{module} {version} {zip_h1}\n{module} {version}/go.mod {mod_h1}\n".encode()


# --- authenticated tile reading (x/mod tlog: TileHashReader) ------------------------------------


def _tile_parent(tile: Tile, k: int, n: int) -> Tile | None:
    """The k'th tile ancestor of *tile* in the tiles of a tree of *n* records, narrowed to the
    width that tree has; None when that tree has no such tile."""
    level = tile.L + k
    num = tile.N >> (k * tile.H)
    width = 1 << tile.H
    limit = n >> (level * tile.H)
    if (num << tile.H) + width >= limit:
        if num << tile.H >= limit:
            return None
        width = limit - (num << tile.H)
    return Tile(tile.H, level, num, width)


class TilePlan:
    """Which tiles to fetch to read some stored hashes of a trusted tree, and how to authenticate
    them. Build with :func:`plan_tile_reads`; fetch :attr:`tiles` however you like (sync or
    async, from cache or network); then :meth:`hashes` verifies the fetched data and returns the
    requested hashes.

    Authentication (research.swtch.com/tlog "Authenticating tiles"): the first tiles are those
    holding the hashes that combine into the tree hash; recomputing the tree hash from them and
    comparing it with the signed one authenticates every hash they contain. Every other tile is
    a full tile whose own hash is stored in its parent tile, which precedes it in the list;
    comparing the two authenticates it in turn. A tile that fails either check is rejected
    with :class:`InconsistentTile`.
    """

    __slots__ = (
        "_index_tile",
        "_num_stx_tiles",
        "_stx",
        "_stx_tile",
        "height",
        "indexes",
        "tiles",
        "tree",
    )

    def __init__(self, tree: Tree, height: int, indexes: Sequence[int]) -> None:
        if not 1 <= height <= 30:
            raise TlogError(f"invalid tile height {height}")
        self.tree = tree
        self.height = height
        self.indexes: tuple[int, ...] = tuple(indexes)
        limit = stored_hash_index(0, tree.N)
        for x in self.indexes:
            if not 0 <= x < limit:
                raise TlogError(f"index {x} not in tree of size {tree.N}")

        order: dict[Tile, int] = {}
        tiles: list[Tile] = []
        # Tiles needed to recompute the tree hash; stx[i] lives in tiles[stx_tile[i]].
        stx = _subtree_index(0, tree.N, []) if self.indexes else []
        stx_tile: list[int] = []
        for x in stx:
            parent = _tile_parent(_tile_for_index(height, x)[0], 0, tree.N)
            if parent is None:
                raise AssertionError("tlog: bad math in TilePlan: tree-hash tile outside tree")
            if parent not in order:
                order[parent] = len(tiles)
                tiles.append(parent)
            stx_tile.append(order[parent])
        num_stx_tiles = len(tiles)

        # Tiles holding the requested hashes, each after the ancestors that authenticate it.
        index_tile: list[int] = []
        for x in self.indexes:
            base = _tile_for_index(height, x)[0]
            k = 0
            while True:  # climb to an ancestor that is already planned (and so authenticated)
                ancestor = _tile_parent(base, k, tree.N)
                if ancestor is not None and ancestor in order:
                    break
                if ancestor is None:
                    raise AssertionError("tlog: bad math in TilePlan: no planned ancestor")
                k += 1
            for j in range(k - 1, -1, -1):  # walk back down, parents before children
                child = _tile_parent(base, j, tree.N)
                if child is None or not child.is_full:  # a tile with a parent is full
                    raise AssertionError(f"tlog: bad math in TilePlan: {tree.N} {x} {child}")
                order[child] = len(tiles)
                tiles.append(child)
            tile0 = _tile_parent(base, 0, tree.N)
            if tile0 is None:
                raise AssertionError("tlog: bad math in TilePlan: index tile outside tree")
            index_tile.append(order[tile0])

        self.tiles: tuple[Tile, ...] = tuple(tiles)
        self._stx = tuple(stx)
        self._stx_tile = tuple(stx_tile)
        self._num_stx_tiles = num_stx_tiles
        self._index_tile = tuple(index_tile)

    def hashes(self, data: Sequence[bytes]) -> list[bytes]:
        """Authenticate *data* (one bytes per tile of :attr:`tiles`, in order) against the tree
        and return the requested hashes. Raises :class:`InconsistentTile` on any forged tile."""
        tiles = self.tiles
        if len(data) != len(tiles):
            raise TlogError(f"tile reader returned {len(data)} tiles, want {len(tiles)}")
        for tile, d in zip(tiles, data, strict=True):
            if len(d) != tile.W * HASH_SIZE:
                raise InconsistentTile(f"tile {tile.path()} has {len(d)} bytes, want {tile.W * HASH_SIZE}")
        if not self.indexes:
            return []

        # 1. The tree-hash tiles must reproduce the signed tree hash.
        th = b""
        for i in range(len(self._stx) - 1, -1, -1):
            j = self._stx_tile[i]
            h = hash_from_tile(tiles[j], data[j], self._stx[i])
            th = h if not th else node_hash(h, th)
        if th != self.tree.Hash:
            raise InconsistentTile()

        # 2. Every other tile must hash to the value stored for it in its (earlier) parent.
        # (Count tiles, not stx hashes: several stx hashes can share one tile, and starting the
        # loop at len(stx) would skip tiles that were never authenticated.)
        position = {tile: i for i, tile in enumerate(tiles)}
        for i in range(self._num_stx_tiles, len(tiles)):
            tile = tiles[i]
            parent = _tile_parent(tile, 1, self.tree.N)
            if parent is None or parent not in position or position[parent] >= i:
                raise AssertionError(f"tlog: bad math in TilePlan: lost parent of {tile}")
            j = position[parent]
            expect = hash_from_tile(parent, data[j], stored_hash_index(parent.L * parent.H, tile.N))
            if tile_hash(data[i]) != expect:
                raise InconsistentTile()

        return [
            hash_from_tile(tiles[j], data[j], x) for x, j in zip(self.indexes, self._index_tile, strict=True)
        ]


def plan_tile_reads(tree: Tree, height: int, indexes: Sequence[int]) -> TilePlan:
    """Plan the tile fetches that authenticate the hashes at *indexes* in *tree*."""
    return TilePlan(tree, height, indexes)


class TileHashReader:
    """A hash reader over tiles of a trusted (signed) tree, checking every tile it loads.

    Any hash it returns is proven to be in *tree*, so it can feed :func:`tree_hash`,
    :func:`prove_record` or :func:`prove_tree` directly. *read_tiles* returns the data of each
    requested tile; *save_tiles*, when given, is called with tiles only after they have been
    authenticated (so only then may a caller persist them; see x/mod's TileReader.SaveTiles).
    For async fetching use :func:`plan_tile_reads` directly.
    """

    def __init__(
        self,
        tree: Tree,
        height: int,
        read_tiles: TileReader,
        save_tiles: TileSaver | None = None,
    ) -> None:
        if not 1 <= height <= 30:
            raise TlogError(f"invalid tile height {height}")
        self.tree = tree
        self.height = height
        self._read_tiles = read_tiles
        self._save_tiles = save_tiles

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        plan = TilePlan(self.tree, self.height, indexes)
        if not plan.indexes:
            return []
        data = [bytes(d) for d in self._read_tiles(plan.tiles)]
        hashes = plan.hashes(data)
        if self._save_tiles is not None:
            self._save_tiles(plan.tiles, data)
        return hashes

    def __call__(self, indexes: Sequence[int]) -> list[bytes]:
        return self.read_hashes(indexes)
