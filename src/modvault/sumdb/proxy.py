"""Proxying checksum databases, and the fetch + cache + authentication layer modvault's verifier shares.

The go command asks a GOPROXY for a checksum database at ``<proxy>/sumdb/<name>/...`` after
``/sumdb/<name>/supported`` answered 200 (proposal 25530, "Proxying a Checksum Database";
go.dev/ref/mod "Checksum database"): ``latest``, ``lookup/M@V``, ``tile/H/L/K[.p/W]`` and
``tile/H/data/K[.p/W]``. :class:`SumdbProxy` answers those for each configured database, from the
store when it can, from the database otherwise, and checks everything that passes through.

:class:`SumdbFetcher` is the layer underneath, one per database, shared with
:class:`modvault.sumdb.client.ChecksumVerifier`. It keeps a verified timeline the way x/mod's
sumdb client does (client.go ``mergeLatest``/``checkTrees``): every signed tree head that comes in
is checked against the latest one verified before (kept durably), and a fork is an alarm.

What is stored, and why (store keys are in the GOPROXY URL space, so a filesystem store is a
valid ``file://`` GOPROXY for the database too):

``sumdb/<name>/tile/H/L/K`` (full hash and data tiles)
    Immutable: stored forever, but only after they were authenticated against a signed tree head
    (research.swtch.com/tlog "Authenticating tiles"), so a forged or corrupt tile is never kept.
``sumdb/<name>/tile/H/L/K.p/W`` (partial tiles)
    The bytes of a partial tile are fixed by its coordinates too (a prefix of the full tile), so a
    time-to-live would only add traffic. What makes them short-lived is that they are superseded:
    storing a wider partial tile or the full tile deletes the narrower ones at that position, and
    a request for a narrower one is answered by slicing the wider one (as x/mod's client does).
    Also stored only once authenticated.
``sumdb/<name>/latest``
    The signed tree head, fresh for ``ttl`` seconds, served stale when the database is
    unreachable. Stored only when signed by the configured key and consistent with the timeline.
``sumdb/<name>/lookup/<escaped path>@<escaped version>``
    Lookup answers. The record is immutable once signed but the tree head in the answer grows
    old, so they are fresh for ``ttl`` and served stale when the database is unreachable. Stored
    only after the record was proven to be in a verified tree.
``.modvault/sumdb/<name>/latest-verified``
    The newest signed tree head verified so far (the go command keeps the same in
    ``$GOPATH/pkg/sumdb/<name>/latest``). Every newer head must contain it; an older one must be
    its prefix; same size with another hash is a fork.

Anything that fails a check is never stored and never passed on: malformed or unsigned notes are
``InvalidContent`` (502), forged signatures, inconsistent tiles and forks are ``SecurityError``
(502, "SECURITY ERROR ...", counted in ``modvault_security_errors_total``), bad request paths are
``BadRequest`` (400), unknown databases and missing records ``NotFound`` (404).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from modvault.cache.singleflight import SingleFlight
from modvault.errors import (
    BadRequest,
    Forbidden,
    InvalidContent,
    ModvaultError,
    NotFound,
    SecurityError,
    Unavailable,
)
from modvault.module.errors import ModuleError
from modvault.module.path import check, escape_path, escape_version, unescape_path, unescape_version
from modvault.observability import metrics
from modvault.sources.health import HealthRecord, HealthRegistry
from modvault.sources.retry import Retry, with_retries
from modvault.sources.tracking import check_allowed, gave_up, remember_unreachable, tracked_get
from modvault.sources.upstream import UpstreamLimits, first_line, read_bounded
from modvault.storage.base import Store, VersionConflict
from modvault.sumdb import log as sumlog
from modvault.sumdb import note as _note
from modvault.sumdb import tlog
from modvault.sumdb.config import SumdbConfig

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONTENT_BINARY",
    "CONTENT_TEXT",
    "IMMUTABLE",
    "MAX_TILE_HEIGHT",
    "TILE_HEIGHT",
    "LookupAnswer",
    "SumdbFetcher",
    "SumdbProxy",
    "SumdbResponse",
    "data_tile_records",
    "parse_lookup_path",
    "parse_tile_request",
    "record_hashes_for",
    "slice_tile",
]

LOG = logging.getLogger("modvault.sumdb")
T = TypeVar("T")

TILE_HEIGHT = 8
"""The tile height the go command and sum.golang.org use (x/mod sumdb client default)."""

MAX_TILE_HEIGHT = 12
"""Tiles of greater height are refused: a full tile of height H is 2**H * 32 bytes, and nothing
in the Go ecosystem uses more than 8."""

CONTENT_TEXT = "text/plain; charset=utf-8"
CONTENT_BINARY = "application/octet-stream"
IMMUTABLE = "public, max-age=31536000, immutable"

MAX_NOTE_BYTES = 64 * 1024  # a tree note with 100 signatures is ~12 KiB
MAX_LOOKUP_BYTES = 256 * 1024
MAX_RECORD_BYTES = 16 * 1024  # per record in a data tile
_REFRESH_INTERVAL = 1.0  # at most one forced /latest per second and database
SUMDB_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class SumdbResponse:
    """An answer for ``/sumdb/<name>/<rest>``: the server renders it as is."""

    status: int
    body: bytes
    content_type: str
    cache_control: str


# --- request paths ------------------------------------------------------------------------------


def parse_lookup_path(spec: str) -> tuple[str, str]:
    """``<escaped module path>@<escaped version>`` (the part after ``lookup/``) as (module, version).

    The module path and version must be valid and canonical, as the go command sends them (x/mod
    sumdb server.go: module.UnescapePath/UnescapeVersion). Raises :class:`BadRequest`."""
    epath, at, evers = spec.partition("@")
    if not at or not epath or not evers:
        raise BadRequest(f"invalid module@version syntax {spec!r}")
    try:
        module = unescape_path(epath)
        version = unescape_version(evers)
        check(module, version)
    except ModuleError as exc:
        raise BadRequest(f"invalid lookup {spec!r}: {exc}") from None
    return module, version


def parse_tile_request(rest: str) -> tlog.Tile:
    """A ``tile/...`` request path as a tile, strictly (tlog.parse_tile_path), with a bounded height.
    Raises :class:`BadRequest`."""
    try:
        tile = tlog.parse_tile_path(rest)
    except tlog.MalformedTilePath:
        raise BadRequest(f"invalid tile syntax {rest!r}") from None
    if tile.H > MAX_TILE_HEIGHT:
        raise BadRequest(f"tile height {tile.H} not supported (at most {MAX_TILE_HEIGHT})")
    return tile


def _lookup_suffix(module: str, version: str) -> str:
    return f"lookup/{escape_path(module)}@{escape_version(version)}"


# --- tile data ----------------------------------------------------------------------------------


def data_tile_records(data: bytes) -> list[bytes]:
    """Split a data tile into its entries (each without the blank line that ends it).

    A data tile is a sequence of records, each followed by a blank line. x/mod's sumdb server
    writes each as ``tlog.FormatRecord(id, text)`` (``<id>\\n<text>\\n``); a server may also omit
    the id line. Record texts have no blank lines, so the split is unambiguous. Raises ValueError."""
    if not data.endswith(b"\n\n"):
        raise ValueError("data tile does not end in a blank line")
    parts = data[:-2].split(b"\n\n")
    if any(not p for p in parts):
        raise ValueError("data tile has an empty record")
    return parts


def _entry_matches(entry: bytes, record_id: int, leaf: bytes) -> bool:
    """Whether a data-tile entry is record *record_id* with leaf hash *leaf*, with or without
    its id line."""
    text = entry + b"\n"
    if tlog.record_hash(text) == leaf:
        return True
    first, nl, rest = text.partition(b"\n")
    return bool(nl) and first == b"%d" % record_id and bool(rest) and tlog.record_hash(rest) == leaf


def slice_tile(tile: tlog.Tile, data: bytes, width: int) -> bytes:
    """The data of the narrower tile of *width* at *tile*'s position: a prefix of *data*."""
    if tile.L >= 0:
        return data[: width * tlog.HASH_SIZE]
    parts = data_tile_records(data)
    return b"\n\n".join(parts[:width]) + b"\n\n"


