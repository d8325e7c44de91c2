"""Module path → repository root, as the go command finds it (go.dev/ref/mod#vcs-find).

Mirrors cmd/go/internal/vcs ``RepoRootForImportPath`` in module mode (``PreferMod``):

1. Static rules for well-known hosts (``vcsPaths``): github.com, bitbucket.org, hub.jazz.net,
   git.apache.org, git.openstack.org, chiselapp.com; and the general rule for any path with a
   ``.git``/``.hg``/``.svn``/``.fossil`` element (``example.com/repo.git/sub``), whose repository URL
   is the path before that suffix with the first secure scheme that answers a ping.
2. Otherwise ``https://<path>?go-get=1`` discovery: the page's ``<meta name="go-import"
   content="prefix vcs repo-url [subdir]">`` tags (go.dev/ref/mod#vcs-find). ``mod`` entries come
   first and win over other entries for the same prefix: the ``mod`` "vcs" means "this prefix is
   served by the GOPROXY at repo-url" (go.dev/ref/mod#serving-from-proxy). A tag whose prefix is not
   the whole path is verified against the prefix's own page, as the go command does.

All network access goes through injected callables — ``http_get`` for discovery, ``ping`` for the
general ``.git`` rule — so the rules can be tested against a local server. Every failure is a
:class:`RepoRootError` with the go command's one-line reason; it means "cannot find code for this
module", i.e. not found.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from modvault.sources.pacing import BodyPace

if TYPE_CHECKING:
    import httpx


__all__ = [
    "HTTPGet",
    "HTTPResponse",
    "MetaImport",
    "Ping",
    "RepoRoot",
    "RepoRootError",
    "has_path_prefix",
    "httpx_getter",
    "match_go_import",
    "parse_meta_go_imports",
    "resolve_repo_root",
    "static_repo_root",
]

_MAX_DISCOVERY_BODY = 4 << 20


class RepoRootError(Exception):
    """No repository can be found for a path; ``message`` is the go command's reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class RepoRoot:
    """cmd/go/internal/vcs.RepoRoot: where the code for a module path lives."""

    repo: str  # repository URL including its scheme (for vcs "mod": the GOPROXY base URL)
    root: str  # the import path of the repository root (or of ``subdir`` in it)
    vcs: str  # "git", "hg", "svn", "fossil" or "mod"
    subdir: str = ""  # go-import's optional fourth field: the root's directory in the repository
    is_custom: bool = False  # found through go-import discovery rather than a static rule


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    status: int
    url: str  # the final URL, after redirects
    body: bytes


# An HTTP GET: raises (any exception) when no response at all was received.
HTTPGet = Callable[[str], Awaitable[HTTPResponse]]
# ping(scheme, repo) -> whether ``scheme://repo`` answers (``git ls-remote``).
Ping = Callable[[str, str], Awaitable[bool]]


def has_path_prefix(s: str, prefix: str) -> bool:
    """cmd/go/internal/str.HasPathPrefix: ``prefix`` is ``s`` or a leading run of its elements."""
    if len(s) == len(prefix):
        return s == prefix
    if prefix == "":
        return True
    if len(s) > len(prefix):
        if prefix.endswith("/"):
            return s.startswith(prefix)
        return s[len(prefix)] == "/" and s.startswith(prefix)
    return False


# --- static rules (cmd/go/internal/vcs vcsPaths) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _VCSPath:
    path_prefix: str
    regexp: re.Pattern[str]
    vcs: str  # "" means: from the regexp's "vcs" group
    repo: str  # template; "" means: the regexp's "repo" group, scheme found by pinging
    no_vcs_suffix: bool = False


_W = r"[0-9A-Za-z_.\-]"  # RE2's [\w.\-]: \w is ASCII only

