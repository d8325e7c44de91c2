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

The log lives in the Store (so every replica serves the same one, on disk or in a bucket); the
signing keys live on the local filesystem of each replica (copy them like a TLS key). Layout::

    <data_dir>/.modvault/sumdb-private/<NAME>/keys/<hash>.key   signer keys (dir 0700, files 0600)
    <data_dir>/.modvault/sumdb-private/<NAME>/retired           verifier lines of retired keys
    store: .modvault/sumdb-private/<NAME>/log/head              the signed tree head: the commit point
    store: .modvault/sumdb-private/<NAME>/log/records/<N>       record N's text (12 digits), immutable

Appending record N is two store operations: ``put_if_absent(records/N)`` (first writer wins), then
compare-and-swap of ``head`` from the tree of size N to the tree of size N+1. Whoever finds a
``records/N`` already there (another writer's, or one a crash left uncommitted) commits that one
first: the record at position N is immutable from the moment it is written, so every writer that
computes tree N+1 computes the same tree, and the head can only move by CAS from the exact tree it
extends. Neither a crash, nor two processes, nor two replicas can fork the log; no file lock and no
lease is needed for correctness. With Redis coordination a writer lease (``self.writer``) still makes
one replica at a time append (no wasted attempts, and no appends at all while Redis is unreachable:
CoordinationError, 503). Each process keeps the log in
memory (records and stored hashes, ~300 bytes a record) and catches up from the store when the
head moved; catching up recomputes the tree hash, so damage is found before anything is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

from modvault.cache.coordination.state import LocalWriterLease, WriterLease
from modvault.errors import BadRequest, NotFound, SecurityError, StorageError
from modvault.module.errors import ModuleError
from modvault.module.path import check
from modvault.observability import metrics
from modvault.storage.base import Store, VersionConflict
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
    "check_signing_keys",
    "database_dir",
    "init_database",
    "list_databases",
    "log_prefix",
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
    """Where the keys of database *name* live under the data directory *root*."""
    return Path(root) / PRIVATE_DIR / quote(name, safe="")


def log_prefix(name: str) -> str:
    """Store keys of the log of database *name* start with this."""
    return f"{PRIVATE_DIR}/{quote(name, safe='')}/log/"


def _head_key(name: str) -> str:
    return log_prefix(name) + "head"


def _record_key_of(name: str, n: int) -> str:
    return f"{log_prefix(name)}records/{n:012d}"


def _default_store(root: Path, store: Store | None) -> Store:
    if store is not None:
        return store
    from modvault.storage.fs import FileStore

    return FileStore(root)


# --- small file helpers -------------------------------------------------------------------------


def list_databases(root: Path) -> list[str]:
    """Names of the databases created under the data directory *root* by :func:`init_database`."""
    base = Path(root) / PRIVATE_DIR
    if not base.is_dir():
        return []
    return [unquote(d.name) for d in sorted(base.iterdir()) if (d / "keys").is_dir()]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _parse_head(name: str, msg: bytes, signers: Sequence[_note.Ed25519Signer]) -> tlog.Tree:
    try:
        tree, _ = sumlog.open_tree(msg, [s.verifier() for s in signers])
    except (_note.NoteError, tlog.TlogError) as exc:
        raise PrivateSumdbError(f"{_head_key(name)}: not a tree head signed by this database: {exc}") \
            from None
    return tree


async def _resign(directory: Path, name: str, store: Store) -> list[str]:
    """Re-sign the current head with the active keys (compare-and-swap); their vkeys."""
    signers = _load_signers(directory)
    while True:
        got = await store.get(_head_key(name))
        if got is None:
            raise PrivateSumdbError(f"{name}: no tree head in the store")
        msg, info = got
        # The head may carry signatures by a key just retired: accept it as long as it parses.
        try:
            text = _note.open_note(msg, [s.verifier() for s in signers]).text
        except _note.UnverifiedNote as exc:
            text = exc.note.text
        except _note.NoteError as exc:
            raise PrivateSumdbError(f"{name}: unreadable tree head: {exc}") from None
        tree = tlog.parse_tree(text)
        try:
            await store.put_if_version(_head_key(name), sumlog.sign_tree(tree, signers), info.etag)
        except VersionConflict:
            continue  # the log grew meanwhile (signed by the new key set already, or not): again
        return [_vkey(s) for s in signers]


# --- administration -----------------------------------------------------------------------------


def init_database(root: Path, name: str, store: Store | None = None) -> str:
    """Create the private database *name*: a signing key (0600) under the data directory *root*
    and an empty, signed log in *store* (default: the filesystem store at *root*). Returns the
    verifier line ``name+hash+key`` for GOSUMDB.

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
    target = _default_store(root, store)
    with _flock(directory):
        if (directory / "keys").exists():
            raise PrivateSumdbError(f"private checksum database {name} already exists at {directory}")
        skey, vkey = _note.generate_key(name)
        signer = _note.new_signer(skey)
        empty = sumlog.sign_tree(tlog.Tree(0, tlog.EMPTY_TREE_HASH), [signer])
        try:
            asyncio.run(target.put_if_version(_head_key(name), empty, None))
        except VersionConflict:
            raise PrivateSumdbError(f"private checksum database {name} already has a log in the store; "
                                    f"refusing to start another") from None
        (directory / "keys").mkdir(mode=0o700, exist_ok=True)
        _write_new_secret(directory / "keys" / f"{signer.key_hash:08x}.key", (skey + "\n").encode())
    LOG.info("created private checksum database %s at %s", name, directory)
    return vkey


def _existing(root: Path, name: str) -> Path:
    directory = database_dir(root, name)
    if not (directory / "keys").is_dir():
        raise PrivateSumdbError(f"no private checksum database {name} under {root} "
                                f"(create it with: modvault sumdb init {name})")
    return directory


def check_signing_keys(root: Path, name: str) -> None:
    """The database *name* exists under *root* with at least one usable signing key (no store I/O)."""
    try:
        check_sumdb_name(name)
    except ValueError as exc:
        raise PrivateSumdbError(str(exc)) from None
    _load_signers(_existing(root, name))


def add_signing_key(root: Path, name: str, store: Store | None = None) -> str:
    """Add a signing key that signs alongside the existing ones; return its verifier line.
    The current tree head is re-signed with every active key at once."""
    directory = _existing(root, name)
    with _flock(directory):
        skey, vkey = _note.generate_key(name)
        signer = _note.new_signer(skey)
        _write_new_secret(directory / "keys" / f"{signer.key_hash:08x}.key", (skey + "\n").encode())
        asyncio.run(_resign(directory, name, _default_store(root, store)))
    return vkey


def retire_key(root: Path, name: str, key_hash: str, store: Store | None = None) -> list[str]:
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
        return asyncio.run(_resign(directory, name, _default_store(root, store)))


# --- the database -------------------------------------------------------------------------------


class PrivateSumdb:
    """An open private checksum database. Use :meth:`open`, then ``await refresh()`` (``add`` and
    ``handle`` refresh by themselves); one instance per process.

    Appends go through the store's compare-and-swap on the head (see the module docstring); the
    asyncio lock only keeps one process from racing itself. Reads are served from memory."""

    # Reading records from a network store on catch-up: this many at once.
    CATCH_UP_BATCH = 64

    def __init__(self, directory: Path, name: str, store: Store) -> None:
        self.name = name
        self.directory = directory
        self.store = store
        self._lock = asyncio.Lock()  # one appender in this process
        # The in-memory log (records, hashes, ids, tree) changes only under this lock: a catch-up
        # awaits the store between reading the size and extending, and two of them at once (a
        # burst of lookups) would both extend from the same size.
        self._state = asyncio.Lock()
        # Across replicas: a lease saying who appends (wiring sets Redis's; CAS keeps it safe).
        self.writer: WriterLease = LocalWriterLease()
        self._signers: list[_note.Ed25519Signer] = []
        self._keys_stat: tuple[int, ...] = ()
        self._records: list[bytes] = []
        self._hashes: list[bytes] = []  # stored hashes in stored-hash order
        self._ids: dict[tuple[str, str], int] = {}
        self._tree = tlog.Tree(0, tlog.EMPTY_TREE_HASH)
        self._note = b""
        self._version: str | None = None  # store version of the head we hold

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, name: str, store: Store | None = None) -> PrivateSumdb:
        """The database *name*: keys under the data directory *root* (see :func:`init_database`),
        log in *store* (default: the filesystem store at *root*). Raises PrivateSumdbError when
        it does not exist or has no usable key; the log is read by :meth:`refresh`."""
        try:
            check_sumdb_name(name)
        except ValueError as exc:
            raise PrivateSumdbError(str(exc)) from None
        db = cls(_existing(root, name), name, _default_store(root, store))
        db._reload_keys()
        return db

    def close(self) -> None:
        """Nothing to release: kept so callers need not know the log moved into the store."""

    def _keys_signature(self) -> tuple[int, ...]:
        keydir = self.directory / "keys"
        st = keydir.stat()
        return (st.st_mtime_ns, st.st_ino, len(os.listdir(keydir)))

    def _reload_keys(self) -> None:
        sig = self._keys_signature()
        if sig != self._keys_stat:
            self._signers = _load_signers(self.directory)
            self._keys_stat = sig

    async def refresh(self) -> None:
        """Catch up with the head in the store: new records (checked against the signed tree
        hash) and heads re-signed by a key rotation. Raises PrivateSumdbError on damage."""
        async with self._state:
            await self._refresh()

    async def _refresh(self) -> None:
        await asyncio.to_thread(self._reload_keys)
        got = await self.store.get(_head_key(self.name))
        if got is None:
            raise PrivateSumdbError(f"{self.name}: no tree head in the store at {_head_key(self.name)} "
                                    f"(create the database with: modvault sumdb init {self.name})")
        msg, info = got
        if info.etag == self._version:
            return
        tree = _parse_head(self.name, msg, self._signers)
        await self._catch_up(tree)
        self._tree, self._note, self._version = tree, msg, info.etag

    async def _catch_up(self, tree: tlog.Tree) -> None:
        """Load records [len(records), tree.N) and check the tree they make is *tree*."""
        n = len(self._records)
        if n > tree.N:
            raise PrivateSumdbError(f"{self.name}: the head in the store went back from {n} records "
                                    f"to {tree.N}: the log was replaced or rolled back")
        if n == tree.N:
            if tree.Hash != self._tree.Hash:
                raise PrivateSumdbError(f"{self.name}: the head in the store has another hash for "
                                        f"the same {n} records: the log was forked")
            return
        texts: list[bytes] = []
        for start in range(n, tree.N, self.CATCH_UP_BATCH):
            stop = min(start + self.CATCH_UP_BATCH, tree.N)
            got = await asyncio.gather(*(self.store.get(_record_key_of(self.name, i))
                                         for i in range(start, stop)))
            for i, item in zip(range(start, stop), got, strict=True):
                if item is None:
                    raise PrivateSumdbError(f"{self.name}: record {i} is missing from the store")
                texts.append(item[0])
        self._extend(n, texts, tree)

    def _extend(self, n: int, texts: list[bytes], tree: tlog.Tree) -> None:
        """Append committed *texts* at position *n* after checking they make *tree*."""
        ids = {}
        for i, text in enumerate(texts):
            key = _record_key(text)
            if key is None or key in self._ids or key in ids:
                raise PrivateSumdbError(f"{self.name}: record {n + i} is malformed or repeated")
            ids[key] = n + i
        try:
            appended = sumlog.append_records(n, texts, self._read_hashes)
        except tlog.TlogError as exc:
            raise PrivateSumdbError(f"{self.name}: record {n}..: {exc}") from None
        if appended.tree != tree:
            raise PrivateSumdbError(f"{self.name}: the stored records do not match the signed tree head "
                                    f"of size {tree.N}")
        self._records.extend(texts)
        self._hashes.extend(appended.hashes)
        self._ids.update(ids)

    # -- state ---------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._tree.N

    def tree(self) -> tlog.Tree:
        return self._tree

    def latest_note(self) -> bytes:
        return self._note

    @property
    def vkeys(self) -> list[str]:
        """Verifier lines of the active signing keys, oldest first."""
        return [_vkey(s) for s in self._signers]

    @property
    def vkey(self) -> str:
        """The newest active verifier line (what ``init``/``add-key`` printed last)."""
        return _vkey(self._signers[-1])

    def lookup_id(self, module: str, version: str) -> int | None:
        got = self._ids.get((module, version))
        return got if got is not None and got < self._tree.N else None

    def _read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        out = []
        for i in indexes:
            if not 0 <= i < len(self._hashes):
                raise tlog.TlogError(f"stored hash {i} missing")
            out.append(self._hashes[i])
        return out

    def records(self, start: int, count: int) -> list[bytes]:
        """Record texts [start, start+count) of the committed log."""
        if start < 0 or count < 0 or start + count > self._tree.N:
            raise NotFound(f"{self.name}: records [{start}, {start + count}) not in the log")
        return self._records[start:start + count]

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
        if not getattr(self.store, "atomic_cas", True):
            raise StorageError(f"private checksum database {self.name}: the store has no atomic "
                                   f"compare-and-swap (s3_conditional_writes = false): refusing to "
                                   f"append rather than risk a fork")
        async with self._lock:
            await self.refresh()
            existing = self.lookup_id(module, version)
            if existing is not None:  # already recorded: no writer needed
                return self._same_or_conflict(existing, module, version, text)
            async with self.writer.hold(self.name):  # one writer across replicas (Redis lease)
                return await self._append(module, version, text)

    async def _append(self, module: str, version: str, text: bytes) -> int:
        while True:
            await self.refresh()
            existing = self.lookup_id(module, version)
            if existing is not None:
                return self._same_or_conflict(existing, module, version, text)
            n = self._tree.N
            _, written = await self.store.put_if_absent(_record_key_of(self.name, n), text)
            entry = text
            if not written:  # another writer's record, or one a crash left: commit it first
                got = await self.store.get(_record_key_of(self.name, n))
                if got is None:
                    continue
                entry = got[0]
            if not await self._commit(n, entry):
                continue  # the head moved: start again from it
            if entry == text:
                metrics.SUMDB_PRIVATE_RECORDS.labels(self.name).inc()
                LOG.info("private sumdb %s: record %d %s@%s", self.name, n, module, version)
                return n

    async def _commit(self, n: int, entry: bytes) -> bool:
        """Move the head from the tree of size *n* (ours) to size n+1 with *entry*; False when
        another writer moved it first."""
        async with self._state:
            return await self._commit_locked(n, entry)

    async def _commit_locked(self, n: int, entry: bytes) -> bool:
        if len(self._records) != n:
            return False  # a catch-up moved the log meanwhile: start again from its head
        key = _record_key(entry)
        if key is None or key in self._ids or not tlog.is_valid_record_text(entry):
            raise PrivateSumdbError(f"{self.name}: record {n} in the store is malformed or repeated; "
                                    f"the log cannot grow until an operator removes it")
        appended = sumlog.append_records(n, [entry], self._read_hashes)
        await asyncio.to_thread(self._reload_keys)
        msg = sumlog.sign_tree(appended.tree, self._signers)
        try:
            info = await self.store.put_if_version(_head_key(self.name), msg, self._version)
        except VersionConflict:
            return False
        self._records.append(entry)
        self._hashes.extend(appended.hashes)
        self._ids[key] = n
        self._tree, self._note, self._version = appended.tree, msg, info.etag
        return True

    def _same_or_conflict(self, existing: int, module: str, version: str, text: bytes) -> int:
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
        await self.refresh()
        if rest == "latest":
            return SumdbResponse(200, self._note, CONTENT_TEXT, _NO_CACHE)
        if rest.startswith("lookup/"):
            module, version = parse_lookup_path(rest[len("lookup/"):])
            record_id = self.lookup_id(module, version)
            if record_id is None and ensure is not None:
                await ensure(module, version)
                record_id = self.lookup_id(module, version)
            if record_id is None:
                raise NotFound(f"{self.name}: {module}@{version}: not found")
            note_msg = self._note  # read after the id: the head contains it
            [text] = self.records(record_id, 1)
            body = tlog.format_lookup(record_id, text, note_msg)
            return SumdbResponse(200, body, CONTENT_TEXT, _NO_CACHE)
        if rest.startswith("tile/"):
            tile = parse_tile_request(rest)
            n = self._tree.N
            if not tlog.tile_in_tree(tile, n):
                raise NotFound(f"{self.name}: {rest}: tile not in tree of size {n}")
            data = self._tile_data(tile)
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
