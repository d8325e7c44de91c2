"""The private checksum database: creation, durable append-only log, serving, key rotation, CLI.

Tiles and lookups are checked three ways: against the reference MemoryLog holding the same
records, with modvault's own ChecksumVerifier over real HTTP, and (test_sumdb_go.py) with the
real go command.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modvault.errors import BadRequest, InvalidContent, NotFound, SecurityError
from modvault.sources.upstream import UpstreamLimits
from modvault.storage.base import Store
from modvault.storage.memory import MemoryStore
from modvault.sumdb import log as sumlog
from modvault.sumdb import note, tlog
from modvault.sumdb.admin import add_sumdb_commands, run_sumdb_command
from modvault.sumdb.client import ChecksumVerifier
from modvault.sumdb.config import parse_sumdb
from modvault.sumdb.private import (
    PrivateSumdb,
    PrivateSumdbError,
    add_signing_key,
    database_dir,
    init_database,
    log_prefix,
    retire_key,
)
from modvault.sumdb.proxy import data_tile_records
from tests.sumdb.sumdb_support import AppServer, fake_h1

NAME = "sum.private.example"
LIMITS = UpstreamLimits(connect_timeout=2, read_timeout=5, total_timeout=10, retries=0)


def hashes(i: int) -> tuple[str, str]:
    return fake_h1(f"zip {i}"), fake_h1(f"mod {i}")


def mod(i: int) -> str:
    return f"corp.example/team/m{i}"


def add_n(db: PrivateSumdb, start: int, count: int) -> None:
    async def go() -> None:
        for i in range(start, start + count):
            assert await db.add(mod(i), "v1.0.0", *hashes(i)) == i

    asyncio.run(go())


def reference(count: int) -> sumlog.MemoryLog:
    ref = sumlog.MemoryLog()
    ref.append([tlog.format_record(mod(i), "v1.0.0", *hashes(i)) for i in range(count)])
    return ref


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


def open_db(root: Path, store: Store | None = None) -> PrivateSumdb:
    d = PrivateSumdb.open(root, NAME, store)
    asyncio.run(d.refresh())
    return d


@pytest.fixture
def db(root: Path) -> Iterator[PrivateSumdb]:
    init_database(root, NAME)
    d = open_db(root)
    yield d
    d.close()


def log_dir(root: Path) -> Path:
    return root / log_prefix(NAME)


def files(root: Path) -> dict[str, bytes]:
    """Everything the log holds in the (filesystem) store, by name."""
    base = log_dir(root)
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


# --- creation -----------------------------------------------------------------------------------


def test_init_creates_key_and_empty_log(root: Path) -> None:
    vkey = init_database(root, NAME)
    verifier = note.new_verifier(vkey)
    assert verifier.name == NAME
    d = database_dir(root, NAME)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    [keyfile] = list((d / "keys").glob("*.key"))
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert keyfile.name == f"{verifier.key_hash:08x}.key"
    assert keyfile.read_text().startswith(f"PRIVATE+KEY+{NAME}+")
    tree, _ = sumlog.open_tree((log_dir(root) / "head").read_bytes(), [verifier])
    assert tree == tlog.Tree(0, tlog.EMPTY_TREE_HASH)
    with pytest.raises(PrivateSumdbError, match="already exists"):
        init_database(root, NAME)
    assert [p.name for p in (d / "keys").glob("*.key")] == [keyfile.name]  # untouched
    with pytest.raises(PrivateSumdbError, match="checksum database name"):
        init_database(root, "bad name")
    with pytest.raises(PrivateSumdbError, match="no private checksum database"):
        PrivateSumdb.open(root, "other.example")
    db = open_db(root)
    assert db.size == 0 and db.vkeys == [vkey] and db.vkey == vkey
    db.close()


# --- the log ------------------------------------------------------------------------------------


def test_append_survives_restart_and_matches_reference(root: Path, db: PrivateSumdb) -> None:
    add_n(db, 0, 70)
    before = files(root)
    tree = db.tree()
    assert tree == reference(70).tree()
    db.close()

    reopened = open_db(root)
    assert reopened.tree() == tree and reopened.latest_note() == before["head"]
    assert reopened.records(0, 70) == reference(70).records(0, 70)
    assert reopened.lookup_id(mod(42), "v1.0.0") == 42
    assert files(root) == before  # opening changes nothing
    add_n(reopened, 70, 230)
    after = files(root)
    # Append-only: every committed record is still what it was.
    assert all(after[f] == v for f, v in before.items() if f != "head")
    assert len(after) == 301
    ref = reference(300)
    assert reopened.tree() == ref.tree()
    # The new head proves the old one is its prefix.
    proof = ref.prove_tree(70)
    tlog.check_tree(proof, 300, ref.tree().Hash, 70, tree.Hash)
    reopened.close()


def test_readd_is_idempotent_and_conflicts_raise(db: PrivateSumdb, root: Path) -> None:
    add_n(db, 0, 3)

    async def go() -> None:
        assert await db.add(mod(1), "v1.0.0", *hashes(1)) == 1
        snapshot = files(root)
        with pytest.raises(SecurityError) as e:
            await db.add(mod(1), "v1.0.0", fake_h1("other"), hashes(1)[1])
        assert e.value.message.startswith("SECURITY ERROR") and mod(1) in e.value.message
        assert hashes(1)[0] in e.value.message and fake_h1("other") in e.value.message
        assert files(root) == snapshot  # nothing written
        with pytest.raises(BadRequest):
            await db.add("Not A Path", "v1.0.0", *hashes(9))
        with pytest.raises(BadRequest):
            await db.add(mod(9), "v1.0", *hashes(9))
        with pytest.raises(BadRequest):
            await db.add(mod(9), "v1.0.0", "h1:short", hashes(9)[1])
        assert db.size == 3

    asyncio.run(go())


def test_concurrent_adds_are_serialized(root: Path, db: PrivateSumdb) -> None:
    async def go() -> list[int]:
        return await asyncio.gather(*(db.add(mod(i), "v1.0.0", *hashes(i)) for i in range(40)))

    ids = asyncio.run(go())
    assert sorted(ids) == list(range(40))
    db.close()
    again = open_db(root)
    assert again.size == 40
    texts = again.records(0, 40)
    assert sorted(texts) == sorted(tlog.format_record(mod(i), "v1.0.0", *hashes(i)) for i in range(40))
    again.close()


def test_crash_leftover_is_committed_first_and_damage_is_detected(root: Path, db: PrivateSumdb) -> None:
    """A writer that died between writing record N and moving the head left records/N: the next
    writer commits that record first (it is immutable once written), then its own."""
    add_n(db, 0, 5)
    leftover = tlog.format_record(mod(77), "v1.0.0", *hashes(77))
    (log_dir(root) / "records" / f"{5:012d}").write_bytes(leftover)
    again = open_db(root)
    assert again.size == 5 and again.lookup_id(mod(77), "v1.0.0") is None  # not committed: invisible

    async def go() -> int:
        return await again.add(mod(5), "v1.0.0", *hashes(5))

    assert asyncio.run(go()) == 6
    assert again.records(5, 1) == [leftover] and again.lookup_id(mod(77), "v1.0.0") == 5
    ref = sumlog.MemoryLog()
    ref.append([tlog.format_record(mod(i), "v1.0.0", *hashes(i)) for i in range(5)] + [leftover]
               + [tlog.format_record(mod(5), "v1.0.0", *hashes(5))])
    assert again.tree() == ref.tree()
    # Damage to a committed record is found when a process loads the log.
    target = log_dir(root) / "records" / f"{3:012d}"
    data = bytearray(target.read_bytes())
    data[3] ^= 0x20
    target.write_bytes(bytes(data))
    with pytest.raises(PrivateSumdbError, match="do not match"):
        open_db(root)
    target.unlink()
    with pytest.raises(PrivateSumdbError, match="missing"):
        open_db(root)


def test_two_processes_racing_never_fork_the_log(root: Path, db: PrivateSumdb) -> None:
    """Two instances on one store (two replicas) append 30 records each at the same time: one
    log with all 60, whose head both agree on, and nothing forked."""
    other = open_db(root)

    async def go() -> None:
        await asyncio.gather(*(d.add(mod(i), "v1.0.0", *hashes(i))
                               for i in range(60) for d in ([db] if i % 2 else [other])))
        await db.refresh()
        await other.refresh()

    asyncio.run(go())
    assert db.size == other.size == 60 and db.tree() == other.tree()
    third = open_db(root)
    assert sorted(third.records(0, 60)) == sorted(tlog.format_record(mod(i), "v1.0.0", *hashes(i))
                                                   for i in range(60))


def test_log_in_a_store_without_local_files(root: Path) -> None:
    store = MemoryStore()
    vkey = init_database(root, NAME, store)
    d = open_db(root, store)
    add_n(d, 0, 20)
    again = open_db(root, store)
    assert again.tree() == reference(20).tree() and again.vkey == vkey
    assert not log_dir(root).exists()  # nothing went to the filesystem


# --- serving ------------------------------------------------------------------------------------


def test_handle_serves_the_protocol(db: PrivateSumdb) -> None:
    add_n(db, 0, 300)
    ref = reference(300)

    async def go() -> None:
        assert (await db.handle("supported")).status == 200
        latest = await db.handle("latest")
        tree, _ = sumlog.open_tree(latest.body, [note.new_verifier(db.vkey)])
        assert tree == ref.tree()
        look = await db.handle(f"lookup/{mod(7)}@v1.0.0")
        rid, text, signed = tlog.parse_lookup(look.body)
        assert (rid, text, signed) == (7, ref.records(7, 1)[0], latest.body)
        for t in (tlog.Tile(8, 0, 0, 256), tlog.Tile(8, 0, 1, 44), tlog.Tile(8, 0, 1, 3),
                  tlog.Tile(8, 1, 0, 1), tlog.Tile(4, 1, 0, 16), tlog.Tile(2, 0, 74, 3)):
            r = await db.handle(t.path())
            assert r.body == ref.read_tile(t), t
            assert r.content_type == "application/octet-stream"
        data = await db.handle("tile/8/data/001.p/44")
        # x/mod sumdb server.go: tlog.FormatRecord(id, text) for each record.
        want = b"".join(tlog.format_lookup_record(256 + i, t) for i, t in enumerate(ref.records(256, 44)))
        assert data.body == want
        assert len(data_tile_records(data.body)) == 44
        assert (await db.handle("tile/8/0/000")).cache_control.endswith("immutable")
        for rest in ("tile/8/0/002", "tile/8/0/001.p/45", "tile/8/data/001", "nonsense"):
            with pytest.raises(NotFound):
                await db.handle(rest)
        for rest in ("tile/8/0/01", "lookup/Corp.example/x@v1.0.0", "lookup/corp.example/x@1.0.0",
                     "lookup/x"):
            with pytest.raises(BadRequest):
                await db.handle(rest)
        with pytest.raises(NotFound):
            await db.handle("lookup/corp.example/absent@v1.0.0")

    asyncio.run(go())


def test_lookup_ensure_fetches_and_adds(db: PrivateSumdb) -> None:
    calls: list[tuple[str, str]] = []

    async def ensure(module: str, version: str) -> None:
        calls.append((module, version))
        if module.endswith("/known"):
            await db.add(module, version, *hashes(99))

    async def go() -> None:
        r = await db.handle("lookup/corp.example/known@v1.2.3", ensure)
        assert r.body.startswith(b"0\ncorp.example/known v1.2.3 h1:")
        await db.handle("lookup/corp.example/known@v1.2.3", ensure)  # in the log now: no call
        with pytest.raises(NotFound):
            await db.handle("lookup/corp.example/unknown@v1.0.0", ensure)

    asyncio.run(go())
    assert calls == [("corp.example/known", "v1.2.3"), ("corp.example/unknown", "v1.0.0")]


@pytest.fixture
def served(db: PrivateSumdb) -> Iterator[AppServer]:
    async def app(path: str) -> tuple[int, bytes, str]:
        r = await db.handle(path.lstrip("/"))
        return r.status, r.body, r.content_type

    srv = AppServer(app)
    yield srv
    srv.stop()


def _verify_all(config_line: str, module_ids: list[int], store: MemoryStore | None = None) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            v = ChecksumVerifier.create(parse_sumdb(config_line), store or MemoryStore(), client,
                                        limits=LIMITS)
            for i in module_ids:
                await v.verify(mod(i), "v1.0.0", zip_h1=hashes(i)[0], mod_h1=hashes(i)[1])
            with pytest.raises(SecurityError, match=r"^SECURITY ERROR"):
                await v.verify(mod(module_ids[0]), "v1.0.0", zip_h1=fake_h1("evil"))

    asyncio.run(go())


def test_own_client_verifies_private_database(db: PrivateSumdb, served: AppServer) -> None:
    add_n(db, 0, 300)
    store = MemoryStore()
    _verify_all(f"{db.vkey} {served.url}", [0, 7, 255, 256, 299], store)
    # The log grows; the verifier's remembered head must be a prefix of the new one.
    add_n(db, 300, 20)
    _verify_all(f"{db.vkey} {served.url}", [310, 3], store)


# --- key rotation -------------------------------------------------------------------------------


def test_key_rotation(root: Path, db: PrivateSumdb, served: AppServer) -> None:
    old_vkey = db.vkey
    add_n(db, 0, 10)
    new_vkey = add_signing_key(root, NAME)
    old_v, new_v = note.new_verifier(old_vkey), note.new_verifier(new_vkey)
    assert new_v.key_hash != old_v.key_hash
    # The running instance serves the re-signed head at once, and both keys verify it.
    latest = asyncio.run(db.handle("latest")).body
    opened = note.open_note(latest, [old_v, new_v])
    assert {s.key_hash for s in opened.sigs} == {old_v.key_hash, new_v.key_hash}
    add_n(db, 10, 5)  # new heads carry both signatures
    latest = asyncio.run(db.handle("latest")).body
    assert len(note.open_note(latest, [old_v, new_v]).sigs) == 2
    assert db.vkeys == [old_vkey, new_vkey]
    _verify_all(f"{old_vkey} {served.url}", [1, 12])
    _verify_all(f"{new_vkey} {served.url}", [1, 12])

    with pytest.raises(PrivateSumdbError, match="want 8 hex digits"):
        retire_key(root, NAME, "xyz")
    with pytest.raises(PrivateSumdbError, match="no active key"):
        retire_key(root, NAME, "00000000")
    remaining = retire_key(root, NAME, old_vkey)  # the whole line works too
    assert remaining == [new_vkey]
    d = database_dir(root, NAME)
    assert (d / "retired").read_text() == old_vkey + "\n"
    assert not (d / "keys" / f"{old_v.key_hash:08x}.key").exists()
    add_n(db, 15, 1)
    latest = asyncio.run(db.handle("latest")).body
    with pytest.raises(note.UnverifiedNote):
        note.open_note(latest, [old_v])
    _verify_all(f"{new_vkey} {served.url}", [15, 2])

    async def old_client() -> None:
        async with httpx.AsyncClient() as client:
            v = ChecksumVerifier.create(parse_sumdb(f"{old_vkey} {served.url}"), MemoryStore(), client,
                                        limits=LIMITS)
            with pytest.raises(InvalidContent, match="not signed by the configured key"):
                await v.verify(mod(1), "v1.0.0", zip_h1=hashes(1)[0])

    asyncio.run(old_client())
    with pytest.raises(PrivateSumdbError, match="only signing key"):
        retire_key(root, NAME, f"{new_v.key_hash:08x}")
    db.close()
    again = open_db(root)
    assert again.vkeys == [new_vkey] and again.size == 16
    again.close()


# --- the CLI ------------------------------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="modvault")
    add_sumdb_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = run_sumdb_command(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "d"
    code, out, err = _cli("sumdb", "init", NAME, "--data-dir", str(data))
    assert code == 0 and out.count("\n") == 1
    vkey = out.strip()
    assert note.new_verifier(vkey).name == NAME and "GOSUMDB" in err
    code, out, err = _cli("sumdb", "init", NAME, "--data-dir", str(data))
    assert code == 1 and out == "" and "already exists" in err
    monkeypatch.setenv("MODVAULT_DATA_DIR", str(data))
    code, out, _ = _cli("sumdb", "add-key", NAME)
    assert code == 0
    new = out.strip()
    assert note.new_verifier(new).key_hash != note.new_verifier(vkey).key_hash
    code, out, _ = _cli("sumdb", "retire-key", NAME, vkey.split("+")[1])
    assert code == 0 and out.strip() == new
    code, _, err = _cli("sumdb", "retire-key", NAME, new.split("+")[1])
    assert code == 1 and "only signing key" in err
    code, _, err = _cli("sumdb", "add-key", "missing.example")
    assert code == 1 and "modvault sumdb init missing.example" in err
    assert code == 1
    assert os.listdir(data / ".modvault" / "sumdb-private") == [NAME]


def test_cli_finds_the_data_dir_like_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --data-dir, `sumdb init` uses the data_dir `modvault serve` would: config file too."""
    data = tmp_path / "from-config"
    cfg = tmp_path / "modvault.toml"
    cfg.write_text(f'data_dir = "{data}"\n')
    monkeypatch.delenv("MODVAULT_DATA_DIR", raising=False)
    monkeypatch.setenv("MODVAULT_CONFIG", str(cfg))
    code, out, _ = _cli("sumdb", "init", NAME)
    assert code == 0 and out.strip().startswith(NAME + "+")
    assert (data / ".modvault" / "sumdb-private" / NAME / "log" / "head").exists()
    monkeypatch.setenv("MODVAULT_UPSTREAM", "gopher://nope")
    code, _, err = _cli("sumdb", "add-key", NAME)
    assert code == 1 and "upstream" in err