_VCS_PATHS: tuple[_VCSPath, ...] = (
    _VCSPath("github.com", re.compile(rf"^(?P<root>github\.com/{_W}+/{_W}+)(/{_W}+)*$"),
             "git", "https://{root}", no_vcs_suffix=True),
    _VCSPath("bitbucket.org",
             re.compile(rf"^(?P<root>bitbucket\.org/(?P<bitname>{_W}+/{_W}+))(/{_W}+)*$"),
             "git", "https://{root}", no_vcs_suffix=True),
    _VCSPath("hub.jazz.net/git",
             re.compile(rf"^(?P<root>hub\.jazz\.net/git/[a-z0-9]+/{_W}+)(/{_W}+)*$"),
             "git", "https://{root}", no_vcs_suffix=True),
    _VCSPath("git.apache.org",
             re.compile(rf"^(?P<root>git\.apache\.org/[a-z0-9_.\-]+\.git)(/{_W}+)*$"),
             "git", "https://{root}"),
    _VCSPath("git.openstack.org",
             re.compile(rf"^(?P<root>git\.openstack\.org/{_W}+/{_W}+)(\.git)?(/{_W}+)*$"),
             "git", "https://{root}"),
    _VCSPath("chiselapp.com",
             re.compile(r"^(?P<root>chiselapp\.com/user/[A-Za-z0-9]+/repository/[0-9A-Za-z_.\-]+)$"),
             "fossil", "https://{root}"),
    # The general rule for any server; unanchored at the start, like the go command's.
    _VCSPath("", re.compile(
        r"(?P<root>(?P<repo>([a-z0-9.\-]+\.)+[a-z0-9.\-]+(:[0-9]+)?(/~?" + _W + r"+)+?)"
        r"\.(?P<vcs>fossil|git|hg|svn))(/~?" + _W + r"+)*$"), "", ""),
)

_KNOWN_VCS = ("hg", "git", "svn", "fossil")
# vcs.Cmd.Scheme, in the order the go command tries them.
_SCHEMES = {
    "git": ("git", "https", "http", "git+ssh", "ssh"),
    "hg": ("https", "http", "ssh"),
    "svn": ("https", "http", "svn", "svn+ssh"),
    "fossil": ("https", "http"),
}
_SECURE_SCHEMES = frozenset({"https", "git+ssh", "svn+ssh", "ssh"})


def _is_secure_scheme(vcs: str, scheme: str) -> bool:
    # vcs.Cmd.isSecureScheme: for git, GIT_ALLOW_PROTOCOL (when set) is the list of secure schemes.
    if vcs == "git":
        allow = os.environ.get("GIT_ALLOW_PROTOCOL", "")
        if allow:
            return scheme in allow.split(":")
    return scheme in _SECURE_SCHEMES


@dataclass(frozen=True, slots=True)
class _StaticMatch:
    root: str
    vcs: str
    repo: str  # a URL, or a scheme-less "host/path" when ``schemeless``
    schemeless: bool


def _static_match(path: str) -> _StaticMatch | None:
    """vcs.repoRootFromVCSPaths without the ping: None means a dynamic lookup is needed."""
    if has_path_prefix(path, "example.net"):
        raise RepoRootError("no modules on example.net")
    if path == "rsc.io":
        raise RepoRootError("rsc.io is not a module")
    for prefix in ("http:", "https:"):
        if path.startswith(prefix):
            raise RepoRootError(f'"{prefix}//" not allowed in import path')
    for srv in _VCS_PATHS:
        if not has_path_prefix(path, srv.path_prefix):
            continue
        m = srv.regexp.search(path) if srv.path_prefix == "" else srv.regexp.match(path)
        if m is None:
            if srv.path_prefix != "":
                raise RepoRootError(f'invalid {srv.path_prefix} import path "{path}"')
            continue
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        root = groups["root"]
        vcs = srv.vcs or groups["vcs"]
        repo = srv.repo.replace("{root}", root) if srv.repo else groups["repo"]
        if srv.no_vcs_suffix and any(repo.endswith("." + v) for v in _KNOWN_VCS):
            raise RepoRootError(f"invalid version control suffix in {srv.path_prefix}/ path")
        return _StaticMatch(root, vcs, repo, schemeless=not srv.repo)
    return None


def static_repo_root(path: str) -> RepoRoot | None:
    """The repository root from the static rules alone, or None when discovery is needed.

    A scheme-less match (the general ``.git`` rule) gets the first secure scheme, unpinged.
    Raises :class:`RepoRootError` for a path a static rule claims but rejects.
    """
    m = _static_match(path)
    if m is None:
        return None
    if not m.schemeless:
        return RepoRoot(m.repo, m.root, m.vcs)
    scheme = next(s for s in _SCHEMES[m.vcs] if _is_secure_scheme(m.vcs, s))
    return RepoRoot(f"{scheme}://{m.repo}", m.root, m.vcs)


# --- go-import discovery (cmd/go/internal/vcs discovery.go) -----------------------------------


