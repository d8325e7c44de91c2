"""GitSource against real git repositories: mirrors updated by fetch, moved tags, timeouts,
authentication, untrusted trees, size limits, go-import discovery (git, mod, gopkg.in)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import shutil
import stat
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest

from modvault.errors import Forbidden, NotFound, UpstreamTimeout
from modvault.module.dirhash import hash_zip
from modvault.module.zipbuild import FileEntry, write_zip
from modvault.sources.vcs import GitSource, HostCredential, HTTPResponse
from modvault.sources.vcs import source as source_mod
from tests.support.gitrepos import GO, Repo, download_json, git, go_env, rmtree, run_go
from tests.support.upstream_server import TestUpstreamServer

T = TypeVar("T")
TOKEN = "glpat-VerySecretToken-42"


def run(fn: Callable[[GitSource], Awaitable[T]], src_factory: Callable[[], GitSource]) -> T:
    async def main() -> T:
        src = src_factory()
        try:
            return await fn(src)
        finally:
            await src.aclose()

    return asyncio.run(main())


def _hello(repo: Repo, module: str, tag: str, text: str) -> str:
    repo.write({"go.mod": f"module {module}\n\ngo 1.21\n", "hello.go": f"package hello\n// {text}\n"})
    return repo.commit(text, [tag] if tag else [])


# --- mirrors: clone once, then fetch ---------------------------------------------------------


def test_warm_mirror_fetches_instead_of_cloning(gitenv: Path) -> None:
    M = "github.com/acme/warm"
    repo = Repo(gitenv, M)
    _hello(repo, M, "v1.0.0", "one")
    cache = gitenv / "cache"

    async def scenario(src: GitSource) -> None:
        assert await src.list(M) == ["v1.0.0"]
        await src.zip(M, "v1.0.0", gitenv / "a.zip")
        mirror = src.mirror_for(f"https://{M}")
        assert (mirror.clones, mirror.fetches) == (1, 1)
        _hello(repo, M, "v1.1.0", "two")
        assert await src.list(M) == ["v1.0.0", "v1.1.0"]
        info = json.loads(await src.info(M, "v1.1.0"))
        assert info["Version"] == "v1.1.0"
        await src.zip(M, "v1.1.0", gitenv / "b.zip")
        assert (mirror.clones, mirror.fetches) == (1, 2)
        # Nothing changed upstream: no fetch at all.
        await src.mod(M, "v1.0.0")
        assert mirror.fetches == 2

    run(scenario, lambda: GitSource(cache, refs_ttl=0))

    # A new process reuses the mirror on disk: a fetch, not a clone.
    _hello(repo, M, "v1.2.0", "three")

    async def again(src: GitSource) -> None:
        assert await src.list(M) == ["v1.0.0", "v1.1.0", "v1.2.0"]
        await src.zip(M, "v1.2.0", gitenv / "c.zip")
        mirror = src.mirror_for(f"https://{M}")
        assert (mirror.clones, mirror.fetches) == (0, 1)

    run(again, lambda: GitSource(cache, refs_ttl=0))


def test_concurrent_cold_requests_clone_once(gitenv: Path) -> None:
    M = "github.com/acme/crowd"
    repo = Repo(gitenv, M)
    for i in range(3):
        _hello(repo, M, f"v1.{i}.0", f"c{i}")

    async def scenario(src: GitSource) -> None:
        results = await asyncio.gather(*[src.zip(M, f"v1.{i % 3}.0", gitenv / f"{i}.zip")
                                         for i in range(9)], *[src.list(M) for _ in range(4)])
        assert results[-1] == ["v1.0.0", "v1.1.0", "v1.2.0"]
        mirror = src.mirror_for(f"https://{M}")
        assert (mirror.clones, mirror.fetches) == (1, 1)
        hashes = {hash_zip(gitenv / f"{i}.zip") for i in range(9)}
        assert len(hashes) == 3

    run(scenario, lambda: GitSource(gitenv / "cache", max_git_procs=2))


@pytest.mark.skipif(GO is None, reason="go toolchain not on PATH")
def test_moved_tag_is_followed_like_a_fresh_go_command(gitenv: Path) -> None:
    M = "github.com/acme/moving"
    repo = Repo(gitenv, M)
    _hello(repo, M, "v1.0.0", "original")
    first = run(lambda s: s.info(M, "v1.0.0"), lambda: GitSource(gitenv / "cache", refs_ttl=0))
    # The tag moves (force-pushed) to a new commit.
    _hello(repo, M, "", "moved")
    git(repo.work, "tag", "-f", "v1.0.0")
    git(repo.work, "push", "-q", "-f", "origin", "refs/tags/v1.0.0")

    async def after(src: GitSource) -> tuple[bytes, str]:
        info = await src.info(M, "v1.0.0")
        await src.zip(M, "v1.0.0", gitenv / "moved.zip")
        return info, hash_zip(gitenv / "moved.zip")

    info, h1 = run(after, lambda: GitSource(gitenv / "cache", refs_ttl=0))
    assert info != first
    home = gitenv / "gohome"
    home.mkdir()
    env = go_env(home, gitenv / "repos", GOPROXY="direct")
    env["GIT_CONFIG_GLOBAL"] = str(gitenv / "gitconfig")
    doc = download_json(run_go(["mod", "download", "-json", f"{M}@v1.0.0"], home, env).stdout)[0]
    assert info == Path(str(doc["Info"])).read_bytes()
    assert h1 == doc["Sum"]
    rmtree(home / "gopath")


# --- failures -------------------------------------------------------------------------------


def test_unknown_repository_and_revision(gitenv: Path) -> None:
    M = "github.com/acme/known"
    repo = Repo(gitenv, M)
    _hello(repo, M, "v1.0.0", "one")

    async def scenario(src: GitSource) -> None:
        with pytest.raises(NotFound, match=re.escape("repository at github.com not found")):
            await src.list("github.com/acme/unknown")
        with pytest.raises(NotFound, match=r"github.com/acme/known@v1.9.0: invalid version: "
                                           r"unknown revision v1.9.0"):
            await src.info(M, "v1.9.0")
        with pytest.raises(NotFound, match="unknown revision nosuchbranch"):
            await src.info(M, "nosuchbranch")
        with pytest.raises(NotFound, match="unknown revision"):
            await src.zip(M, "v0.0.0-20200101000000-0123456789ab", gitenv / "x.zip")
        assert not (gitenv / "x.zip").exists()
        with pytest.raises(NotFound, match="malformed module path"):
            await src.list("github.com/acme/known/../x")
        with pytest.raises(NotFound, match=re.escape('invalid github.com import path "github.com/acme"')):
            await src.list("github.com/acme")
        with pytest.raises(NotFound, match="version control system 'hg' is not supported"):
            await src.list("hg.example.com/repo.hg")
        ok, why = await src.probe()
        assert ok and why.startswith("git version")

    async def no_discovery(url: str) -> HTTPResponse:
        raise AssertionError(url)

    async def ping(scheme: str, repo: str) -> bool:
        return True

    src = GitSource(gitenv / "cache", http_get=no_discovery)
    src._ping = ping  # type: ignore[method-assign]
    run(scenario, lambda: src)


def test_hung_git_is_killed(gitenv: Path) -> None:
    M = "github.com/acme/slow"
    repo = Repo(gitenv, M)
    _hello(repo, M, "v1.0.0", "one")
    wrapper = gitenv / "slowgit"
    real = shutil.which("git")
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *ls-remote*) sleep 60 & wait ;; esac\n'
                       f'exec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    t0 = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="timed out after 1s"):
        run(lambda s: s.list(M), lambda: GitSource(gitenv / "cache", git_timeout=1,
                                                   git=str(wrapper)))
    assert time.monotonic() - t0 < 10


def test_dotdot_tree_entry_is_a_clean_refusal(gitenv: Path) -> None:
    M = "github.com/acme/dotdot"
    repo = Repo(gitenv, M)
    _hello(repo, M, "", "base")
    blob = git(repo.work, "hash-object", "-w", "hello.go").strip()
    gomod = git(repo.work, "hash-object", "-w", "go.mod").strip()
    sub = _mktree(repo.work, f"100644 blob {blob}\tevil.go\n")
    top = _mktree(repo.work, f"100644 blob {gomod}\tgo.mod\n040000 tree {sub}\t..\n")
    commit = git(repo.work, "commit-tree", "-m", "evil", top).strip()
    git(repo.work, "push", "-q", "origin", f"{commit}:refs/tags/v1.0.0")

    async def scenario(src: GitSource) -> None:
        info = json.loads(await src.info(M, "v1.0.0"))
        assert info["Origin"]["Hash"] == commit
        with pytest.raises(NotFound, match="invalid path"):
            await src.zip(M, "v1.0.0", gitenv / "evil.zip")
        assert not (gitenv / "evil.zip").exists()

    run(scenario, lambda: GitSource(gitenv / "cache"))


def _mktree(work: Path, spec: str) -> str:
    import subprocess

    return subprocess.run(["git", "mktree"], cwd=work, input=spec, text=True, check=True,
                          capture_output=True).stdout.strip()


def test_oversized_archive_leaves_nothing(gitenv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    M = "github.com/acme/huge"
    repo = Repo(gitenv, M)
    repo.write({"go.mod": f"module {M}\n", "data.bin": random.Random(0).randbytes(100_000)})
    repo.commit("big", ["v1.0.0"])
    monkeypatch.setattr(source_mod, "MAX_ZIP_FILE", 4096)
    dest = gitenv / "huge.zip"
    with pytest.raises(NotFound, match="downloaded zip file too large"):
        run(lambda s: s.zip(M, "v1.0.0", dest), lambda: GitSource(gitenv / "cache"))
    assert not dest.exists()
    assert not any((gitenv / "cache" / "tmp").iterdir())


# --- authentication over HTTP (git's dumb protocol, served by a real server) ----------------


class _GitHTTP(BaseHTTPRequestHandler):
    root: Path
    expected: str | None
    seen_auth: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        auth = self.headers.get("Authorization")
        if auth:
            cls.seen_auth.append(auth)
        if cls.expected is not None and auth != cls.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rel = self.path.split("?", 1)[0].lstrip("/")
        p = (cls.root / rel).resolve()
        if not p.is_file() or cls.root.resolve() not in p.parents:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = p.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def git_http(gitenv: Path) -> Iterator[tuple[type[_GitHTTP], int, Repo]]:
    M = "private.example.com/lib"
    repo = Repo(gitenv, "private/lib")
    _hello(repo, M, "v1.0.0", "secret code")
    git(repo.bare, "update-server-info")
    handler = type("H", (_GitHTTP,), {"root": gitenv / "repos", "expected": None, "seen_auth": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield handler, srv.server_address[1], repo
    finally:
        srv.shutdown()
        srv.server_close()


def _private_source(gitenv: Path, port: int, credential: HostCredential | None) -> GitSource:
    base = f"http://127.0.0.1:{port}/"

    async def discovery(url: str) -> HTTPResponse:
        assert url == "https://private.example.com/lib?go-get=1"
        body = b'<meta name="go-import" content="private.example.com/lib git https://private.example.com/private/lib">'
        return HTTPResponse(200, url, body)

    creds = {base: credential} if credential is not None else None
    return GitSource(gitenv / "cache", http_get=discovery, credentials=creds,
                     url_rewrites={base: "https://private.example.com/"})


def test_private_repository_with_credentials(git_http: tuple[type[_GitHTTP], int, Repo],
                                             gitenv: Path) -> None:
    handler, port, _ = git_http
    cred = HostCredential("oauth2", TOKEN)
    handler.expected = cred.basic_header()
    M = "private.example.com/lib"

    async def scenario(src: GitSource) -> None:
        assert await src.list(M) == ["v1.0.0"]
        info = json.loads(await src.info(M, "v1.0.0"))
        assert info["Origin"]["URL"] == "https://private.example.com/private/lib"
        await src.zip(M, "v1.0.0", gitenv / "p.zip")
        names = zipfile.ZipFile(gitenv / "p.zip").namelist()
        assert f"{M}@v1.0.0/hello.go" in names

    run(scenario, lambda: _private_source(gitenv, port, cred))
    assert handler.seen_auth and set(handler.seen_auth) == {cred.basic_header()}


def test_authentication_failures_name_the_host_not_the_secret(
        git_http: tuple[type[_GitHTTP], int, Repo], gitenv: Path) -> None:
    handler, port, _ = git_http
    handler.expected = HostCredential("oauth2", "the-right-one").basic_header()
    M = "private.example.com/lib"
    wrong = HostCredential("oauth2", TOKEN)
    with pytest.raises(Forbidden) as e:
        run(lambda s: s.list(M), lambda: _private_source(gitenv, port, wrong))
    basic = wrong.basic_header().split()[1]
    assert "private.example.com" in e.value.message
    assert TOKEN not in e.value.message and basic not in e.value.message
    assert base64.b64decode(basic).decode().endswith(TOKEN)  # it was really sent
    assert wrong.basic_header() in handler.seen_auth
    # Without credentials: not found (the go command's answer), naming the host.
    with pytest.raises(NotFound) as e2:
        run(lambda s: s.info(M, "v1.0.0"), lambda: _private_source(gitenv, port, None))
    assert "requires authentication" in e2.value.message
    assert "private.example.com" in e2.value.message


# --- discovery: mod entries and gopkg.in ----------------------------------------------------


def test_mod_go_import_is_served_by_that_proxy(gitenv: Path) -> None:
    M = "example.test/viaproxy"
    tree = gitenv / "proxy" / "example.test" / "viaproxy" / "@v"
    tree.mkdir(parents=True)
    (tree / "list").write_text("v1.0.0\n")
    (tree / "v1.0.0.info").write_text('{"Version":"v1.0.0","Time":"2023-01-01T00:00:00Z"}')
    (tree / "v1.0.0.mod").write_text(f"module {M}\n")
    with open(tree / "v1.0.0.zip", "wb") as out:
        write_zip(out, M, "v1.0.0", [FileEntry.from_bytes("go.mod", f"module {M}\n".encode()),
                                     FileEntry.from_bytes("p.go", b"package p\n")])
    srv = TestUpstreamServer(gitenv / "proxy").start()
    try:
        async def discovery(url: str) -> HTTPResponse:
            meta = f'<meta name="go-import" content="example.test/viaproxy mod {srv.url}">'
            return HTTPResponse(200, url, meta.encode())

        async def scenario(src: GitSource) -> None:
            assert await src.list(M) == ["v1.0.0"]
            assert json.loads(await src.info(M, "v1.0.0"))["Version"] == "v1.0.0"
            assert await src.mod(M, "v1.0.0") == f"module {M}\n".encode()
            await src.zip(M, "v1.0.0", gitenv / "vp.zip")
            assert hash_zip(gitenv / "vp.zip") == hash_zip(tree / "v1.0.0.zip")

        run(scenario, lambda: GitSource(gitenv / "cache", http_get=discovery))
        assert "/example.test/viaproxy/@v/list" in srv.requests
    finally:
        srv.stop()


def test_gopkg_in_paths(gitenv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gopkg.in/yaml.vN: the repository root is the whole path, the major is ".vN".
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitenv / "empty-gitconfig"))
    (gitenv / "empty-gitconfig").write_text('[protocol "file"]\n\tallow = always\n')
    repo = Repo(gitenv, "github.com/go-yaml/yaml")
    repo.write({"yaml.go": "package yaml\n"})
    repo.commit("v1", ["v1.0.0"])
    repo.write({"go.mod": "module gopkg.in/yaml.v2\n", "yaml.go": "package yaml\n// 2\n"})
    repo.commit("v2", ["v2.0.0"])
    repo.write({"yaml.go": "package yaml\n// 2.1\n"})
    repo.commit("v2.1", ["v2.1.0"])
    repo.write({"yaml.go": "package yaml\n// head\n"})
    repo.commit("head")

    async def discovery(url: str) -> HTTPResponse:
        path = url.removeprefix("https://").split("?")[0]
        meta = f'<meta name="go-import" content="{path} git https://github.com/go-yaml/yaml">'
        return HTTPResponse(200, url, meta.encode())

    rewrites = {f"{gitenv / 'repos' / 'github.com'}/": "https://github.com/"}

    async def scenario(src: GitSource) -> None:
        assert await src.list("gopkg.in/yaml.v2") == ["v2.0.0", "v2.1.0"]
        assert await src.list("gopkg.in/yaml.v1") == ["v1.0.0"]
        assert await src.list("gopkg.in/yaml.v2-unstable") == []
        head = json.loads(await src.info("gopkg.in/yaml.v2", "main"))
        assert head["Version"].startswith("v2.1.1-0.")
        assert "Subdir" not in head["Origin"]
        assert await src.mod("gopkg.in/yaml.v1", "v1.0.0") == b"module gopkg.in/yaml.v1\n"
        assert await src.mod("gopkg.in/yaml.v2", "v2.1.0") == b"module gopkg.in/yaml.v2\n"
        await src.zip("gopkg.in/yaml.v2", "v2.1.0", gitenv / "y.zip")
        assert "gopkg.in/yaml.v2@v2.1.0/yaml.go" in zipfile.ZipFile(gitenv / "y.zip").namelist()
        latest = json.loads(await src.latest("gopkg.in/yaml.v2"))
        assert latest["Version"] == "v2.1.0"

    run(scenario, lambda: GitSource(gitenv / "cache", http_get=discovery, url_rewrites=rewrites))


def test_commit_time_beyond_year_9999(gitenv: Path) -> None:
    # The go command builds the zip but cannot write the .info (json: year outside of range).
    M = "github.com/acme/future"
    repo = Repo(gitenv, M)
    repo.write({"go.mod": f"module {M}\n", "f.go": "package future\n"})
    git(repo.work, "add", "-A")
    git(repo.work, "commit", "-q", "-m", "far away", when=300_000_000_000)
    git(repo.work, "tag", "v1.0.0")
    git(repo.work, "push", "-q", "--tags", "origin", "main")

    async def scenario(src: GitSource) -> str:
        with pytest.raises(NotFound, match=re.escape("time outside of range [1,9999]")):
            await src.info(M, "v1.0.0")
        with pytest.raises(NotFound, match="time outside of range"):
            await src.info(M, "main")
        assert await src.mod(M, "v1.0.0") == f"module {M}\n".encode()
        await src.zip(M, "v1.0.0", gitenv / "f.zip")
        return hash_zip(gitenv / "f.zip")

    h1 = run(scenario, lambda: GitSource(gitenv / "cache"))
    if GO is not None:
        home = gitenv / "gohome"
        home.mkdir()
        env = go_env(home, gitenv / "repos", GOPROXY="direct")
        env["GIT_CONFIG_GLOBAL"] = str(gitenv / "gitconfig")
        doc = download_json(run_go(["mod", "download", "-json", f"{M}@v1.0.0"], home, env).stdout)[0]
        assert doc["Sum"] == h1
        rmtree(home / "gopath")
