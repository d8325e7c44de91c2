"""The real go command against modvault's checksum databases.

- A private database (PrivateSumdb.handle behind a real HTTP server on 127.0.0.1) is accepted
  by ``go mod download`` with ``GOSUMDB="<vkey> <url>"``, and a zip changed in the proxy makes
  the go command fail with SECURITY ERROR.
- The same with modvault as the GOPROXY that also serves ``/sumdb/<name>/`` (GOSUMDB without a
  URL: the go command asks ``/sumdb/<name>/supported``), adding records on demand (``ensure``).
- SumdbProxy in front of an upstream database: the go command verifies through it, what it
  fetched is stored, and it keeps working when the database goes away.

Modules are built from local git repositories by the go command in direct mode
(tests/support/gitrepos.py), as tests/conftest.py's build_corpus does.
"""

from __future__ import annotations

import asyncio
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modvault.errors import SecurityError
from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.sources.upstream import UpstreamLimits
from modvault.storage.fs import FileStore
from modvault.sumdb.client import ChecksumVerifier
from modvault.sumdb.config import parse_sumdb
from modvault.sumdb.private import PrivateSumdb, init_database
from modvault.sumdb.proxy import SumdbProxy
from tests.sumdb.sumdb_support import AppServer, FakeSumdb, FakeSumdbServer, fake_h1, static_file
from tests.support.gitrepos import GO, Repo, download_json, export_proxy, go_env, rmtree, run_go

pytestmark = pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")

MODULE = "github.com/corp/private"
VERSION = "v1.0.0"
ZIP_REL = f"github.com/corp/private/@v/{VERSION}.zip"
NAME = "sum.corp.example"
LIMITS = UpstreamLimits(connect_timeout=2, read_timeout=10, total_timeout=20, retries=0)


@dataclass
class Built:
    proxy: Path  # static GOPROXY tree
    sum: str  # zip h1 from go mod download -json (direct)
    gomodsum: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("sumdbgo")
    repo = Repo(root, MODULE)
    repo.write({"go.mod": f"module {MODULE}\n\ngo 1.21\n",
                "private.go": "package private\n\nconst Secret = 42\n"})
    repo.commit("v1.0.0", [VERSION])
    gohome = root / "ref"
    gohome.mkdir()
    env = go_env(gohome, root / "repos", GOPROXY="direct")
    proc = run_go(["mod", "download", "-json", f"{MODULE}@{VERSION}"], cwd=gohome, env=env)
    [doc] = download_json(proc.stdout)
    assert not doc.get("Error"), doc
    cache = gohome / "gopath" / "pkg" / "mod"
    export_proxy(cache, root / "proxy")
    rmtree(cache)
    return Built(root / "proxy", str(doc["Sum"]), str(doc["GoModSum"]))


def copy_proxy(built: Built, dest: Path) -> Path:
    shutil.copytree(built.proxy, dest)
    return dest


def tamper_zip(proxy: Path) -> None:
    """Replace the module zip with a valid one whose content differs."""
    path = proxy / ZIP_REL
    with zipfile.ZipFile(path) as zf:
        entries = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            if info.filename.endswith("private.go"):
                data = data.replace(b"42", b"43")
            zf.writestr(info, data)


def go_download(base: Path, **env: str) -> tuple[int, str]:
    base.mkdir(parents=True, exist_ok=True)
    e = go_env(base, GONOSUMDB="", GOPRIVATE="", GONOPROXY="", GOFLAGS="-mod=mod", **env)
    proc = run_go(["mod", "download", "-json", f"{MODULE}@{VERSION}"], cwd=base, env=e, check=False)
    out = proc.stdout + proc.stderr
    rmtree(base / "gopath")
    return proc.returncode, out


@pytest.fixture
def private_db(tmp_path: Path) -> Iterator[PrivateSumdb]:
    init_database(tmp_path / "data", NAME)
    db = PrivateSumdb.open(tmp_path / "data", NAME)
    yield db
    db.close()


def test_go_accepts_private_sumdb_and_catches_tampering(
        built: Built, private_db: PrivateSumdb, tmp_path: Path) -> None:
    async def fill() -> None:
        # 300 records: the go command needs a full tile, its parent and the partial edge.
        for i in range(300):
            if i == 3:
                assert await private_db.add(MODULE, VERSION, built.sum, built.gomodsum) == 3
            else:
                await private_db.add(f"corp.example/m{i}", "v1.0.0", fake_h1(f"z{i}"), fake_h1(f"m{i}"))

    asyncio.run(fill())

    async def app(path: str) -> tuple[int, bytes, str]:
        r = await private_db.handle(path.lstrip("/"))
        return r.status, r.body, r.content_type

    srv = AppServer(app)
    try:
        proxy = copy_proxy(built, tmp_path / "proxy")
        gosumdb = f"{private_db.vkey} {srv.url}"
        code, out = go_download(tmp_path / "go1", GOPROXY=f"file://{proxy}", GOSUMDB=gosumdb)
        assert code == 0, out
        [doc] = download_json(out)
        assert doc["Sum"] == built.sum and not doc.get("Error")
        assert f"/lookup/{MODULE}@{VERSION}" in srv.requests
        assert "/tile/8/0/000" in srv.requests and "/tile/8/1/000.p/1" in srv.requests

        tamper_zip(proxy)
        code, out = go_download(tmp_path / "go2", GOPROXY=f"file://{proxy}", GOSUMDB=gosumdb)
        assert code != 0
        assert "SECURITY ERROR" in out and "checksum mismatch" in out, out
        assert built.sum in out
    finally:
        srv.stop()