@dataclass(frozen=True, slots=True)
class MetaImport:
    prefix: str
    vcs: str
    repo_root: str
    subdir: str = ""


def parse_meta_go_imports(body: bytes | str, *, prefer_mod: bool = True) -> list[MetaImport]:
    """vcs.parseMetaGoImports: the go-import tags of an HTML page, ``mod`` entries first.

    With ``prefer_mod`` (module mode) every ``mod`` entry comes first and other entries for a prefix
    that has a ``mod`` entry are dropped; without it ``mod`` entries are ignored.
    """
    from modvault.sources.vcs.metaparser import MetaParser  # html.parser: 0.4 MiB, rarely needed

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    parser = MetaParser()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is lenient
        pass
    imports = parser.found
    out: list[MetaImport] = []
    have: set[str] = set()
    if prefer_mod:
        for m in imports:
            if m.vcs == "mod":
                have.add(m.prefix)
                out.append(m)
    out.extend(m for m in imports if m.vcs != "mod" and m.prefix not in have)
    return out


class _ImportMismatch(Exception):
    def __init__(self, path: str, mismatches: list[str]) -> None:
        super().__init__(", ".join(
            f"meta tag {p} did not match import path {path}" for p in mismatches))


def match_go_import(imports: list[MetaImport], path: str) -> MetaImport:
    """vcs.matchGoImport: the one tag whose prefix is a path prefix of ``path``.

    A ``mod`` match wins over later non-``mod`` matches; two matches otherwise are an error.
    """
    match: int | None = None
    mismatches: list[str] = []
    for i, im in enumerate(imports):
        if not has_path_prefix(path, im.prefix):
            mismatches.append(im.prefix)
            continue
        if match is not None:
            if imports[match].vcs == "mod" and im.vcs != "mod":
                break
            raise RepoRootError(f'multiple meta tags match import path "{path}"')
        match = i
    if match is None:
        raise _ImportMismatch(path, mismatches)
    return imports[match]


def _discovery_url(path: str, scheme: str = "https") -> str:
    # vcs.urlForImportPath: the host is the first element and must contain a dot.
    host, _, rest = path.partition("/")
    if "." not in host:
        raise RepoRootError("import path does not begin with hostname")
    return f"{scheme}://{host}/{rest}?go-get=1"


def _status_error(resp: HTTPResponse) -> str | None:
    # web.Response.Err: a non-2xx status as "reading URL: 404 Not Found".
    import httpx

    if 200 <= resp.status < 300:
        return None
    reason = httpx.codes.get_reason_phrase(resp.status)
    return f"reading {resp.url}: {resp.status} {reason}".rstrip()