def _check_tile_size(name: str, tile: tlog.Tile, data: bytes) -> None:
    """Hash tiles are exactly W hashes; data tiles exactly W records of bounded size."""
    if tile.L >= 0:
        want = tile.W * tlog.HASH_SIZE
        if len(data) != want:
            raise InvalidContent(f"{name}: {tile.path()}: tile has {len(data)} bytes, want {want}")
        return
    try:
        parts = data_tile_records(data)
    except ValueError as exc:
        raise InvalidContent(f"{name}: {tile.path()}: malformed data tile: {exc}") from None
    if len(parts) != tile.W:
        raise InvalidContent(f"{name}: {tile.path()}: data tile has {len(parts)} records, want {tile.W}")


def _max_tile_bytes(tile: tlog.Tile) -> int:
    return (1 << tile.H) * (tlog.HASH_SIZE if tile.L >= 0 else MAX_RECORD_BYTES)


def record_hashes_for(module: str, version: str, text: bytes) -> tuple[str | None, str | None]:
    """The (zip h1, go.mod h1) a record text gives for module@version (None where it has no line)."""
    zip_h1: str | None = None
    mod_h1: str | None = None
    for line in text.decode("utf-8", "replace").split("\n"):
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != module:
            continue
        if fields[1] == version:
            zip_h1 = fields[2]
        elif fields[1] == version + "/go.mod":
            mod_h1 = fields[2]
    return zip_h1, mod_h1


# --- the fetcher --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LookupAnswer:
    """A lookup answer, parsed. ``verified`` when the record was proven (in this call or before it
    was stored) to be in a tree consistent with the verified timeline."""

    module: str
    version: str
    body: bytes
    record_id: int
    text: bytes
    tree: tlog.Tree
    note: bytes
    source: str  # "network", "cache" or "stale"
    verified: bool


