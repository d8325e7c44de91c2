"""The checksum-database proxy and verifier against a real HTTP checksum database that can lie.

The database is :class:`FakeSumdb` (a MemoryLog signed with its own key) on 127.0.0.1; modvault's
SumdbProxy / ChecksumVerifier talk to it over real HTTP with httpx and keep what they learn in a
FileStore. Every misbehaviour the issue lists is staged here: forged tiles, forked and shrinking
logs, malformed notes, unknown keys, wrong tile sizes, invalid module paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from modvault.errors import BadRequest, InvalidContent, NotFound, SecurityError, Unavailable
from modvault.observability import metrics
from modvault.sources.upstream import UpstreamLimits
from modvault.storage.fs import FileStore
from modvault.sumdb import log as sumlog
from modvault.sumdb import note, tlog
from modvault.sumdb.client import ChecksumVerifier
from modvault.sumdb.config import SumdbConfig, default_sumdb, parse_sumdb
from modvault.sumdb.proxy import SumdbFetcher, SumdbProxy, data_tile_records
from tests.sumdb.sumdb_support import FakeSumdb, FakeSumdbServer, fake_h1

T = TypeVar("T")
NAME = "sum.test.example"
LIMITS = UpstreamLimits(connect_timeout=2, read_timeout=5, total_timeout=10, retries=0)
MOD = "example.com/m7"  # one of the 300 records add_many(300) creates


@pytest.fixture
def fake() -> Iterator[tuple[FakeSumdb, FakeSumdbServer]]:
    db = FakeSumdb(NAME)
    db.add_many(300)  # level-0 tile 0 is full (256), tile 1 is partial (44)
    srv = FakeSumdbServer(db)
    yield db, srv
    srv.stop()


def run(fn: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient() as client:
            return await fn(client)

    return asyncio.run(main())


class Env:
    def __init__(self, tmp_path: Path, db: FakeSumdb, srv: FakeSumdbServer) -> None:
        self.db = db
        self.srv = srv
        self.root = tmp_path / "data"
        self.store = FileStore(self.root)
        self.config = parse_sumdb(f"{db.vkey} {srv.url}")

    def proxy(self, client: httpx.AsyncClient, *, ttl: float = 300.0, offline: bool = False) -> SumdbProxy:
        return SumdbProxy([self.config], self.store, client, ttl=ttl, offline=offline, limits=LIMITS)

    def verifier(self, client: httpx.AsyncClient, **kw: object) -> ChecksumVerifier:
        return ChecksumVerifier(self.proxy(client, **kw).fetcher(NAME))  # type: ignore[arg-type]

    def stored(self, key: str) -> bool:
        return (self.root / key).is_file()

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def damage(self, key: str, data: bytes) -> None:
        """Bytes changed on disk behind the store's back."""
        (self.root / key).write_bytes(data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def stored_keys(self, under: str = "sumdb") -> list[str]:
        base = self.root / under
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())


@pytest.fixture
def env(tmp_path: Path, fake: tuple[FakeSumdb, FakeSumdbServer]) -> Env:
    return Env(tmp_path, *fake)


def sec_count(kind: str) -> float:
    return metrics.SECURITY_ERRORS.labels(NAME, kind)._value.get()  # type: ignore[no-any-return]


# --- configuration ------------------------------------------------------------------------------


