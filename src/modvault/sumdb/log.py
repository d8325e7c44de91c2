"""An append-only checksum log, as pure functions over stored hashes (plus an in-memory model).

A checksum database (Go proposal 25530, "Checksum database") is a Merkle tree of records, each
record the go.sum lines of one module version. Appending records means computing the hashes to
store for each new leaf (and the interior nodes it completes), then the new tree hash, then
signing the new tree head as a note. This module does that arithmetic and nothing else:

- :func:`append_records` / :func:`append_record_hashes` read existing stored hashes through a
  callback and return what to persist (:class:`Appended`); the storage layer writes it.
- :func:`sign_tree` / :func:`open_tree` turn a tree head into a signed note and back.
- :class:`MemoryLog` keeps everything in lists: a reference model for tests and for a small
  private database server.

Pure: no I/O; callbacks do the reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from modvault.sumdb import note as _note
from modvault.sumdb import tlog

__all__ = [
    "Appended",
    "MemoryLog",
    "append_record_hashes",
    "append_records",
    "open_tree",
    "sign_tree",
]


@dataclass(frozen=True)
class Appended:
    """The outcome of appending records to a log of ``old_size`` records.

    Persist :attr:`hashes` at stored-hash indexes ``start_index, start_index + 1, ...`` (and the
    record texts at ids :attr:`record_ids`), then publish :attr:`tree`.
    """

    old_size: int
    tree: tlog.Tree
    start_index: int
    hashes: tuple[bytes, ...]

    @property
    def record_ids(self) -> range:
        return range(self.old_size, self.tree.N)

    def new_tiles(self, height: int) -> list[tlog.Tile]:
        """The hash tiles to (re)publish for this growth of the tree."""
        return tlog.new_tiles(height, self.old_size, self.tree.N)


class _Overlay:
    """Stored hashes as a reader: persisted ones through the callback, the ones computed in this
    batch (not yet persisted) from memory."""

    def __init__(self, read_hashes: tlog.HashReader, start: int) -> None:
        self._read = read_hashes
        self._start = start
        self.pending: list[bytes] = []

    def __call__(self, indexes: Sequence[int]) -> list[bytes]:
        old = [x for x in indexes if x < self._start]
        found: dict[int, bytes] = {}
        if old:
            hashes = list(self._read(old))
            if len(hashes) != len(old):
                raise tlog.TlogError(f"hash reader returned {len(hashes)} hashes for {len(old)}")
            found = dict(zip(old, hashes, strict=True))
        out: list[bytes] = []
        for x in indexes:
            if x < self._start:
                out.append(found[x])
            elif x - self._start < len(self.pending):
                out.append(self.pending[x - self._start])
            else:
                raise tlog.TlogError(f"stored hash {x} does not exist yet")
        return out


def append_record_hashes(
    old_size: int, record_hashes: Iterable[bytes], read_hashes: tlog.HashReader
) -> Appended:
    """Append leaves with the given record hashes (``tlog.record_hash(text)``) to a log of
    *old_size* records whose stored hashes *read_hashes* returns."""
    if old_size < 0:
        raise tlog.TlogError(f"invalid tree size {old_size}")
    start = tlog.stored_hash_count(old_size)
    overlay = _Overlay(read_hashes, start)
    n = old_size
    for h in record_hashes:
        overlay.pending.extend(tlog.stored_hashes_for_record_hash(n, h, overlay))
        n += 1
    if start + len(overlay.pending) != tlog.stored_hash_count(n):
        raise AssertionError("log: bad stored hash count")
    if n == old_size:  # nothing appended: the tree is what it was
        tree = tlog.Tree(n, tlog.tree_hash(n, read_hashes))
    else:
        tree = tlog.Tree(n, tlog.tree_hash(n, overlay))
    return Appended(old_size, tree, start, tuple(overlay.pending))


def append_records(old_size: int, records: Iterable[bytes], read_hashes: tlog.HashReader) -> Appended:
    """Append *records* (record texts, see :func:`tlog.format_record`) to a log of *old_size*
    records. Record texts must be valid (:func:`tlog.is_valid_record_text`): they are served
    in lookups and data tiles later."""
    hashes: list[bytes] = []
    for text in records:
        if not tlog.is_valid_record_text(text):
            raise tlog.MalformedRecord()
        hashes.append(tlog.record_hash(text))
    return append_record_hashes(old_size, hashes, read_hashes)


def sign_tree(tree: tlog.Tree, signers: _note.Signer | Sequence[_note.Signer]) -> bytes:
    """The signed tree head note served at ``/latest`` and after each lookup record."""
    return _note.sign(tlog.format_tree(tree), signers)


def open_tree(msg: bytes, known: _note.Verifiers | Iterable[_note.Verifier]) -> tuple[tlog.Tree, _note.Note]:
    """Open a signed tree head note and parse its tree. Raises the errors of
    :func:`note.open_note` and :class:`tlog.MalformedTree`."""
    opened = _note.open_note(msg, known)
    return tlog.parse_tree(opened.text), opened


class MemoryLog:
    """A whole log in memory: record texts, stored hashes, and the current tree.

    The reference model the storage-backed log must agree with, and a complete backend for
    tests (it serves tiles, data tiles and proofs the way a checksum database does).
    """

    def __init__(self) -> None:
        self._records: list[bytes] = []
        self._hashes: list[bytes] = []
        self._tree = tlog.Tree(0, tlog.EMPTY_TREE_HASH)

    @property
    def size(self) -> int:
        return len(self._records)

    def tree(self) -> tlog.Tree:
        return self._tree

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        out = []
        for x in indexes:
            if not 0 <= x < len(self._hashes):
                raise tlog.TlogError(f"stored hash {x} does not exist")
            out.append(self._hashes[x])
        return out

    def append(self, records: Iterable[bytes]) -> Appended:
        texts = [bytes(t) for t in records]
        # Validates every text and computes everything before anything is committed.
        appended = append_records(self.size, texts, self.read_hashes)
        self._records.extend(texts)
        self._hashes.extend(appended.hashes)
        self._tree = appended.tree
        return appended

    def records(self, start: int, count: int) -> list[bytes]:
        if start < 0 or count < 0 or start + count > self.size:
            raise tlog.TlogError(f"records [{start}, {start + count}) not in log of {self.size}")
        return self._records[start : start + count]

    def read_tile(self, tile: tlog.Tile, tree_size: int | None = None) -> bytes:
        """Tile content as a checksum database serves it: hashes for L >= 0, record texts for a
        data tile. *tree_size* (default: now) is the published tree the tile must belong to."""
        size = self.size if tree_size is None else tree_size
        if not 0 <= size <= self.size or not tlog.tile_in_tree(tile, size):
            raise tlog.TlogError(f"tile {tile.path()} not in tree of size {size}")
        if tile.L == -1:
            return tlog.format_data_tile(self.records(tile.N << tile.H, tile.W))
        return tlog.read_tile_data(tile, self.read_hashes)

    def read_tiles(self, tiles: Sequence[tlog.Tile]) -> list[bytes]:
        """:data:`tlog.TileReader` for a :class:`tlog.TileHashReader` over this log."""
        return [self.read_tile(t) for t in tiles]

    def tree_at(self, size: int) -> tlog.Tree:
        if not 0 <= size <= self.size:
            raise tlog.TlogError(f"no tree of size {size} in log of {self.size}")
        return tlog.Tree(size, tlog.tree_hash(size, self.read_hashes))

    def prove_record(self, record_id: int, tree_size: int | None = None) -> list[bytes]:
        size = self.size if tree_size is None else tree_size
        return tlog.prove_record(size, record_id, self.read_hashes)

    def prove_tree(self, old_size: int, tree_size: int | None = None) -> list[bytes]:
        size = self.size if tree_size is None else tree_size
        return tlog.prove_tree(size, old_size, self.read_hashes)