class _Unauthenticated(Exception):
    """Internal: a tile could not be authenticated for lack of a tree head or tiles (not forgery)."""


class SumdbFetcher:
    """Fetch, check and cache one checksum database's answers; keep its verified timeline.

    One instance per database per process, shared by the proxy and the verifier (the timeline
    lock and the single-flight tables live here). Blocking store calls run in threads.
    """

    def __init__(
        self,
        config: SumdbConfig,
        store: Store,
        client: httpx.AsyncClient,
        *,
        ttl: float = 300.0,
        offline: bool = False,
        limits: UpstreamLimits | None = None,
        withheld: Callable[[str], bool] | None = None,
        health: HealthRegistry | None = None,
    ) -> None:
        self.config = config
        # Module paths never sent to this database (private / nosumdb patterns): a lookup for one
        # would tell the database's operator the name of a private module.
        self.withheld = withheld
        self.health = health
        self.record: HealthRecord | None = health.get(config.name, "sumdb") if health else None
        self.name = config.name
        self.store = store
        self.client = client
        self.ttl = ttl
        self.offline = offline
        self.limits = limits or UpstreamLimits(retries=2, total_timeout=60.0)
        self._verifiers = _note.VerifierList(config.verifier)
        self._prefix = f"sumdb/{config.name}/"
        self.latest_verified_key = f".modvault/sumdb/{config.name}/latest-verified"
        self._timeline_lock = asyncio.Lock()
        self._verified: tuple[tlog.Tree, bytes] | None = None
        self._verified_loaded = False
        self._tiles: SingleFlight[bytes] = SingleFlight()
        self._answers: SingleFlight[LookupAnswer] = SingleFlight()
        self._latest: SingleFlight[bytes] = SingleFlight()
        self._last_refresh = 0.0

    # -- keys ----------------------------------------------------------------------------------

    def tile_key(self, tile: tlog.Tile) -> str:
        return self._prefix + tile.path()

    def lookup_key(self, module: str, version: str) -> str:
        return self._prefix + _lookup_suffix(module, version)

    @property
    def latest_key(self) -> str:
        return self._prefix + "latest"

    # -- errors --------------------------------------------------------------------------------

    def _security(self, kind: str, message: str) -> SecurityError:
        metrics.SECURITY_ERRORS.labels(self.name, kind).inc()
        LOG.error("sumdb %s: %s", self.name, message)
        return SecurityError(message)

    def _open_tree(self, msg: bytes, what: str) -> tlog.Tree:
        """Open a signed tree note from the database with the configured key."""
        try:
            tree, _ = sumlog.open_tree(msg, self._verifiers)
        except _note.InvalidSignature:
            raise self._security(
                "bad_signature",
                f"SECURITY ERROR: checksum database {self.name}: {what}: the tree note carries an "
                f"invalid signature by {self.config.vkey.rsplit('+', 1)[0]} (forged or tampered)") from None
        except _note.UnverifiedNote:
            raise InvalidContent(
                f"{self.name}: {what}: tree note is not signed by the configured key "
                f"{self.config.vkey.rsplit('+', 1)[0]}") from None
        except (_note.NoteError, tlog.TlogError) as exc:
            raise InvalidContent(f"{self.name}: {what}: malformed tree note: {exc}") from None
        return tree

    # -- HTTP ----------------------------------------------------------------------------------

    async def _http_get(self, kind: str, path: str, limit: int) -> bytes:
        """GET ``<url>/<path>`` with retries and bounds. NotFound on 404/410; Unavailable else."""
        if self.offline:
            raise Unavailable(f"{self.name}: {kind}: offline")
        url = f"{self.config.url}/{path}"
        what = f"{kind} {path}"

        def outcome(result: str) -> None:
            metrics.SUMDB_UPSTREAM_REQUESTS.labels(self.name, kind, result).inc()

        health, rec = self.health, self.record
        check_allowed(health, rec)  # unreachable moments ago: say so at once
        return await with_retries(self.name, what, self.limits,
                                  lambda: self._attempt(url, what, limit), on_outcome=outcome,
                                  stop=lambda: gave_up(health, rec),
                                  on_unreachable=lambda why: remember_unreachable(health, rec, why))

    async def _attempt(self, url: str, what: str, limit: int) -> bytes:
        async with tracked_get(self.client, url, self.health, self.record) as resp:
            if resp.status_code == 200:
                return await read_bounded(resp, limit, what=f"{self.name}: {what}")
            reason = first_line(await read_bounded(resp, 4096, truncate=True),
                                content_type=resp.headers.get("content-type", "")) \
                or resp.reason_phrase
            if resp.status_code in (404, 410):
                raise NotFound(f"{self.name}: {what}: {resp.status_code} not found: {reason}")
            err = Unavailable(f"{self.name}: {what}: database answered {resp.status_code} {reason}")
            if resp.status_code in SUMDB_RETRY_STATUSES:
                raise Retry(err)
            raise err

    # -- store helpers -------------------------------------------------------------------------

    async def _stored_versioned(self, key: str) -> tuple[bytes, float, str] | None:
        """(bytes, age in seconds, version) of a stored object, or None."""
        got = await self.store.get(key)
        if got is None:
            return None
        data, info = got
        return data, max(0.0, time.time() - info.mtime), info.etag

    async def _stored(self, key: str) -> tuple[bytes, float] | None:
        """(bytes, age in seconds) of a stored object, or None."""
        got = await self._stored_versioned(key)
        return None if got is None else (got[0], got[1])

    async def _put(self, key: str, data: bytes) -> None:
        await self.store.put(key, data)

    # -- the verified timeline (x/mod client.go mergeLatest / checkTrees) ----------------------

    async def _load_verified(self) -> tuple[tuple[tlog.Tree, bytes] | None, str | None]:
        """The remembered tree head and its store version (for compare-and-swap)."""
        got = await self._stored_versioned(self.latest_verified_key)
        if got is None:
            return None, None
        msg = got[0]
        try:
            tree, _ = sumlog.open_tree(msg, self._verifiers)
        except _note.UnverifiedNote as exc:
            # Signed by a key no longer configured (a rotated private database): we verified it
            # when we stored it, and our store is trusted.
            try:
                tree = tlog.parse_tree(exc.note.text)
            except tlog.TlogError:
                raise Unavailable(self._corrupt_state()) from None
        except _note.InvalidSignature:
            raise self._security(
                "bad_signature",
                f"SECURITY ERROR: {self.latest_verified_key} carries an invalid signature by the "
                f"key of {self.name}: the stored state was tampered with") from None
        except (_note.NoteError, tlog.TlogError):
            raise Unavailable(self._corrupt_state()) from None
        return (tree, msg), got[2]

    def _corrupt_state(self) -> str:
        return (f"{self.name}: stored tree head {self.latest_verified_key} is corrupt; remove it to "
                f"trust the database's next tree head on first use")

    async def verified_tree(self) -> tlog.Tree | None:
        """The newest verified tree head (loaded from the store the first time)."""
        if not self._verified_loaded:
            self._verified, _ = await self._load_verified()
            self._verified_loaded = True
        return None if self._verified is None else self._verified[0]

    async def merge_tree(self, msg: bytes, tree: tlog.Tree | None = None) -> tlog.Tree:
        """Merge the signed tree head *msg* into the verified timeline; return the newest verified tree.

        The first head is trusted on first use. A newer head must contain the remembered one
        (consistency proof from its tiles) and is remembered durably in its place; an older head
        must be a prefix of the remembered one; same size, other hash is a fork. Any
        inconsistency raises :class:`SecurityError`.

        The remembered head moves only by compare-and-swap in the store: when another process or
        replica moved it meanwhile, the merge starts again from what it wrote, so two replicas
        can never replace each other's newer head with an older one."""
        if tree is None:
            tree = self._open_tree(msg, "tree note")
        async with self._timeline_lock:
            while True:
                current, version = await self._load_verified()
                self._verified, self._verified_loaded = current, True
                if current is None:
                    if not await self._swap(msg, None):
                        continue
                    self._verified = (tree, msg)
                    LOG.info("sumdb %s: trusting tree head %d on first use", self.name, tree.N)
                    return tree
                cur, cur_msg = current
                if tree.N == cur.N:
                    if tree.Hash != cur.Hash:
                        raise self._fork(cur, cur_msg, tree, msg, "same size, different hash")
                    return cur
                if tree.N > cur.N:
                    if not await self._consistent(cur, tree):
                        raise self._fork(cur, cur_msg, tree, msg, "no consistency proof")
                    if not await self._swap(msg, version):
                        continue
                    self._verified = (tree, msg)
                    return tree
                if not await self._consistent(tree, cur):
                    raise self._fork(cur, cur_msg, tree, msg, "not a prefix")
                return cur

    async def _swap(self, msg: bytes, version: str | None) -> bool:
        try:
            await self.store.put_if_version(self.latest_verified_key, msg, version)
        except VersionConflict:
            return False
        return True

    async def _consistent(self, older: tlog.Tree, newer: tlog.Tree) -> bool:
        """Whether *older* is a prefix of *newer*: a consistency proof (tlog.prove_tree) built from
        tiles authenticated against *newer*, checked (tlog.check_tree) against both signed hashes.
        Raises SecurityError when newer's own tiles do not match it."""
        if older.N == 0:
            return older.Hash == tlog.EMPTY_TREE_HASH
        proof = await self.run_with_hashes(newer, lambda read: tlog.prove_tree(newer.N, older.N, read))
        try:
            tlog.check_tree(proof, newer.N, newer.Hash, older.N, older.Hash)
        except tlog.ProofError:
            return False
        return True

    def _fork(self, verified: tlog.Tree, verified_msg: bytes, seen: tlog.Tree, seen_msg: bytes,
              why: str) -> SecurityError:
        """The alarm for a tree head *seen* that contradicts the *verified* one. The log holds both
        signed notes: together they prove the database's misbehaviour (x/mod client.go checkTrees)."""
        LOG.error("sumdb %s: misbehaviour detected (%s)\nverified tree note:\n%s\nnew tree note:\n%s",
                  self.name, why, verified_msg.decode("utf-8", "replace"),
                  seen_msg.decode("utf-8", "replace"))
        if verified.N == seen.N:
            detail = f"two trees of size {seen.N} with different hashes"
        elif verified.N < seen.N:
            detail = f"tree of size {seen.N} does not contain the verified tree of size {verified.N}"
        else:
            detail = f"tree of size {seen.N} is not a prefix of the verified tree of size {verified.N}"
        return self._security(
            "fork",
            f"SECURITY ERROR: checksum database {self.name} misbehaviour detected: forked log ({detail}); "
            f"nothing from it is trusted until an operator investigates")

    # -- authenticated hashes and tiles --------------------------------------------------------

    async def run_with_hashes(self, tree: tlog.Tree, fn: Callable[[tlog.HashReader], T]) -> T:
        """Run the tlog computation *fn* (which reads stored hashes once, as tlog.tree_hash,
        prove_record and prove_tree do) with hashes authenticated against *tree*."""
        need: list[int] = []

        class _Need(Exception):
            pass

        def record(indexes: Sequence[int]) -> list[bytes]:
            need.extend(indexes)
            raise _Need

        try:
            return fn(record)
        except _Need:
            pass
        hashes = await self.read_hashes(tree, need)
        table = dict(zip(need, hashes, strict=True))
        return fn(lambda indexes: [table[i] for i in indexes])

    async def read_hashes(self, tree: tlog.Tree, indexes: Sequence[int],
                          height: int = TILE_HEIGHT) -> list[bytes]:
        """Stored hashes of *tree*, read from tiles and authenticated against it (tlog.TilePlan)."""
        hashes, _ = await self._authenticated(tree, height, indexes, {})
        return hashes

    async def _authenticated(
        self, tree: tlog.Tree, height: int, indexes: Sequence[int], given: dict[tlog.Tile, bytes]
    ) -> tuple[list[bytes], dict[tlog.Tile, bytes]]:
        """Fetch (store first, then network) the tiles that authenticate *indexes* in *tree*,
        check them, store the ones that came from the network, and return the hashes and tiles.

        *given* holds tile data already fetched from the network (not yet trusted). A stored
        tile that fails the check is fetched again from the network (the store could hold a tile
        of an abandoned fork or a damaged file); a network tile that fails it is forgery."""
        plan = tlog.plan_tile_reads(tree, height, indexes)
        if not plan.tiles:
            return plan.hashes([]), {}
        data, cached = await self._collect(plan.tiles, given, use_cache=True)
        try:
            hashes = plan.hashes(data)
        except tlog.InconsistentTile:
            if not any(cached):
                raise self._inconsistent(tree) from None
            LOG.warning("sumdb %s: stored tiles disagree with tree %d; fetching them again",
                        self.name, tree.N)
            data, cached = await self._collect(plan.tiles, given, use_cache=False)
            try:
                hashes = plan.hashes(data)
            except tlog.InconsistentTile:
                raise self._inconsistent(tree) from None
            stale = [t for t, c in zip(plan.tiles, cached, strict=True) if c]
            await self._purge(stale)
            await self._save_tiles(plan.tiles, data, True)
            return hashes, dict(zip(plan.tiles, data, strict=True))
        fresh = [(t, d) for t, d, c in zip(plan.tiles, data, cached, strict=True) if not c]
        if fresh:
            await self._save_tiles([t for t, _ in fresh], [d for _, d in fresh], False)
        return hashes, dict(zip(plan.tiles, data, strict=True))

    def _inconsistent(self, tree: tlog.Tree) -> SecurityError:
        return self._security(
            "inconsistent_tile",
            f"SECURITY ERROR: checksum database {self.name} served tiles that do not match its signed "
            f"tree head of size {tree.N} (forged or corrupt tile); nothing was stored")

    async def _collect(self, tiles: Sequence[tlog.Tile], given: dict[tlog.Tile, bytes], *,
                       use_cache: bool) -> tuple[list[bytes], list[bool]]:
        async def one(tile: tlog.Tile) -> tuple[bytes, bool]:
            if tile in given:
                return given[tile], False
            if use_cache:
                hit = await self._cached_tile(tile)
                if hit is not None:
                    return hit, True
            try:
                return await self._fetch_tile(tile), False
            except NotFound:
                raise Unavailable(f"{self.name}: {tile.path()}: tile needed to check a tree head "
                                  f"is not available") from None

        results = await asyncio.gather(*(one(t) for t in tiles))
        return [d for d, _ in results], [c for _, c in results]

    async def _cached_tile(self, tile: tlog.Tile) -> bytes | None:
        """A stored tile: exact, or sliced from the full tile or a wider partial one."""
        got = await self._stored(self.tile_key(tile))
        if got is not None and self._size_ok(tile, got[0]):
            return got[0]
        if tile.is_full:
            return None
        full = tlog.Tile(tile.H, tile.L, tile.N, 1 << tile.H)
        got = await self._stored(self.tile_key(full))
        if got is not None and self._size_ok(full, got[0]):
            return slice_tile(full, got[0], tile.W)
        for key in await self.store.list(self.tile_key(full) + ".p/"):
            w = key.rsplit("/", 1)[1]
            if not w.isdigit() or not tile.W < int(w) < 1 << tile.H:
                continue
            wider = tlog.Tile(tile.H, tile.L, tile.N, int(w))
            got = await self._stored(key)
            if got is not None and self._size_ok(wider, got[0]):
                return slice_tile(wider, got[0], tile.W)
        return None

    @staticmethod
    def _size_ok(tile: tlog.Tile, data: bytes) -> bool:
        try:
            _check_tile_size("", tile, data)
        except InvalidContent:
            return False
        return True

    async def _purge(self, tiles: Sequence[tlog.Tile]) -> None:
        """Delete every stored version (full and partial) of these tiles' positions: one of them
        was found not to match a signed tree head."""
        for tile in tiles:
            full = tlog.Tile(tile.H, tile.L, tile.N, 1 << tile.H)
            await self.store.delete(self.tile_key(full))
            for key in await self.store.list(self.tile_key(full) + ".p/"):
                await self.store.delete(key)

    async def _save_tiles(self, tiles: Sequence[tlog.Tile], data: Sequence[bytes], replace: bool) -> None:
        """Store authenticated tiles; full ones forever, partial ones until superseded."""
        for tile, d in zip(tiles, data, strict=True):
            await self._save_tile(tile, d, replace)

    async def _save_tile(self, tile: tlog.Tile, data: bytes, replace: bool) -> None:
        full = tlog.Tile(tile.H, tile.L, tile.N, 1 << tile.H)
        partial_dir = self.tile_key(full) + ".p/"
        if tile.is_full:
            if replace:
                await self.store.put(self.tile_key(tile), data)
            else:
                await self.store.put_if_absent(self.tile_key(tile), data)
            for key in await self.store.list(partial_dir):
                await self.store.delete(key)
            return
        if not replace and await self.store.stat(self.tile_key(full)) is not None:
            return  # the full tile answers for this one
        wider = False
        for key in await self.store.list(partial_dir):
            w = key.rsplit("/", 1)[1]
            if w.isdigit() and int(w) < tile.W:
                await self.store.delete(key)
            elif w.isdigit() and int(w) > tile.W:
                wider = True
        if not wider or replace:
            await self.store.put(self.tile_key(tile), data)

    async def _fetch_tile(self, tile: tlog.Tile) -> bytes:
        """A tile from the database, size-checked (not yet authenticated). Like x/mod's client,
        a partial tile the database no longer has is cut from the full one."""

        async def fetch() -> bytes:
            try:
                data = await self._http_get("tile", tile.path(), _max_tile_bytes(tile))
            except NotFound:
                if tile.is_full:
                    raise
                full = tlog.Tile(tile.H, tile.L, tile.N, 1 << tile.H)
                data = await self._http_get("tile", full.path(), _max_tile_bytes(full))
                _check_tile_size(self.name, full, data)
                return slice_tile(full, data, tile.W)
            _check_tile_size(self.name, tile, data)
            return data

        data, _ = await self._tiles.do(tile.path(), fetch)
        return data

    # -- latest --------------------------------------------------------------------------------

    async def latest(self, *, fresh: bool = False) -> bytes:
        """The signed tree head: stored if younger than the ttl (or offline), else from the
        database (checked, merged into the timeline, stored); stale when it is unreachable."""
        stored = await self._stored(self.latest_key)
        if stored is not None and (self.offline or (not fresh and stored[1] < self.ttl)):
            metrics.SUMDB_CACHE.labels("latest", "hit").inc()
            return stored[0]
        if self.offline:
            raise NotFound(f"{self.name}: latest: not stored (offline)")

        async def fetch() -> bytes:
            self._last_refresh = time.monotonic()
            body = await self._http_get("latest", "latest", MAX_NOTE_BYTES)
            tree = self._open_tree(body, "latest")
            try:
                await self.merge_tree(body, tree)
            except SecurityError:
                raise
            except ModvaultError as exc:
                LOG.warning("sumdb %s: cannot check tree %d against the timeline: %s",
                            self.name, tree.N, exc.message)
                return body  # signed, but not proven consistent: pass on, do not store
            await self._put(self.latest_key, body)
            return body

        try:
            body, _ = await self._latest.do("latest", fetch)
        except (NotFound, Unavailable) as exc:
            if stored is not None and not isinstance(exc, SecurityError | InvalidContent):
                metrics.SUMDB_CACHE.labels("latest", "stale").inc()
                LOG.warning("sumdb %s: serving stored latest: %s", self.name, exc.message)
                return stored[0]
            raise
        metrics.SUMDB_CACHE.labels("latest", "miss").inc()
        return body

    # -- lookups -------------------------------------------------------------------------------

    def _parse_answer(self, module: str, version: str, body: bytes, source: str) -> LookupAnswer:
        what = f"lookup {module}@{version}"
        try:
            record_id, text, note_msg = tlog.parse_lookup(body)
        except tlog.TlogError as exc:
            raise InvalidContent(f"{self.name}: {what}: malformed lookup answer: {exc}") from None
        zip_h1, mod_h1 = record_hashes_for(module, version, text)
        if zip_h1 is None and mod_h1 is None:
            raise InvalidContent(f"{self.name}: {what}: the record returned is not for {module}@{version}")
        tree = self._open_tree(note_msg, what)
        if record_id >= tree.N:
            raise InvalidContent(f"{self.name}: {what}: record {record_id} is not in tree of size {tree.N}")
        return LookupAnswer(module, version, body, record_id, text, tree, note_msg, source, False)

    async def authenticate(self, answer: LookupAnswer) -> LookupAnswer:
        """Merge the answer's tree head into the timeline and prove the record is in the newest
        verified tree (x/mod client.go checkRecord). Raises SecurityError on any contradiction."""
        newest = await self.merge_tree(answer.note, answer.tree)
        index = tlog.stored_hash_index(0, answer.record_id)
        [leaf] = await self.read_hashes(newest, [index])
        if leaf != tlog.record_hash(answer.text):
            raise self._security(
                "bad_record",
                f"SECURITY ERROR: checksum database {self.name}: record {answer.record_id} served for "
                f"{answer.module}@{answer.version} is not the one in its signed tree (tampered record)")
        return LookupAnswer(answer.module, answer.version, answer.body, answer.record_id, answer.text,
                            answer.tree, answer.note, answer.source, True)

    async def lookup(self, module: str, version: str, *, any_age: bool = False) -> LookupAnswer:
        """The lookup answer for module@version.

        Stored answers younger than the ttl are used as they are (they were authenticated before
        they were stored); *any_age* accepts older ones too (the record never changes; the
        verifier re-authenticates). Otherwise the database is asked; its answer is parsed,
        authenticated and stored. When it is unreachable, a stored answer is served stale.
        Raises NotFound when the database has no record (or offline with none stored), and
        Forbidden, without asking anyone, for a module that must not be named to it."""
        if self.withheld is not None and self.withheld(module):
            raise Forbidden(f"{module} is a private module (private/nosumdb): it is never looked up "
                            f"in the public checksum database {self.name}")
        key = self.lookup_key(module, version)
        stored = await self._stored(key)
        stored_answer: LookupAnswer | None = None
        if stored is not None:
            try:
                stored_answer = self._parse_answer(module, version, stored[0], "cache")
            except ModvaultError as exc:
                LOG.warning("sumdb %s: dropping unusable stored %s: %s", self.name, key, exc.message)
                await self.store.delete(key)
                stored, stored_answer = None, None
        if stored_answer is not None and stored is not None and (
                any_age or self.offline or stored[1] < self.ttl):
            metrics.SUMDB_CACHE.labels("lookup", "hit").inc()
            return stored_answer
        if self.offline:
            raise NotFound(f"{self.name}: lookup {module}@{version}: not stored (offline)")

        async def fetch() -> LookupAnswer:
            body = await self._http_get("lookup", _lookup_suffix(module, version), MAX_LOOKUP_BYTES)
            answer = self._parse_answer(module, version, body, "network")
            try:
                answer = await self.authenticate(answer)
            except SecurityError:
                raise
            except Unavailable as exc:
                LOG.warning("sumdb %s: cannot authenticate lookup %s@%s: %s",
                            self.name, module, version, exc.message)
                return answer  # pass on unverified (the go command checks it); never store it
            await self._put(key, body)
            return answer

        try:
            answer, _ = await self._answers.do(key, fetch)
        except (NotFound, Unavailable) as exc:
            # A stored answer was proven to be in the log, which never forgets a record: serve it
            # when the database is unreachable (or, oddly, says it has no such record).
            if stored_answer is not None and not isinstance(exc, SecurityError | InvalidContent):
                metrics.SUMDB_CACHE.labels("lookup", "stale").inc()
                LOG.warning("sumdb %s: serving stored %s: %s", self.name, key, exc.message)
                return LookupAnswer(module, version, stored_answer.body, stored_answer.record_id,
                                    stored_answer.text, stored_answer.tree, stored_answer.note,
                                    "stale", False)
            raise
        metrics.SUMDB_CACHE.labels("lookup", "miss").inc()
        return answer

    # -- tiles for the proxy -------------------------------------------------------------------

    async def tile(self, tile: tlog.Tile) -> bytes:
        """Tile data for the proxy: stored (exact or sliced), else from the database, size-checked
        and, when a verified tree head covers it, authenticated and stored. A tile that cannot
        be authenticated for want of a tree head is passed on (the go command authenticates it)
        but not stored; one that fails authentication is refused."""
        hit = await self._cached_tile(tile)
        if hit is not None:
            metrics.SUMDB_CACHE.labels("tile", "hit").inc()
            return hit
        if self.offline:
            raise NotFound(f"{self.name}: {tile.path()}: not stored (offline)")
        data = await self._fetch_tile(tile)
        metrics.SUMDB_CACHE.labels("tile", "miss").inc()
        try:
            await self._authenticate_tile(tile, data)
        except _Unauthenticated as exc:
            LOG.info("sumdb %s: passing %s on unstored: %s", self.name, tile.path(), exc)
        return data

    async def _authenticate_tile(self, tile: tlog.Tile, data: bytes) -> None:
        tree = await self.verified_tree()
        if tree is None or not tlog.tile_in_tree(tile, tree.N):
            if time.monotonic() - self._last_refresh >= _REFRESH_INTERVAL:
                try:
                    await self.latest(fresh=True)
                except SecurityError:
                    raise
                except ModvaultError as exc:
                    raise _Unauthenticated(f"no tree head: {exc.message}") from None
                tree = await self.verified_tree()
            if tree is None or not tlog.tile_in_tree(tile, tree.N):
                raise _Unauthenticated("no verified tree head contains it")
        first = tile.N << tile.H
        if tile.L >= 0:
            indexes = [tlog.stored_hash_index(tile.L * tile.H, first + tile.W - 1)]
        else:
            indexes = [tlog.stored_hash_index(0, first + i) for i in range(tile.W)]
        try:
            given = {tile: data} if tile.L >= 0 else {}
            hashes, tiles = await self._authenticated(tree, tile.H, indexes, given)
        except SecurityError:
            raise
        except ModvaultError as exc:
            raise _Unauthenticated(exc.message) from None
        if tile.L >= 0:
            wider = next(t for t in tiles if (t.H, t.L, t.N) == (tile.H, tile.L, tile.N))
            if slice_tile(wider, tiles[wider], tile.W) != data:
                raise self._inconsistent(tree)
            if wider != tile:
                await self._save_tile(tile, data, False)
            return
        entries = data_tile_records(data)
        for i, (entry, leaf) in enumerate(zip(entries, hashes, strict=True)):
            if not _entry_matches(entry, first + i, leaf):
                raise self._security(
                    "inconsistent_tile",
                    f"SECURITY ERROR: checksum database {self.name}: {tile.path()} record {first + i} "
                    f"does not match its signed tree head of size {tree.N}; nothing was stored")
        await self._save_tile(tile, data, False)