def test_config_parsing() -> None:
    d = default_sumdb()
    assert (d.name, d.url) == ("sum.golang.org", "https://sum.golang.org")
    assert d.vkey == "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
    assert parse_sumdb("sum.golang.org") == d
    assert parse_sumdb("sum.golang.org https://mirror.example/sumdb/").url == "https://mirror.example/sumdb"
    assert parse_sumdb("sum.golang.google.cn").url == "https://sum.golang.google.cn"
    _, vkey = note.generate_key("sum.example.com/db")
    c = parse_sumdb(vkey)
    assert isinstance(c, SumdbConfig) and c.url == "https://sum.example.com/db" and c.setting == vkey
    for bad, why in [
        ("", "empty"),
        ("a b c", "too many fields"),
        ("nosuchdb.example", "not a verifier key"),
        ("sum.golang.org+033de0ae+AAAA", "verifier key"),
        (d.vkey.replace("033de0ae", "033de0af"), "verifier key"),
        (f"{vkey} ftp://x", "must be http"),
        (f"{vkey} https://", "must be http"),
        (f"{vkey} https://x/?q=1", "query"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_sumdb(bad)
    _, weird = note.generate_key("bad..name/../x")
    with pytest.raises(ValueError, match="checksum database name"):
        parse_sumdb(weird)


# --- the proxy passes through, checks and stores ------------------------------------------------


def test_supported_latest_lookup_tiles(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        assert p.route(f"{NAME}/lookup/x@v1.0.0") == (NAME, "lookup/x@v1.0.0")
        assert p.route("other.example/latest") is None
        r = await p.handle(NAME, "supported")
        assert (r.status, r.body) == (200, b"")
        with pytest.raises(NotFound):
            await p.handle("sum.golang.org", "supported")
        with pytest.raises(NotFound):
            await p.handle(NAME, "nonsense")

        latest = await p.handle(NAME, "latest")
        assert latest.body == db.note() and latest.content_type.startswith("text/plain")
        assert env.read(f"sumdb/{NAME}/latest") == db.note()

        look = await p.handle(NAME, f"lookup/{MOD}@v1.0.0")
        assert look.body == tlog.format_lookup(7, db.log.records(7, 1)[0], db.note())
        assert env.stored(f"sumdb/{NAME}/lookup/{MOD}@v1.0.0")
        # The first tree head was trusted on first use and remembered.
        assert env.read(f".modvault/sumdb/{NAME}/latest-verified") == db.note()

        full = await p.handle(NAME, "tile/8/0/000")
        assert full.body == db.log.read_tile(tlog.Tile(8, 0, 0, 256))
        assert full.cache_control.endswith("immutable") and full.content_type == "application/octet-stream"
        part = await p.handle(NAME, "tile/8/0/001.p/44")
        assert part.body == db.log.read_tile(tlog.Tile(8, 0, 1, 44))
        level1 = await p.handle(NAME, "tile/8/1/000.p/1")
        assert level1.body == db.log.read_tile(tlog.Tile(8, 1, 0, 1))
        data = await p.handle(NAME, "tile/8/data/000")
        assert len(data_tile_records(data.body)) == 256
        assert data.body == tlog.format_data_tile(db.log.records(0, 256))

        # Everything is now stored; asking again costs the database nothing.
        before = len(db.requests)
        for rest in ("latest", f"lookup/{MOD}@v1.0.0", "tile/8/0/000", "tile/8/0/001.p/44",
                     "tile/8/data/000", "tile/8/0/001.p/20"):
            await p.handle(NAME, rest)
        assert len(db.requests) == before
        assert (await p.handle(NAME, "tile/8/0/001.p/20")).body == db.log.read_tile(tlog.Tile(8, 0, 1, 20))

    run(body)
    keys = env.stored_keys()
    assert f"sumdb/{NAME}/tile/8/0/000" in keys and f"sumdb/{NAME}/tile/8/data/000" in keys
    assert f"sumdb/{NAME}/tile/8/0/001.p/44" in keys


def test_partial_tiles_are_superseded_not_kept(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        await p.handle(NAME, f"lookup/{MOD}@v1.0.0")
        await p.handle(NAME, "tile/8/0/001.p/44")
        assert env.stored(f"sumdb/{NAME}/tile/8/0/001.p/44")
        db.add_many(30, "example.com/more")  # the log grows to 330
        await p.handle(NAME, "lookup/example.com/more3@v1.0.0")
        r = await p.handle(NAME, "tile/8/0/001.p/74")
        assert r.body == db.log.read_tile(tlog.Tile(8, 0, 1, 74))
        assert env.stored(f"sumdb/{NAME}/tile/8/0/001.p/74")
        assert not env.stored(f"sumdb/{NAME}/tile/8/0/001.p/44")  # superseded, deleted
        n = len(db.requests)
        assert (await p.handle(NAME, "tile/8/0/001.p/44")).body == db.log.read_tile(tlog.Tile(8, 0, 1, 44))
        assert len(db.requests) == n  # cut from the wider one
        db.add_many(200, "example.com/fill")  # tile 1 completes
        await p.handle(NAME, "lookup/example.com/fill1@v1.0.0")
        await p.handle(NAME, "tile/8/0/001")
        assert env.stored(f"sumdb/{NAME}/tile/8/0/001")
        assert not [k for k in env.stored_keys() if "/tile/8/0/001.p/" in k]

    run(body)


def test_tile_first_fetches_a_tree_head_to_authenticate_it(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        db.overrides["/latest"] = (503, b"try later")
        r = await p.handle(NAME, "tile/8/0/000")  # no tree head to check it against: passed on
        assert r.body == db.log.read_tile(tlog.Tile(8, 0, 0, 256))
        assert not env.stored(f"sumdb/{NAME}/tile/8/0/000")
        del db.overrides["/latest"]
        p = env.proxy(client)  # (a fresh fetcher: no refresh rate limit)
        r = await p.handle(NAME, "tile/8/0/000")
        assert env.stored(f"sumdb/{NAME}/tile/8/0/000")
        assert env.stored(f".modvault/sumdb/{NAME}/latest-verified")

    run(body)


def test_narrower_tile_is_checked_against_the_wider_one(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        await p.handle(NAME, "latest")  # trusted on first use: no tile fetched yet
        assert not [k for k in env.stored_keys() if "/tile/" in k]
        r = await p.handle(NAME, "tile/8/0/001.p/20")  # a go command holding an older tree head
        assert r.body == db.log.read_tile(tlog.Tile(8, 0, 1, 20))
        assert env.stored(f"sumdb/{NAME}/tile/8/0/001.p/44")  # what authenticated it is kept
        assert not env.stored(f"sumdb/{NAME}/tile/8/0/001.p/20")  # answered by slicing that
        good = db.log.read_tile(tlog.Tile(8, 0, 1, 10))
        db.overrides["/tile/8/0/001.p/10"] = (200, bytes(32) + good[32:])
        env.delete(f"sumdb/{NAME}/tile/8/0/001.p/44")
        with pytest.raises(SecurityError):
            await p.handle(NAME, "tile/8/0/001.p/10")

    run(body)


def test_latest_ttl_and_stale_when_unreachable(env: Env) -> None:
    db, srv = env.db, env.srv

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client, ttl=0.0)
        first = (await p.handle(NAME, "latest")).body
        await p.handle(NAME, f"lookup/{MOD}@v1.0.0")
        await p.handle(NAME, "tile/8/0/001.p/44")
        db.add("example.com/new", "v1.0.0")
        second = (await p.handle(NAME, "latest")).body  # ttl 0: asked again
        assert second != first and second == db.note()
        assert db.count("/latest") == 2
        srv.stop()
        # Unreachable: what is stored is served, stale.
        assert (await p.handle(NAME, "latest")).body == second
        assert (await p.handle(NAME, f"lookup/{MOD}@v1.0.0")).body.startswith(b"7\n")
        assert (await p.handle(NAME, "tile/8/0/001.p/44")).status == 200
        with pytest.raises(Unavailable):
            await p.handle(NAME, "lookup/example.com/m8@v1.0.0")
        off = env.proxy(client, offline=True)
        with pytest.raises(NotFound, match="offline"):
            await off.handle(NAME, "lookup/example.com/m9@v1.0.0")
        assert (await off.handle(NAME, "latest")).body == second

    run(body)


# --- the verifier -------------------------------------------------------------------------------


def test_verifier_accepts_good_record_with_few_requests(env: Env) -> None:
    db = env.db
    zip_h1, mod_h1 = db.hashes[(MOD, "v1.0.0")]

    async def body(client: httpx.AsyncClient) -> None:
        v = env.verifier(client)
        await v.verify(MOD, "v1.0.0", mod_h1=mod_h1)
        await v.verify(MOD, "v1.0.0", zip_h1=zip_h1)
        await v.verify(MOD, "v1.0.0", zip_h1=zip_h1, mod_h1=mod_h1)
        assert db.count("/lookup/") == 1
        tiles = db.count("/tile/")
        assert 1 <= tiles <= 4
        # A restarted modvault (new fetcher, same store) needs no request at all.
        v2 = env.verifier(client)
        await v2.verify(MOD, "v1.0.0", zip_h1=zip_h1, mod_h1=mod_h1)
        assert db.count("/lookup/") == 1 and db.count("/tile/") == tiles
        # Another version in the same log: one lookup, tiles from the store.
        await v2.verify("example.com/m200", "v1.0.0", zip_h1=db.hashes[("example.com/m200", "v1.0.0")][0])
        assert db.count("/lookup/") == 2 and db.count("/tile/") == tiles
        with pytest.raises(NotFound, match=r"example\.com/absent@v1\.0\.0"):
            await v2.verify("example.com/absent", "v1.0.0", zip_h1=zip_h1)
        with pytest.raises(BadRequest):
            await v2.verify("Example.com/x", "v1.0.0", zip_h1=zip_h1)

    run(body)


def test_verifier_mismatch_is_a_security_error(env: Env) -> None:
    db = env.db
    zip_h1, mod_h1 = db.hashes[(MOD, "v1.0.0")]
    ours = fake_h1("tampered")
    before = sec_count("checksum_mismatch")

    async def body(client: httpx.AsyncClient) -> None:
        v = env.verifier(client)
        with pytest.raises(SecurityError) as e:
            await v.verify(MOD, "v1.0.0", zip_h1=ours, mod_h1=mod_h1)
        msg = e.value.message
        assert msg.startswith("SECURITY ERROR")
        assert MOD in msg and "v1.0.0" in msg and f"expected {zip_h1}" in msg and f"got {ours}" in msg
        assert e.value.status == 502
        with pytest.raises(SecurityError, match=r"^SECURITY ERROR.*v1\.0\.0/go\.mod"):
            await v.verify(MOD, "v1.0.0", mod_h1=ours)

    run(body)
    assert sec_count("checksum_mismatch") == before + 2


def test_tampered_tile_rejected_and_not_stored(env: Env) -> None:
    db = env.db
    good = db.log.read_tile(tlog.Tile(8, 0, 1, 44))
    bad = bytes([good[100] ^ 1]).join([good[:100], good[101:]])
    db.overrides["/tile/8/0/001.p/44"] = (200, bad)
    before = sec_count("inconsistent_tile")

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        v = ChecksumVerifier(p.fetcher(NAME))
        with pytest.raises(SecurityError, match=r"^SECURITY ERROR.*do not match its signed tree head"):
            await v.verify("example.com/m280", "v1.0.0", zip_h1=db.hashes[("example.com/m280", "v1.0.0")][0])
        with pytest.raises(SecurityError):
            await p.handle(NAME, "tile/8/0/001.p/44")
        # A forged data tile (records that are not the log's) is refused too.
        records = db.log.records(256, 44)
        records[3] = tlog.format_record("example.com/evil", "v1.0.0", fake_h1("a"), fake_h1("b"))
        db.overrides["/tile/8/data/001.p/44"] = (200, tlog.format_data_tile(records))
        with pytest.raises(SecurityError):
            await p.handle(NAME, "tile/8/data/001.p/44")

    run(body)
    assert not any("001.p" in k for k in env.stored_keys())
    assert not env.stored(f"sumdb/{NAME}/lookup/example.com/m280@v1.0.0")
    assert sec_count("inconsistent_tile") >= before + 2


def test_data_tiles_with_record_ids_are_accepted(env: Env) -> None:
    env.db.data_tile_ids = True  # the x/mod sumdb server.go format

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        await p.handle(NAME, "latest")
        r = await p.handle(NAME, "tile/8/data/001.p/44")
        assert r.body.startswith(b"256\nexample.com/m256 v1.0.0 h1:")
        assert len(data_tile_records(r.body)) == 44

    run(body)
    assert env.stored(f"sumdb/{NAME}/tile/8/data/001.p/44")


def test_forked_log_same_size_is_an_alarm(env: Env) -> None:
    db = env.db
    before = sec_count("fork")

    async def body(client: httpx.AsyncClient) -> None:
        v = env.verifier(client)
        await v.verify(MOD, "v1.0.0", zip_h1=db.hashes[(MOD, "v1.0.0")][0])
        db.replace_log([(f"example.com/m{i}", "v1.0.0") for i in range(300)])  # same size, other hashes
        v2 = env.verifier(client)  # restarted: the verified head comes from the store
        with pytest.raises(SecurityError, match=r"^SECURITY ERROR.*forked log.*two trees of size 300"):
            await v2.verify("example.com/m9", "v1.0.0", zip_h1=db.hashes[("example.com/m9", "v1.0.0")][0])
        p = env.proxy(client, ttl=0)
        with pytest.raises(SecurityError, match="forked"):
            await p.handle(NAME, "latest")

    run(body)
    assert sec_count("fork") == before + 2
    assert not env.stored(f"sumdb/{NAME}/lookup/example.com/m9@v1.0.0")


def test_inconsistent_newer_tree_is_an_alarm(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        v = env.verifier(client)
        await v.verify(MOD, "v1.0.0", zip_h1=db.hashes[(MOD, "v1.0.0")][0])
        db.replace_log([(f"example.com/m{i}", "v1.0.0") for i in range(400)])  # bigger, not an extension
        with pytest.raises(SecurityError, match="does not contain the verified tree of size 300"):
            await env.verifier(client).verify(
                "example.com/m350", "v1.0.0", zip_h1=db.hashes[("example.com/m350", "v1.0.0")][0])

    run(body)
    assert tlog.parse_tree(env.read(f".modvault/sumdb/{NAME}/latest-verified").split(b"\n\n")[0]
                           + b"\n").N == 300


def test_tree_that_shrinks(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        v = env.verifier(client)
        await v.verify(MOD, "v1.0.0", zip_h1=db.hashes[(MOD, "v1.0.0")][0])
        # A smaller tree that is a prefix of the verified one is an old, honest view (a cached
        # answer): the record is proven against the newer verified tree, as x/mod's client does.
        db.published = 200
        await env.verifier(client).verify(
            "example.com/m150", "v1.0.0", zip_h1=db.hashes[("example.com/m150", "v1.0.0")][0])
        # A smaller tree that is not a prefix: the log was rewritten. Alarm.
        db.published = None
        db.replace_log([(f"example.com/m{i}", "v1.0.0") for i in range(200)])
        with pytest.raises(SecurityError, match="is not a prefix of the verified tree of size 300"):
            await env.verifier(client).verify(
                "example.com/m151", "v1.0.0", zip_h1=db.hashes[("example.com/m151", "v1.0.0")][0])
        with pytest.raises(SecurityError):
            await env.proxy(client, ttl=0).handle(NAME, "latest")

    run(body)
    assert not env.stored(f"sumdb/{NAME}/lookup/example.com/m151@v1.0.0")


def test_fork_detected_through_proxy_lookup(env: Env) -> None:
    db = env.db

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        await p.handle(NAME, f"lookup/{MOD}@v1.0.0")
        db.replace_log([(f"example.com/m{i}", "v1.0.0") for i in range(301)])
        with pytest.raises(SecurityError):
            await p.handle(NAME, "lookup/example.com/m300@v1.0.0")

    run(body)
    assert not env.stored(f"sumdb/{NAME}/lookup/example.com/m300@v1.0.0")


# --- bad input ----------------------------------------------------------------------------------


def test_bad_notes_are_refused_and_not_cached(env: Env) -> None:
    db = env.db
    other_skey, _ = note.generate_key(NAME)
    impostor = note.new_signer(other_skey)  # same name, another key
    tree_text = tlog.format_tree(db.log.tree())
    forged = note.sign(tree_text, db.signer).replace(b"tree\n300", b"tree\n301")
    bad_sig = bytearray(db.note())
    bad_sig[-10] = ord("A") if bad_sig[-10] != ord("A") else ord("B")
    cases: list[tuple[bytes, type[Exception], str]] = [
        (b"not a note at all", InvalidContent, "malformed"),
        (sumlog.sign_tree(db.log.tree(), impostor), InvalidContent, "not signed by the configured key"),
        (note.sign("go.sum database tree\nnonsense\n", db.signer), InvalidContent, "malformed"),
        (forged, SecurityError, r"^SECURITY ERROR.*invalid signature"),
        (bytes(bad_sig), SecurityError, r"^SECURITY ERROR"),
    ]

    async def body(client: httpx.AsyncClient) -> None:
        for msg, exc, match in cases:
            db.overrides["/latest"] = (200, msg)
            with pytest.raises(exc, match=match):
                await env.proxy(client, ttl=0).handle(NAME, "latest")
            db.overrides[f"/lookup/{MOD}@v1.0.0"] = (200, tlog.format_lookup(7, db.log.records(7, 1)[0], msg))
            with pytest.raises(exc, match=match):
                await env.proxy(client).handle(NAME, f"lookup/{MOD}@v1.0.0")
        db.overrides[f"/lookup/{MOD}@v1.0.0"] = (200, b"7\nno blank line")
        with pytest.raises(InvalidContent, match="malformed lookup"):
            await env.proxy(client).handle(NAME, f"lookup/{MOD}@v1.0.0")
        # A record for another module.
        other = tlog.format_lookup(8, db.log.records(8, 1)[0], db.note())
        db.overrides[f"/lookup/{MOD}@v1.0.0"] = (200, other)
        with pytest.raises(InvalidContent, match="not for"):
            await env.proxy(client).handle(NAME, f"lookup/{MOD}@v1.0.0")
        # The record of another module under this id: the inclusion proof catches it.
        text = tlog.format_record(MOD, "v1.0.0", fake_h1("x"), fake_h1("y"))
        db.overrides[f"/lookup/{MOD}@v1.0.0"] = (200, tlog.format_lookup(7, text, db.note()))
        with pytest.raises(SecurityError, match="tampered record"):
            await env.proxy(client).handle(NAME, f"lookup/{MOD}@v1.0.0")
        with pytest.raises(SecurityError, match="tampered record"):
            await env.verifier(client).verify(MOD, "v1.0.0", zip_h1=fake_h1("x"))

    run(body)
    # Nothing but authenticated tiles (from checking the honest tree head) was kept.
    assert all("/tile/" in k for k in env.stored_keys())
    assert not env.stored(f"sumdb/{NAME}/latest")
    assert not env.stored(f"sumdb/{NAME}/lookup/{MOD}@v1.0.0")


def test_wrong_size_tiles_and_bad_paths(env: Env) -> None:
    db = env.db
    db.overrides["/tile/8/0/000"] = (200, db.log.read_tile(tlog.Tile(8, 0, 0, 256))[:-32])
    db.overrides["/tile/8/0/001.p/44"] = (200, db.log.read_tile(tlog.Tile(8, 0, 1, 44)) + b"x")
    db.overrides["/tile/8/data/001.p/44"] = (200, tlog.format_data_tile(db.log.records(256, 43)))

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        for rest, match in [("tile/8/0/000", "8160 bytes, want 8192"), ("tile/8/0/001.p/44", "want 1408"),
                            ("tile/8/data/001.p/44", "43 records, want 44")]:
            with pytest.raises(InvalidContent, match=match):
                await p.handle(NAME, rest)
        for rest in ["tile/8/0/0", "tile/8/0/000.p/0", "tile/8/0/000.p/256", "tile/08/0/000", "tile/8/-1/000",
                     "tile/8/0/x000/001", "tile/13/0/000", "tile/8/0/000.p/", "tile/8/data/000.p/1/x",
                     "lookup/", "lookup/example.com/x", "lookup/example.com/x@", "lookup/@v1.0.0",
                     "lookup/Example.com/x@v1.0.0", "lookup/example.com/x@v1.0",
                     "lookup/example.com/x@latest",
                     "lookup/example.com/../x@v1.0.0", "lookup/example.com/x@v1.0.0+incompatible",
                     "lookup/example.com/x/v2@v1.0.0", "lookup/ex%41mple.com/x@v1.0.0",
                     "lookup/example.com/x@v1.0.0@v1.0.0"]:
            with pytest.raises(BadRequest):
                await p.handle(NAME, rest)
        with pytest.raises(NotFound):
            await p.handle(NAME, "lookup/example.com/absent@v1.0.0")
        with pytest.raises(NotFound):
            await p.handle(NAME, "tile/8/0/009")  # beyond the tree: the database says 404

    run(body)
    assert not [k for k in env.stored_keys() if "/tile/" in k]
    assert not any("lookup" in k for k in env.stored_keys())


def test_unreachable_database(env: Env) -> None:
    env.srv.stop()

    async def body(client: httpx.AsyncClient) -> None:
        p = env.proxy(client)
        for rest in ("latest", f"lookup/{MOD}@v1.0.0", "tile/8/0/000"):
            with pytest.raises(Unavailable, match="cannot connect"):
                await p.handle(NAME, rest)
        with pytest.raises(Unavailable, match="cannot connect"):
            await ChecksumVerifier(p.fetcher(NAME)).verify(MOD, "v1.0.0", zip_h1=fake_h1("x"))
        # supported does not need the database.
        assert (await p.handle(NAME, "supported")).status == 200

    run(body)
    assert env.stored_keys() == []


def test_corrupt_stored_tile_is_refetched(env: Env) -> None:
    db = env.db
    zip_h1 = db.hashes[(MOD, "v1.0.0")][0]

    async def body(client: httpx.AsyncClient) -> None:
        await env.verifier(client).verify(MOD, "v1.0.0", zip_h1=zip_h1)
        key = f"sumdb/{NAME}/tile/8/0/000"
        assert env.stored(key)
        good = env.read(key)
        env.damage(key, bytes(32) + good[32:])  # disk damage
        env.delete(f"sumdb/{NAME}/lookup/{MOD}@v1.0.0")
        await env.verifier(client).verify(MOD, "v1.0.0", zip_h1=zip_h1)
        assert env.read(key) == good
        # Damage found again after the log grew: fetched once more, repaired in place.
        await env.proxy(client).handle(NAME, "tile/8/data/000")
        env.damage(key, bytes(32) + good[32:])
        env.delete(f"sumdb/{NAME}/lookup/{MOD}@v1.0.0")
        env.db.add_many(1, "example.com/extra")  # (any newer head will do)
        n = env.db.count("/tile/8/0/000")
        await env.verifier(client).verify(MOD, "v1.0.0", zip_h1=zip_h1)
        assert env.db.count("/tile/8/0/000") == n + 1 and env.read(key) == good

    run(body)


def test_shared_fetcher_for_proxy_and_verifier(env: Env) -> None:
    async def body(client: httpx.AsyncClient) -> None:
        fetcher = SumdbFetcher(env.config, env.store, client, ttl=300, limits=LIMITS)
        v = ChecksumVerifier(fetcher)
        assert v.name == NAME
        rec = await v.record(MOD, "v1.0.0")
        assert (rec.zip_h1, rec.mod_h1) == env.db.hashes[(MOD, "v1.0.0")] and rec.record_id == 7

    run(body)
