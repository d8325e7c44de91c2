"""Module path → repository root: the go command's static rules (cmd/go/internal/vcs vcsPaths),
paths with a .git element, and ?go-get=1 discovery served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import pytest

from modvault.sources.vcs.repo_root import (
    HTTPResponse,
    MetaImport,
    RepoRoot,
    RepoRootError,
    httpx_getter,
    match_go_import,
    parse_meta_go_imports,
    resolve_repo_root,
    static_repo_root,
)

# --- static rules (cases from cmd/go/internal/vcs/vcs_test.go TestRepoRootForImportPath) ------

STATIC_OK = [
    ("github.com/golang/groupcache", "https://github.com/golang/groupcache", "github.com/golang/groupcache"),
    ("github.com/golang/groupcache/lru/x", "https://github.com/golang/groupcache",
     "github.com/golang/groupcache"),
    ("github.com/Azure/azure-sdk-for-go/v2", "https://github.com/Azure/azure-sdk-for-go",
     "github.com/Azure/azure-sdk-for-go"),
    ("hub.jazz.net/git/user1/pkgname", "https://hub.jazz.net/git/user1/pkgname",
     "hub.jazz.net/git/user1/pkgname"),
    ("hub.jazz.net/git/user1/pkgname/submodule/submodule/submodule",
     "https://hub.jazz.net/git/user1/pkgname", "hub.jazz.net/git/user1/pkgname"),
    ("hub.jazz.net/git/user/pkg.name", "https://hub.jazz.net/git/user/pkg.name",
     "hub.jazz.net/git/user/pkg.name"),
    ("git.openstack.org/openstack/swift", "https://git.openstack.org/openstack/swift",
     "git.openstack.org/openstack/swift"),
    ("git.openstack.org/openstack/swift.git", "https://git.openstack.org/openstack/swift.git",
     "git.openstack.org/openstack/swift.git"),
    ("git.openstack.org/openstack/swift/go/hummingbird",
     "https://git.openstack.org/openstack/swift", "git.openstack.org/openstack/swift"),
    ("git.apache.org/package-name.git", "https://git.apache.org/package-name.git",
     "git.apache.org/package-name.git"),
    ("git.apache.org/package-name_2.x.git/path/to/lib", "https://git.apache.org/package-name_2.x.git",
     "git.apache.org/package-name_2.x.git"),
    ("bitbucket.org/workspace/pkgname", "https://bitbucket.org/workspace/pkgname",
     "bitbucket.org/workspace/pkgname"),
    # The general rule: the URL is the path before ".git", the root includes it.
    ("example.com/team/repo.git", "https://example.com/team/repo", "example.com/team/repo.git"),
    ("example.com/team/repo.git/sub/pkg", "https://example.com/team/repo", "example.com/team/repo.git"),
    ("example.com:8443/~user/repo.git/v2", "https://example.com:8443/~user/repo",
     "example.com:8443/~user/repo.git"),
]

STATIC_BAD = [
    ("github.com/golang", 'invalid github.com import path "github.com/golang"'),
    ("github.com/user/repo.git", "invalid version control suffix in github.com/ path"),
    ("github.com/user/repo/.../x!", 'invalid github.com import path'),
    ("hub.jazz.net/git", "invalid hub.jazz.net/git import path"),
    ("hub.jazz.net/git/USER/pkgname", 'invalid hub.jazz.net/git import path'),
    ("bitbucket.org/user", 'invalid bitbucket.org import path'),
    ("git.apache.org/package-name", 'invalid git.apache.org import path'),
    ("https://github.com/a/b", '"https://" not allowed in import path'),
    ("example.net/anything", "no modules on example.net"),
]


@pytest.mark.parametrize(("path", "repo", "root"), STATIC_OK)
def test_static_rules(path: str, repo: str, root: str) -> None:
    rr = static_repo_root(path)
    assert rr is not None
    assert (rr.repo, rr.root) == (repo, root)
    assert rr.vcs == "git" and not rr.is_custom


@pytest.mark.parametrize(("path", "reason"), STATIC_BAD)
def test_static_rules_refuse(path: str, reason: str) -> None:
    with pytest.raises(RepoRootError) as e:
        static_repo_root(path)
    assert reason in e.value.message


@pytest.mark.parametrize("path", ["golang.org/x/tools", "example.com/plain", "gopkg.in/yaml.v3",
                                  "rsc.io/quote"])
def test_unknown_hosts_need_discovery(path: str) -> None:
    assert static_repo_root(path) is None


def test_chiselapp_is_fossil() -> None:
    rr = static_repo_root("chiselapp.com/user/kyle/repository/fossilgg")
    assert rr == RepoRoot("https://chiselapp.com/user/kyle/repository/fossilgg",
                          "chiselapp.com/user/kyle/repository/fossilgg", "fossil")


def test_dot_git_rule_pings_secure_schemes_in_order() -> None:
    pinged: list[str] = []

    async def ping(scheme: str, repo: str) -> bool:
        pinged.append(f"{scheme}://{repo}")
        return scheme == "ssh"

    async def no_http(url: str) -> HTTPResponse:
        raise AssertionError("no discovery for a .git path")

    rr = asyncio.run(resolve_repo_root("git.example.com/team/lib.git/sub", http_get=no_http,
                                       ping=ping))
    # vcsGit.Scheme is git, https, http, git+ssh, ssh; only the secure ones are tried.
    assert pinged == ["https://git.example.com/team/lib", "git+ssh://git.example.com/team/lib",
                      "ssh://git.example.com/team/lib"]
    assert rr == RepoRoot("ssh://git.example.com/team/lib", "git.example.com/team/lib.git", "git")

    async def never(scheme: str, repo: str) -> bool:
        return False

    with pytest.raises(RepoRootError, match="no secure protocol found for repository"):
        asyncio.run(resolve_repo_root("git.example.com/team/lib.git", http_get=no_http, ping=never))
    # GOINSECURE: the insecure schemes are tried too, in the go command's order.
    pinged.clear()
    rr = asyncio.run(resolve_repo_root("git.example.com/team/lib.git", http_get=no_http,
                                       ping=ping, insecure=True))
    assert pinged[:2] == ["git://git.example.com/team/lib", "https://git.example.com/team/lib"]


# --- meta tag parsing (cases from cmd/go/internal/vcs/discovery_test.go) --------------------

META_CASES: list[tuple[str, bool, list[MetaImport]]] = [
    ('<meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">', False,
     [MetaImport("foo/bar", "git", "https://github.com/rsc/foo/bar")]),
    ('<meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">\n'
     '<meta name="go-import" content="baz/quux git http://github.com/rsc/baz/quux">', False,
     [MetaImport("foo/bar", "git", "https://github.com/rsc/foo/bar"),
      MetaImport("baz/quux", "git", "http://github.com/rsc/baz/quux")]),
    ('<meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">\n'
     '<meta name="go-import" content="foo/bar mod http://github.com/rsc/baz/quux">', False,
     [MetaImport("foo/bar", "git", "https://github.com/rsc/foo/bar")]),
    ('<meta name="go-import" content="foo/bar mod http://github.com/rsc/baz/quux">\n'
     '<meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">', True,
     [MetaImport("foo/bar", "mod", "http://github.com/rsc/baz/quux")]),
    ('<head>\n<meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">\n'
     '</head>\n<meta name="go-import" content="after/head git https://x.example/y">', False,
     [MetaImport("foo/bar", "git", "https://github.com/rsc/foo/bar")]),
    ('<meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">\n<body>\n'
     '<meta name="go-import" content="in/body git https://x.example/y">', False,
     [MetaImport("foo/bar", "git", "https://github.com/rsc/foo/bar")]),
    ('<!doctype html><meta name="go-import" content="foo/bar git https://github.com/rsc/foo/bar">',
     False, [MetaImport("foo/bar", "git", "https://github.com/rsc/foo/bar")]),
    ('<!doctype html><title>Page Not Found</title><meta name=go-import '
     'content="chitin.io/chitin git https://github.com/chitin-io/chitin">'
     '<div style=position:relative>DRAFT</div>', False,
     [MetaImport("chitin.io/chitin", "git", "https://github.com/chitin-io/chitin")]),
    ('<META NAME="go-import" CONTENT="x.org/a git https://x.org/a.git sub/dir">', False,
     [MetaImport("x.org/a", "git", "https://x.org/a.git", "sub/dir")]),
    ('<meta name="go-import" content="too few">', False, []),
    ('<meta name="go-source" content="x.org/a https://x.org/a a b">', False, []),
    ('<meta name="go-import" content="a.org/x git https://a.org/x one two">', False, []),
]


@pytest.mark.parametrize(("html", "prefer_mod", "want"), META_CASES)
def test_parse_meta_go_imports(html: str, prefer_mod: bool, want: list[MetaImport]) -> None:
    assert parse_meta_go_imports(html.encode(), prefer_mod=prefer_mod) == want


def test_match_go_import() -> None:
    imports = [MetaImport("x.org/a", "mod", "https://proxy.x.org"),
               MetaImport("x.org/a", "git", "https://x.org/a")]
    assert match_go_import(imports, "x.org/a/b").vcs == "mod"
    with pytest.raises(RepoRootError, match="multiple meta tags match"):
        match_go_import([MetaImport("x.org/a", "git", "u"), MetaImport("x.org", "git", "v")],
                        "x.org/a/b")
    # "x.org/ab" is not under the prefix "x.org/a".
    with pytest.raises(Exception, match=re.escape("meta tag x.org/a did not match import path x.org/ab")):
        match_go_import([MetaImport("x.org/a", "git", "u")], "x.org/ab")


# --- discovery against a real HTTP server ---------------------------------------------------


class _Pages(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, tuple[int, str]]] = {}
    seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        host = self.headers.get("X-Host", "")
        key = host + self.path.split("?", 1)[0]
        status, body = type(self).pages.get(key, (404, "<html>not found</html>"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def pages() -> Iterator[tuple[dict[str, tuple[int, str]], list[str], int]]:
    handler = type("Pages", (_Pages,), {"pages": {}, "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield handler.pages, handler.seen, srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def _meta(*contents: str) -> str:
    tags = "".join(f'<meta name="go-import" content="{c}">' for c in contents)
    return f"<!DOCTYPE html><html><head>{tags}</head><body>hi</body></html>"


def _resolve(path: str, port: int, **kw: object) -> RepoRoot:
    """Resolve with the real httpx client; https://HOST/... is sent to the local server."""

    async def main() -> RepoRoot:
        async with httpx.AsyncClient() as client:

            async def get(url: str) -> HTTPResponse:
                parts = urlsplit(url)
                assert parts.scheme == "https" and parts.query == "go-get=1", url
                local = f"http://127.0.0.1:{port}{parts.path}?{parts.query}"
                resp = await client.get(local, headers={"X-Host": parts.netloc})
                # Name the page by the URL the go command would have fetched.
                return HTTPResponse(resp.status_code, url, resp.content)

            return await resolve_repo_root(path, http_get=get, **kw)  # type: ignore[arg-type]

    return asyncio.run(main())