def test_modvault_serves_private_sumdb_beside_goproxy(
        built: Built, private_db: PrivateSumdb, tmp_path: Path) -> None:
    proxy = copy_proxy(built, tmp_path / "proxy")
    ensured: list[str] = []

    async def ensure(module: str, version: str) -> None:
        # What the service does: fetch and store the module, record its hashes.
        ensured.append(f"{module}@{version}")
        zip_h1 = await asyncio.to_thread(hash_zip, proxy / ZIP_REL)
        mod_h1 = hash_gomod((proxy / ZIP_REL).with_suffix(".mod").read_bytes())
        await private_db.add(module, version, zip_h1, mod_h1)

    async def app(path: str) -> tuple[int, bytes, str]:
        prefix = f"/sumdb/{NAME}/"
        if path.startswith(prefix):
            r = await private_db.handle(path[len(prefix):], ensure)
            return r.status, r.body, r.content_type
        return static_file(proxy, path)

    srv = AppServer(app)
    try:
        code, out = go_download(tmp_path / "go1", GOPROXY=srv.url, GOSUMDB=private_db.vkey)
        assert code == 0, out
        assert ensured == [f"{MODULE}@{VERSION}"]
        assert f"/sumdb/{NAME}/supported" in srv.requests
        assert f"/sumdb/{NAME}/lookup/{MODULE}@{VERSION}" in srv.requests
        assert private_db.lookup_id(MODULE, VERSION) == 0
        tamper_zip(proxy)
        code, out = go_download(tmp_path / "go2", GOPROXY=srv.url, GOSUMDB=private_db.vkey)
        assert code != 0 and "SECURITY ERROR" in out, out
        assert ensured == [f"{MODULE}@{VERSION}"]  # the record was not rewritten
    finally:
        srv.stop()


def test_go_verifies_through_sumdb_proxy(built: Built, tmp_path: Path) -> None:
    """An upstream database (a MemoryLog standing in for sum.golang.org, 300 records, so that full
    and partial tiles at two levels are involved) behind SumdbProxy."""
    upstream_db = FakeSumdb(NAME)
    upstream_db.add_many(5, "corp.example/before")
    assert upstream_db.add(MODULE, VERSION, built.sum, built.gomodsum) == 5
    upstream_db.add_many(294, "corp.example/after")
    upstream = FakeSumdbServer(upstream_db)
    proxy = copy_proxy(built, tmp_path / "proxy")
    data = tmp_path / "modvault-data"
    store = FileStore(data)
    front = AppServer()

    async def make() -> SumdbProxy:
        client = httpx.AsyncClient()
        return SumdbProxy([parse_sumdb(f"{upstream_db.vkey} {upstream.url}")], store, client, ttl=300.0,
                          offline=False, limits=LIMITS)

    sumdb_proxy = front.run(make())

    async def front_app(path: str) -> tuple[int, bytes, str]:
        if path.startswith("/sumdb/"):
            routed = sumdb_proxy.route(path[len("/sumdb/"):])
            if routed is None:
                return 404, b"unknown checksum database\n", "text/plain; charset=utf-8"
            r = await sumdb_proxy.handle(*routed)
            return r.status, r.body, r.content_type
        return static_file(proxy, path)

    front.app = front_app
    try:
        code, out = go_download(tmp_path / "go1", GOPROXY=front.url, GOSUMDB=upstream_db.vkey)
        assert code == 0, out
        assert f"/sumdb/{NAME}/supported" in front.requests
        assert f"/sumdb/{NAME}/tile/8/0/000" in front.requests  # the go command's own checks
        assert upstream_db.count(f"/lookup/{MODULE}@{VERSION}") == 1
        assert (data / "sumdb" / NAME / "tile" / "8" / "0" / "000").is_file()  # full: kept for good
        assert (data / "sumdb" / NAME / "lookup" / f"{MODULE}@{VERSION}").is_file()
        assert list((data / "sumdb" / NAME / "tile").rglob("*"))
        assert (data / ".modvault" / "sumdb" / NAME / "latest-verified").is_file()

        # modvault's own verifier, on the proxy's fetcher: what the service calls before storing.
        verifier = ChecksumVerifier(sumdb_proxy.fetcher(NAME))
        good = hash_zip(proxy / ZIP_REL)
        assert good == built.sum
        front.run(verifier.verify(MODULE, VERSION, zip_h1=good, mod_h1=built.gomodsum))
        tamper_zip(proxy)
        bad = hash_zip(proxy / ZIP_REL)
        with pytest.raises(SecurityError) as e:
            front.run(verifier.verify(MODULE, VERSION, zip_h1=bad))
        msg = e.value.message
        assert msg.startswith("SECURITY ERROR") and f"expected {built.sum}" in msg and f"got {bad}" in msg
        assert f"{MODULE} {VERSION}" in msg

        # The go command catches the tampered zip through the proxy too.
        code, out = go_download(tmp_path / "go2", GOPROXY=front.url, GOSUMDB=upstream_db.vkey)
        assert code != 0 and "SECURITY ERROR" in out, out

        # The database goes away: what the proxy stored is enough.
        upstream.stop()
        shutil.rmtree(proxy)
        copy_proxy(built, proxy)
        code, out = go_download(tmp_path / "go3", GOPROXY=front.url, GOSUMDB=upstream_db.vkey)
        assert code == 0, out
    finally:
        front.stop()
        if not upstream.closed:
            upstream.stop()
