"""A private checksum database that modvault hosts itself.

Private modules get the same tamper evidence as public ones: modvault appends a record (the
go.sum lines: zip hash and go.mod hash) for every private module version it stores, signs a
new tree head, and serves ``/sumdb/<NAME>/{supported,latest,lookup/M@V,tile/...}`` in the format
of the public checksum database (proposal 25530; x/mod sumdb server.go). Users set::

    GOSUMDB="<NAME>+<hash>+<key>"          # modvault is their GOPROXY: asked at /sumdb/<NAME>/
    GOSUMDB="<NAME>+<hash>+<key> <URL>"    # or an explicit URL of modvault's /sumdb/<NAME>

GONOSUMDB (which defaults to GOPRIVATE when unset or empty) must not match the private modules, or
the go command skips the check. The go command uses one checksum database for every module, so
with this GOSUMDB it looks up public modules here too: :meth:`PrivateSumdb.handle` calls the
service's ``ensure`` hook for any module version not yet in the log, and the service records it
after fetching (and, for public modules, verifying against the public database) and storing it.

Creating one::

    modvault sumdb init NAME [--data-dir DIR]     # prints the verifier line NAME+hash+key

Key rotation (a note may carry several signatures; the go command accepts a tree head when one
signature is by the key it knows and every signature by a key it knows verifies)::

    1. modvault sumdb add-key NAME [--data-dir DIR]
       Creates a new signing key and prints its verifier line. From now on every tree head is
       signed by the old and the new key; the current head is re-signed at once (a running
       modvault picks the new key up before its next signature and re-reads the head file).
    2. Hand the new verifier line out: users change GOSUMDB to it at their own pace. Both the
       old and the new line verify everything served during the transition.
       A user's go command caches the last tree head it saw in
       $(go env GOPATH)/pkg/sumdb/NAME/latest; it is replaced by a doubly signed one the next
       time the go command sees the log grow. A user who switches before that gets
       "reading tree note: ... unknown key" and can either wait for the log to grow or
       delete that one file (it is only a cache).
    3. modvault sumdb retire-key NAME KEYHASH [--data-dir DIR]
       KEYHASH is the 8 hex digits of the old key (the second field of its verifier line).
       The old signing key is deleted (its verifier line is kept in ``retired`` for the
       record), the current head is re-signed with the remaining keys, and the remaining
       verifier line(s) are printed. Users still on the old line now fail to verify: retire
       only once everyone has switched. The last key cannot be retired.

The log is append-only and durable. Layout under ``<data_dir>/.modvault/sumdb-private/<NAME>/``
(directory 0700, key files 0600)::

    keys/<hash>.key   signer keys (PRIVATE+KEY+NAME+hash+...); every key here signs each head
    retired           verifier lines of retired keys, one per line
    records           record texts, concatenated (append-only)
    index             one 8-byte big-endian end offset into ``records`` per record (append-only)
    hashes            the tree's stored hashes, 32 bytes each, in stored-hash order (append-only)
    latest            the signed tree head: the commit point (replaced atomically)
    lock              flock(2) target: one writer at a time, across processes

Why append-only files plus an index rather than one file per record: a record is ~200 bytes and
every append also writes ~2 hashes; a file per record (and per hash) would cost an inode, a
rename and two fsyncs each, and make reading a data tile of 256 records 256 opens. Three
append-only files are written with O_APPEND, so committed bytes are never touched again; the
signed head in ``latest`` says how many records are committed. An append writes records, index
and hashes (each fsynced), then signs and atomically replaces ``latest`` (temp + fsync + rename +
directory fsync). A crash in between leaves an uncommitted tail past the committed size, which
the next open (or the next append) cuts off: a committed leaf is never rewritten. On open, the
tree hash is recomputed from the stored hashes and every record is checked against its leaf
hash, so a damaged file is found at startup rather than served.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from modvault.errors import BadRequest, NotFound, SecurityError
from modvault.module.errors import ModuleError
from modvault.module.path import check
from modvault.observability import metrics
from modvault.sumdb import log as sumlog
from modvault.sumdb import note as _note
from modvault.sumdb import tlog
from modvault.sumdb.config import check_sumdb_name
from modvault.sumdb.proxy import (
    CONTENT_BINARY,
    CONTENT_TEXT,
    IMMUTABLE,
    SumdbResponse,
    parse_lookup_path,
    parse_tile_request,
)

__all__ = [
    "PRIVATE_DIR",
    "PrivateSumdb",
    "PrivateSumdbError",
    "add_signing_key",
    "database_dir",
    "init_database",
    "list_databases",
    "retire_key",
]

LOG = logging.getLogger("modvault.sumdb.private")

PRIVATE_DIR = ".modvault/sumdb-private"
_NO_CACHE = "no-cache"
_PARTIAL_TILE_CACHE = "public, max-age=60"
_HEX8 = re.compile(r"[0-9a-f]{8}")


class PrivateSumdbError(Exception):
    """The private database cannot be created, opened or changed (message says why)."""


def database_dir(root: Path, name: str) -> Path:
    """Where the database *name* lives under the data directory *root*."""
    return Path(root) / PRIVATE_DIR / quote(name, safe="")


# --- small file helpers -------------------------------------------------------------------------


def list_databases(root: Path) -> list[str]:
    """Names of the databases created under the data directory *root* by :func:`init_database`."""
    base = Path(root) / PRIVATE_DIR
    if not base.is_dir():
        return []
    return [unquote(d.name) for d in sorted(base.iterdir()) if (d / "latest").exists()]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """temp file in the same directory + fsync + rename + directory fsync."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_new_secret(path: Path, data: bytes) -> None:
    """Create *path* with mode 0600 (never replacing anything), write, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _flock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _load_signers(directory: Path) -> list[_note.Ed25519Signer]:
    """The active signing keys, oldest first."""
    keydir = directory / "keys"
    try:
        files = sorted(keydir.glob("*.key"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    except FileNotFoundError:
        files = []
    signers = []
    for f in files:
        mode = f.stat().st_mode & 0o777
        if mode & 0o077:
            LOG.warning("private sumdb key %s is readable by others (mode %o); chmod 600 it", f, mode)
        try:
            signers.append(_note.new_signer(f.read_text().strip()))
        except _note.NoteError as exc:
            raise PrivateSumdbError(f"{f}: not a signer key: {exc}") from None
    if not signers:
        raise PrivateSumdbError(f"{keydir}: no signing key")
    return signers


def _vkey(signer: _note.Ed25519Signer) -> str:
    return signer.verifier().vkey


def _open_head(directory: Path, signers: Sequence[_note.Ed25519Signer]) -> tuple[tlog.Tree, bytes]:
    msg = (directory / "latest").read_bytes()
    try:
        tree, _ = sumlog.open_tree(msg, [s.verifier() for s in signers])
    except (_note.NoteError, tlog.TlogError) as exc:
        raise PrivateSumdbError(f"{directory / 'latest'}: not a tree head signed by this database: {exc}") \
            from None
    return tree, msg


def _resign(directory: Path) -> list[str]:
    """Re-sign the current head with the active keys (caller holds the flock); their vkeys."""
    signers = _load_signers(directory)
    msg = (directory / "latest").read_bytes()
    # The head may carry signatures by a key just retired: accept it as long as it parses (we wrote it).
    try:
        text = _note.open_note(msg, [s.verifier() for s in signers]).text
    except _note.UnverifiedNote as exc:
        text = exc.note.text
    except _note.NoteError as exc:
        raise PrivateSumdbError(f"{directory / 'latest'}: unreadable tree head: {exc}") from None
    tree = tlog.parse_tree(text)
    _write_atomic(directory / "latest", sumlog.sign_tree(tree, signers))
    return [_vkey(s) for s in signers]


# --- administration -----------------------------------------------------------------------------


def init_database(root: Path, name: str) -> str:
    """Create the private database *name* under the data directory *root*: a signing key (0600)
    and an empty, signed log. Returns the verifier line ``name+hash+key`` for GOSUMDB.

    Refuses (PrivateSumdbError) when the database already exists or the name is invalid."""
    try:
        check_sumdb_name(name)
    except ValueError as exc:
        raise PrivateSumdbError(str(exc)) from None
    directory = database_dir(root, name)
    if directory.exists() and any(directory.iterdir()):
        raise PrivateSumdbError(f"private checksum database {name} already exists at {directory}; "
                                f"refusing to overwrite it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    with _flock(directory):
        if (directory / "latest").exists():
            raise PrivateSumdbError(f"private checksum database {name} already exists at {directory}")
        (directory / "keys").mkdir(mode=0o700, exist_ok=True)
        skey, vkey = _note.generate_key(name)
        signer = _note.new_signer(skey)
        _write_new_secret(directory / "keys" / f"{signer.key_hash:08x}.key", (skey + "\n").encode())
        for f in ("records", "index", "hashes"):
            fd = os.open(directory / f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.fsync(fd)
            os.close(fd)
        _write_atomic(directory / "latest", sumlog.sign_tree(tlog.Tree(0, tlog.EMPTY_TREE_HASH), [signer]))
    LOG.info("created private checksum database %s at %s", name, directory)
    return vkey


def _existing(root: Path, name: str) -> Path:
    directory = database_dir(root, name)
    if not (directory / "latest").is_file():
        raise PrivateSumdbError(f"no private checksum database {name} under {root} "
                                f"(create it with: modvault sumdb init {name})")
    return directory


def add_signing_key(root: Path, name: str) -> str:
    """Add a signing key that signs alongside the existing ones; return its verifier line.
    The current tree head is re-signed with every active key at once."""
    directory = _existing(root, name)
    with _flock(directory):
        skey, vkey = _note.generate_key(name)
        signer = _note.new_signer(skey)
        _write_new_secret(directory / "keys" / f"{signer.key_hash:08x}.key", (skey + "\n").encode())
        _resign(directory)
    return vkey


def retire_key(root: Path, name: str, key_hash: str) -> list[str]:
    """Delete the signing key with hash *key_hash* (8 hex digits, or its whole verifier line),
    re-sign the current head without it, and return the remaining verifier lines."""
    directory = _existing(root, name)
    wanted = key_hash.split("+")[1] if "+" in key_hash else key_hash
    wanted = wanted.lower()
    if not _HEX8.fullmatch(wanted):
        raise PrivateSumdbError(f"invalid key hash {key_hash!r}: want 8 hex digits (from NAME+HASH+KEY)")
    with _flock(directory):
        signers = _load_signers(directory)
        match = [s for s in signers if f"{s.key_hash:08x}" == wanted]
        if not match:
            active = ", ".join(f"{s.key_hash:08x}" for s in signers)
            raise PrivateSumdbError(f"no active key {wanted} in {name} (active: {active})")
        if len(signers) == 1:
            raise PrivateSumdbError(f"refusing to retire {wanted}: it is the only signing key of {name} "
                                    f"(add one first with: modvault sumdb add-key {name})")
        with open(directory / "retired", "a", encoding="utf-8") as fh:
            fh.write(_vkey(match[0]) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        (directory / "keys" / f"{wanted}.key").unlink()
        _fsync_dir(directory / "keys")
        return _resign(directory)


# --- the database -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Head:
    tree: tlog.Tree
    note: bytes
    stat: tuple[int, int, int]  # (inode, size, mtime_ns) of the latest file it was read from


class PrivateSumdb:
    """An open private checksum database. Use :meth:`open`; one instance per process.

    ``add`` calls are serialized (an asyncio lock, a thread lock and a file lock); reads are
    served from immutable snapshots and positioned reads of the append-only files."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.directory = directory
        self._async_lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._signers: list[_note.Ed25519Signer] = []
        self._keys_stat: tuple[int, ...] = ()
        self._ends: list[int] = []  # end offset of each committed record in `records`
        self._ids: dict[tuple[str, str], int] = {}
        self._head = _Head(tlog.Tree(0, tlog.EMPTY_TREE_HASH), b"", (0, 0, 0))

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, name: str) -> PrivateSumdb:
        """Open the database *name* under the data directory *root* (see :func:`init_database`).

        Cuts off any uncommitted tail a crash left, then checks every stored record and hash
        against the signed head. Raises PrivateSumdbError when it is missing or damaged."""
        try:
            check_sumdb_name(name)
        except ValueError as exc:
            raise PrivateSumdbError(str(exc)) from None
        db = cls(_existing(root, name), name)
        try:
            with _flock(db.directory):
                db._load()
        except BaseException:
            db.close()
            raise
        return db

    def _open_fds(self) -> None:
        for f in ("records", "index", "hashes"):
            if f not in self._fds:
                try:
                    self._fds[f] = os.open(self.directory / f, os.O_RDWR | os.O_APPEND)
                except FileNotFoundError:
                    raise PrivateSumdbError(f"{self.directory / f}: missing") from None

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _keys_signature(self) -> tuple[int, ...]:
        keydir = self.directory / "keys"
        st = keydir.stat()
        return (st.st_mtime_ns, st.st_ino, len(os.listdir(keydir)))

    def _reload_keys(self) -> None:
        sig = self._keys_signature()
        if sig != self._keys_stat:
            self._signers = _load_signers(self.directory)
            self._keys_stat = sig

    def _latest_stat(self) -> tuple[int, int, int]:
        st = (self.directory / "latest").stat()
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> None:
        """Read the committed state (caller holds the flock)."""
        self._open_fds()
        self._reload_keys()
        stat = self._latest_stat()
        tree, msg = _open_head(self.directory, self._signers)
        n = tree.N
        index = self._committed_bytes("index", 8 * n)
        ends = [int.from_bytes(index[i:i + 8], "big") for i in range(0, len(index), 8)]
        records = self._committed_bytes("records", ends[-1] if ends else 0)
        hashes = self._committed_bytes("hashes", tlog.HASH_SIZE * tlog.stored_hash_count(n))

        def read_hashes(indexes: Sequence[int]) -> list[bytes]:
            return [hashes[i * tlog.HASH_SIZE:(i + 1) * tlog.HASH_SIZE] for i in indexes]

        if tlog.tree_hash(n, read_hashes) != tree.Hash:
            raise PrivateSumdbError(f"{self.directory}: stored hashes do not match the signed tree head")
        ids: dict[tuple[str, str], int] = {}
        start = 0
        for i, end in enumerate(ends):
            if not start <= end <= len(records):
                raise PrivateSumdbError(f"{self.directory}/index: bad offset for record {i}")
            text = records[start:end]
            start = end
            [leaf] = read_hashes([tlog.stored_hash_index(0, i)])
            if tlog.record_hash(text) != leaf:
                raise PrivateSumdbError(f"{self.directory}/records: record {i} does not match the log")
            key = _record_key(text)
            if key is None or key in ids:
                raise PrivateSumdbError(f"{self.directory}/records: record {i} is malformed or repeated")
            ids[key] = i
        self._ends = ends
        self._ids = ids
        self._head = _Head(tree, msg, stat)

    def _committed_bytes(self, f: str, want: int) -> bytes:
        """The first *want* bytes of file *f*; an uncommitted tail beyond them is cut off."""
        fd = self._fds[f]
        size = os.fstat(fd).st_size
        if size < want:
            raise PrivateSumdbError(f"{self.directory / f}: {size} bytes, the signed head needs {want}")
        if size > want:
            LOG.warning("private sumdb %s: cutting %d uncommitted bytes off %s", self.name, size - want, f)
            os.ftruncate(fd, want)
            os.fsync(fd)
        return os.pread(fd, want, 0) if want else b""

    # -- state ---------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._head.tree.N

    def tree(self) -> tlog.Tree:
        return self._head.tree

    def latest_note(self) -> bytes:
        return self._head.note

    @property
    def vkeys(self) -> list[str]:
        """Verifier lines of the active signing keys, oldest first."""
        return [_vkey(s) for s in self._signers]

    @property
    def vkey(self) -> str:
        """The newest active verifier line (what ``init``/``add-key`` printed last)."""
        return _vkey(self._signers[-1])

    def lookup_id(self, module: str, version: str) -> int | None:
        return self._ids.get((module, version))

    def _read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        fd = self._fds["hashes"]
        out = []
        for i in indexes:
            h = os.pread(fd, tlog.HASH_SIZE, i * tlog.HASH_SIZE)
            if len(h) != tlog.HASH_SIZE:
                raise tlog.TlogError(f"stored hash {i} missing")
            out.append(h)
        return out

    def records(self, start: int, count: int) -> list[bytes]:
        """Record texts [start, start+count) of the committed log."""
        ends = self._ends
        if start < 0 or count < 0 or start + count > len(ends):
            raise NotFound(f"{self.name}: records [{start}, {start + count}) not in the log")
        if count == 0:
            return []
        first = ends[start - 1] if start else 0
        blob = os.pread(self._fds["records"], ends[start + count - 1] - first, first)
        out = []
        pos = first
        for i in range(start, start + count):
            out.append(blob[pos - first:ends[i] - first])
            pos = ends[i]
        return out

    def _refresh_head_sync(self) -> None:
        """Pick up a head re-signed by another process (key rotation)."""
        try:
            stat = self._latest_stat()
        except FileNotFoundError:
            return
        if stat == self._head.stat:
            return
        with self._thread_lock:
            self._reload_keys()
            tree, msg = _open_head(self.directory, self._signers)
            if tree != self._head.tree:
                with _flock(self.directory):
                    self._load()
                return
            self._head = _Head(tree, msg, stat)

    # -- appending -----------------------------------------------------------------------------

    async def add(self, module: str, version: str, zip_h1: str, mod_h1: str) -> int:
        """Append the record of module@version and sign a new tree head; return its id.

        Idempotent: the same module@version with the same hashes returns the existing id. With
        other hashes it raises SecurityError: a record is never rewritten."""
        try:
            check(module, version)
            text = tlog.format_record(module, version, zip_h1, mod_h1)
        except (ModuleError, tlog.TlogError) as exc:
            raise BadRequest(f"private checksum database {self.name}: cannot add {module}@{version}: {exc}") \
                from None
        async with self._async_lock:
            return await asyncio.to_thread(self._add_sync, module, version, text)

    def _add_sync(self, module: str, version: str, text: bytes) -> int:
        with self._thread_lock, _flock(self.directory):
            if self._latest_stat() != self._head.stat:
                self._load()  # another process changed the head (key rotation): start from it
            self._reload_keys()
            existing = self._ids.get((module, version))
            if existing is not None:
                [old] = self.records(existing, 1)
                if old == text:
                    return existing
                metrics.SECURITY_ERRORS.labels(self.name, "record_conflict").inc()
                old_zip, old_mod = _record_h1s(old)
                new_zip, new_mod = _record_h1s(text)
                raise SecurityError(
                    f"SECURITY ERROR: private checksum database {self.name} already has record {existing} "
                    f"for {module}@{version} with zip {old_zip} and go.mod {old_mod}; refusing to record "
                    f"zip {new_zip} and go.mod {new_mod} (records are never rewritten)")
            n = self._head.tree.N
            appended = sumlog.append_records(n, [text], self._read_hashes)
            # Cut any uncommitted tail a failed append left (never committed bytes).
            self._committed_len("records", self._ends[-1] if self._ends else 0)
            self._committed_len("index", 8 * n)
            self._committed_len("hashes", tlog.HASH_SIZE * tlog.stored_hash_count(n))
            end = (self._ends[-1] if self._ends else 0) + len(text)
            self._append("records", text)
            self._append("index", end.to_bytes(8, "big"))
            self._append("hashes", b"".join(appended.hashes))
            msg = sumlog.sign_tree(appended.tree, self._signers)
            _write_atomic(self.directory / "latest", msg)  # the commit point
            self._ends.append(end)
            self._head = _Head(appended.tree, msg, self._latest_stat())
            self._ids[(module, version)] = n  # after the head: a visible id is always in the head
        metrics.SUMDB_PRIVATE_RECORDS.labels(self.name).inc()
        LOG.info("private sumdb %s: record %d %s@%s", self.name, n, module, version)
        return n

    def _committed_len(self, f: str, want: int) -> None:
        fd = self._fds[f]
        size = os.fstat(fd).st_size
        if size < want:
            raise PrivateSumdbError(f"{self.directory / f}: shorter than the committed log")
        if size > want:
            os.ftruncate(fd, want)

    def _append(self, f: str, data: bytes) -> None:
        fd = self._fds[f]
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)

    # -- serving -------------------------------------------------------------------------------

    async def handle(self, rest: str, ensure: Callable[[str, str], Awaitable[None]] | None = None
                     ) -> SumdbResponse:
        """Answer ``/sumdb/<name>/<rest>`` (rest URL-decoded): ``supported``, ``latest``,
        ``lookup/M@V``, ``tile/H/L/K[.p/W]``, ``tile/H/data/K[.p/W]``.

        For a lookup of a version not in the log, ``await ensure(module, version)`` (when given)
        lets the service fetch and store it, which calls :meth:`add`; then the log is asked again.
        Raises NotFound / BadRequest (and whatever *ensure* raises)."""
        if rest == "supported":
            return SumdbResponse(200, b"", CONTENT_TEXT, _NO_CACHE)
        await asyncio.to_thread(self._refresh_head_sync)
        if rest == "latest":
            return SumdbResponse(200, self._head.note, CONTENT_TEXT, _NO_CACHE)
        if rest.startswith("lookup/"):
            module, version = parse_lookup_path(rest[len("lookup/"):])
            record_id = self._ids.get((module, version))
            if record_id is None and ensure is not None:
                await ensure(module, version)
                record_id = self._ids.get((module, version))
            if record_id is None:
                raise NotFound(f"{self.name}: {module}@{version}: not found")
            head = self._head  # read after the id: the head contains it
            [text] = await asyncio.to_thread(self.records, record_id, 1)
            body = tlog.format_lookup(record_id, text, head.note)
            return SumdbResponse(200, body, CONTENT_TEXT, _NO_CACHE)
        if rest.startswith("tile/"):
            tile = parse_tile_request(rest)
            n = self._head.tree.N
            if not tlog.tile_in_tree(tile, n):
                raise NotFound(f"{self.name}: {rest}: tile not in tree of size {n}")
            data = await asyncio.to_thread(self._tile_data, tile)
            cache = IMMUTABLE if tile.is_full else _PARTIAL_TILE_CACHE
            return SumdbResponse(200, data, CONTENT_BINARY if tile.L >= 0 else CONTENT_TEXT, cache)
        raise NotFound(f"{self.name}: no such checksum database path {rest!r}")

    def _tile_data(self, tile: tlog.Tile) -> bytes:
        if tile.L >= 0:
            return tlog.read_tile_data(tile, self._read_hashes)
        # Record data, as x/mod's sumdb server.go writes it: tlog.FormatRecord(id, text) for each
        # record, i.e. "<id>\n<text>\n".
        start = tile.N << tile.H
        texts = self.records(start, tile.W)
        return b"".join(tlog.format_lookup_record(start + i, t) for i, t in enumerate(texts))


def _record_key(text: bytes) -> tuple[str, str] | None:
    first = text.split(b"\n", 1)[0].decode("utf-8", "replace").split(" ")
    return (first[0], first[1]) if len(first) == 3 else None


def _record_h1s(text: bytes) -> tuple[str, str]:
    lines = text.decode("utf-8", "replace").split("\n")
    return lines[0].rsplit(" ", 1)[-1], (lines[1].rsplit(" ", 1)[-1] if len(lines) > 1 else "?")