def test_discovery_git(pages: tuple[dict[str, tuple[int, str]], list[str], int]) -> None:
    table, seen, port = pages
    table["corp.example/lib"] = (200, _meta("corp.example/lib git https://git.corp.example/lib"))
    rr = _resolve("corp.example/lib", port)
    assert rr == RepoRoot("https://git.corp.example/lib", "corp.example/lib", "git", is_custom=True)
    assert seen == ["/lib?go-get=1"]


def test_discovery_verifies_a_shorter_prefix(
        pages: tuple[dict[str, tuple[int, str]], list[str], int]) -> None:
    table, seen, port = pages
    meta = _meta("corp.example/lib git https://git.corp.example/lib")
    table["corp.example/lib/sub/pkg"] = (200, meta)
    table["corp.example/lib"] = (200, meta)
    rr = _resolve("corp.example/lib/sub/pkg", port)
    assert rr.root == "corp.example/lib" and rr.repo == "https://git.corp.example/lib"
    assert seen == ["/lib/sub/pkg?go-get=1", "/lib?go-get=1"]
    # The prefix's own page disagreeing is an error: a page may not speak for its parent.
    table["corp.example/lib"] = (200, _meta("corp.example/lib git https://evil.example/lib"))
    with pytest.raises(RepoRootError, match=re.escape("disagree about go-import for corp.example/lib")):
        _resolve("corp.example/lib/sub/pkg", port)