# --- the proxy ----------------------------------------------------------------------------------


class SumdbProxy:
    """Answers ``/sumdb/<name>/<rest>`` for the configured databases.

    ``handle`` returns a :class:`SumdbResponse` or raises a :mod:`modvault.errors` value:
    NotFound (unknown database, unknown path, no such record), BadRequest (malformed lookup or
    tile path), InvalidContent/SecurityError/Unavailable (the database failed or misbehaved).
    """

    def __init__(
        self,
        dbs: list[SumdbConfig],
        store: Store,
        client: httpx.AsyncClient,
        *,
        ttl: float,
        offline: bool,
        limits: UpstreamLimits | None = None,
        withheld: Callable[[str], bool] | None = None,
        health: HealthRegistry | None = None,
    ) -> None:
        self.ttl = ttl
        self.offline = offline
        self._fetchers: dict[str, SumdbFetcher] = {}
        for db in dbs:
            if db.name in self._fetchers:
                raise ValueError(f"checksum database {db.name} configured twice")
            self._fetchers[db.name] = SumdbFetcher(db, store, client, ttl=ttl, offline=offline,
                                                   limits=limits, withheld=withheld,
                                                   health=health)
        self._short = f"public, max-age={max(0, int(ttl))}"

    @property
    def names(self) -> list[str]:
        return list(self._fetchers)

    def fetcher(self, name: str) -> SumdbFetcher:
        """The fetch layer of one database (share it with a ChecksumVerifier)."""
        try:
            return self._fetchers[name]
        except KeyError:
            raise NotFound(f"checksum database {name} is not proxied here") from None

    def route(self, path: str) -> tuple[str, str] | None:
        """Split the part of a URL path after ``/sumdb/`` into (configured name, rest).
        Names may contain slashes (``host/path``); the longest configured name wins."""
        for name in sorted(self._fetchers, key=len, reverse=True):
            if path.startswith(name + "/"):
                return name, path[len(name) + 1:]
        return None

    async def handle(self, name: str, rest: str) -> SumdbResponse:
        fetcher = self._fetchers.get(name)
        if fetcher is None:
            raise NotFound(f"checksum database {name} is not proxied here")
        if rest == "supported":
            return SumdbResponse(200, b"", CONTENT_TEXT, self._short)
        if rest == "latest":
            return SumdbResponse(200, await fetcher.latest(), CONTENT_TEXT, self._short)
        if rest.startswith("lookup/"):
            module, version = parse_lookup_path(rest[len("lookup/"):])
            answer = await fetcher.lookup(module, version)
            return SumdbResponse(200, answer.body, CONTENT_TEXT, self._short)
        if rest.startswith("tile/"):
            tile = parse_tile_request(rest)
            data = await fetcher.tile(tile)
            content_type = CONTENT_BINARY if tile.L >= 0 else CONTENT_TEXT
            return SumdbResponse(200, data, content_type, IMMUTABLE if tile.is_full else self._short)
        raise NotFound(f"{name}: no such checksum database path {rest!r}")