async def _get(http_get: HTTPGet, path: str, insecure: bool) -> HTTPResponse:
    """web.Get: https, and with ``insecure`` (GOINSECURE) http when https fails."""
    try:
        return await http_get(_discovery_url(path))
    except RepoRootError:
        raise
    except Exception as exc:
        if not insecure:
            raise RepoRootError(f"https fetch: {_describe(exc)}") from None
        try:
            return await http_get(_discovery_url(path, "http"))
        except Exception as exc2:
            raise RepoRootError(f"http/https fetch: {_describe(exc2)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


async def _meta_imports_for_prefix(http_get: HTTPGet, prefix: str, insecure: bool,
                                   cache: dict[str, tuple[str, list[MetaImport]]]) \
        -> tuple[str, list[MetaImport]]:
    """vcs.metaImportsForPrefix (memoized per resolution)."""
    if prefix in cache:
        return cache[prefix]
    resp = await _get(http_get, prefix, insecure)
    imports = parse_meta_go_imports(resp.body)
    if not imports:
        err = _status_error(resp)
        if err is not None:
            raise RepoRootError(err)
        raise RepoRootError(f"fetching {prefix}: no go-import meta tag found in {resp.url}")
    cache[prefix] = (resp.url, imports)
    return cache[prefix]


def _validate_subdir(subdir: str) -> str | None:
    if subdir.startswith("/"):
        return "leading slash"
    if subdir.startswith("-"):
        return "leading hyphen"
    return None


def _validate_repo_root(repo_root: str) -> str | None:
    try:
        parts = urlsplit(repo_root)
    except ValueError as e:
        return str(e)
    if parts.scheme == "":
        return "no scheme"
    if parts.scheme == "file":
        return "file scheme disallowed"
    return None


async def _dynamic(path: str, http_get: HTTPGet, insecure: bool) -> RepoRoot:
    """vcs.repoRootForImportDynamic."""
    resp = await _get(http_get, path, insecure)
    imports = parse_meta_go_imports(resp.body)
    if not imports:
        err = _status_error(resp)
        if err is not None:
            raise RepoRootError(err)
    try:
        mmi = match_go_import(imports, path)
    except _ImportMismatch as e:
        raise RepoRootError(f"parse {resp.url}: no go-import meta tags ({e})") from None
    except RepoRootError as e:
        raise RepoRootError(f"parse {resp.url}: {e.message}") from None
    if mmi.prefix != path:
        # Do not trust a page for a longer path to speak for its prefix: ask the prefix itself.
        cache: dict[str, tuple[str, list[MetaImport]]] = {}
        url2, imports2 = await _meta_imports_for_prefix(http_get, mmi.prefix, insecure, cache)
        try:
            mmi2: MetaImport | None = match_go_import(imports2, path)
        except (_ImportMismatch, RepoRootError):
            mmi2 = None
        if mmi2 != mmi:
            raise RepoRootError(f"{resp.url} and {url2} disagree about go-import for {mmi.prefix}")
    why = _validate_subdir(mmi.subdir)
    if why is not None:
        raise RepoRootError(f'{resp.url}: invalid subdirectory "{mmi.subdir}": {why}')
    why = _validate_repo_root(mmi.repo_root)
    if why is not None:
        raise RepoRootError(f'{resp.url}: invalid repo root "{mmi.repo_root}": {why}')
    if mmi.vcs != "mod" and mmi.vcs not in _KNOWN_VCS:
        raise RepoRootError(f'{resp.url}: unknown vcs "{mmi.vcs}"')
    return RepoRoot(mmi.repo_root, mmi.prefix, mmi.vcs, mmi.subdir, is_custom=True)


async def resolve_repo_root(path: str, *, http_get: HTTPGet, ping: Ping | None = None,
                            insecure: bool = False) -> RepoRoot:
    """vcs.RepoRootForImportPath(path, PreferMod, security): where the code for ``path`` lives.

    ``ping`` checks a candidate URL for the general ``.git`` rule (the go command runs
    ``git ls-remote``); without it the first allowed scheme is taken. ``insecure`` (GOINSECURE)
    also allows insecure schemes and plain-http discovery. Raises :class:`RepoRootError`.
    """
    m = _static_match(path)
    if m is None:
        try:
            rr = await _dynamic(path, http_get, insecure)
        except RepoRootError as e:
            raise RepoRootError(f'unrecognized import path "{path}": {e.message}') from None
    elif not m.schemeless:
        rr = RepoRoot(m.repo, m.root, m.vcs)
    else:
        for scheme in _SCHEMES[m.vcs]:
            if not insecure and not _is_secure_scheme(m.vcs, scheme):
                continue
            if m.vcs != "git" or ping is None or await ping(scheme, m.repo):
                rr = RepoRoot(f"{scheme}://{m.repo}", m.root, m.vcs)
                break
        else:
            secure = "" if insecure else "secure "
            raise RepoRootError(f"no {secure}protocol found for repository")
    if "..." in path and "..." in rr.root:
        raise RepoRootError(f'cannot expand ... in "{path}"')
    return rr


# --- a default HTTP GET -----------------------------------------------------------------------


def httpx_getter(client: httpx.AsyncClient,
                 headers_for: Callable[[str], Mapping[str, str]] | None = None) -> HTTPGet:
    """An :data:`HTTPGet` over an httpx client (redirects followed, body bounded).

    ``headers_for(url)`` may add headers (credentials for the URL's host); they are never logged.
    """

    async def get(url: str) -> HTTPResponse:
        headers = dict(headers_for(url)) if headers_for is not None else {}
        async with client.stream("GET", url, headers=headers, follow_redirects=True) as resp:
            body = bytearray()
            pace = BodyPace(url)
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > _MAX_DISCOVERY_BODY:
                    break
                if pace.took(len(chunk)):
                    await asyncio.sleep(0)
            # The go command names the page with its query ("?go-get=1") in messages.
            return HTTPResponse(resp.status_code, str(resp.url), bytes(body))

    return get