def test_discovery_mod_is_preferred(pages: tuple[dict[str, tuple[int, str]], list[str], int]) -> None:
    table, _, port = pages
    table["corp.example/m"] = (200, _meta("corp.example/m git https://git.corp.example/m",
                                          "corp.example/m mod https://proxy.corp.example"))
    rr = _resolve("corp.example/m", port)
    assert rr == RepoRoot("https://proxy.corp.example", "corp.example/m", "mod", is_custom=True)


def test_discovery_subdir(pages: tuple[dict[str, tuple[int, str]], list[str], int]) -> None:
    table, _, port = pages
    table["corp.example/s"] = (200, _meta("corp.example/s git https://git.corp.example/mono go/s"))
    rr = _resolve("corp.example/s", port)
    assert (rr.repo, rr.root, rr.subdir) == ("https://git.corp.example/mono", "corp.example/s", "go/s")
    table["corp.example/t"] = (200, _meta("corp.example/t git https://git.corp.example/mono /abs"))
    with pytest.raises(RepoRootError, match='invalid subdirectory "/abs": leading slash'):
        _resolve("corp.example/t", port)


@pytest.mark.parametrize(("content", "reason"), [
    ("corp.example/r git file:///etc/repo", 'invalid repo root "file:///etc/repo": file scheme'),
    ("corp.example/r git git.corp.example/r", 'invalid repo root "git.corp.example/r": no scheme'),
    ("corp.example/r bzr https://x.example/r", 'unknown vcs "bzr"'),
    ("other.example/r git https://x.example/r", "no go-import meta tags (meta tag other.example/r "
     "did not match import path corp.example/r)"),
])
def test_discovery_refusals(pages: tuple[dict[str, tuple[int, str]], list[str], int],
                            content: str, reason: str) -> None:
    table, _, port = pages
    table["corp.example/r"] = (200, _meta(content))
    with pytest.raises(RepoRootError) as e:
        _resolve("corp.example/r", port)
    assert reason in e.value.message
    assert e.value.message.startswith('unrecognized import path "corp.example/r": ')


def test_discovery_status_and_missing_tags(
        pages: tuple[dict[str, tuple[int, str]], list[str], int]) -> None:
    table, _, port = pages
    with pytest.raises(RepoRootError, match=r"reading https://corp.example/none\?go-get=1: 404 Not Found"):
        _resolve("corp.example/none", port)
    # A 404 page that still carries the tag is used, as the go command does.
    table["corp.example/soft404"] = (404, _meta("corp.example/soft404 git https://g.example/x"))
    assert _resolve("corp.example/soft404", port).repo == "https://g.example/x"
    table["corp.example/empty"] = (200, "<html><head></head><body></body></html>")
    with pytest.raises(RepoRootError, match="no go-import meta tags"):
        _resolve("corp.example/empty", port)


def test_discovery_transport_error() -> None:
    async def refuse(url: str) -> HTTPResponse:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RepoRootError, match=re.escape('unrecognized import path "corp.example/x": '
                                                      "https fetch: connection refused")):
        asyncio.run(resolve_repo_root("corp.example/x", http_get=refuse))
    with pytest.raises(RepoRootError, match="import path does not begin with hostname"):
        asyncio.run(resolve_repo_root("localhost/x", http_get=refuse))


def test_httpx_getter_against_real_server(
        pages: tuple[dict[str, tuple[int, str]], list[str], int]) -> None:
    table, _, port = pages
    table["/lib"] = (200, _meta("127.0.0.1/lib git https://g.example/lib"))

    async def main() -> HTTPResponse:
        async with httpx.AsyncClient() as client:
            get = httpx_getter(client, lambda url: {"Authorization": "Basic c2VjcmV0"})
            return await get(f"http://127.0.0.1:{port}/lib?go-get=1")

    resp = asyncio.run(main())
    assert resp.status == 200 and b"go-import" in resp.body
    assert resp.url == f"http://127.0.0.1:{port}/lib?go-get=1"


def test_insecure_falls_back_to_http() -> None:
    asked: list[str] = []

    async def get(url: str) -> HTTPResponse:
        asked.append(url)
        if url.startswith("https://"):
            raise httpx.ConnectError("tls handshake failed")
        return HTTPResponse(200, url, _meta("corp.example/x git http://git.corp.example/x").encode())

    with pytest.raises(RepoRootError, match="https fetch: tls handshake failed"):
        asyncio.run(resolve_repo_root("corp.example/x", http_get=get))
    rr = asyncio.run(resolve_repo_root("corp.example/x", http_get=get, insecure=True))
    assert rr.repo == "http://git.corp.example/x"
    assert asked[-2:] == ["https://corp.example/x?go-get=1", "http://corp.example/x?go-get=1"]
