"""The ``direct`` source: modules built from their version-control repositories, natively.

This mirrors what the go command does with ``GOPROXY=direct`` (go.dev/ref/mod#vcs;
cmd/go/internal/modfetch/coderepo.go over codehost/git.go), so that the bytes and hashes served
are the ones the go command would compute itself:

- the repository is found by :mod:`.repo_root` (static rules, ``?go-get=1`` discovery; a ``mod``
  go-import is served by that GOPROXY);
- ``list`` holds the module's semver tags: ``<dir>/vX.Y.Z`` for a module in a subdirectory, majors
  matching the path's ``/vN`` (or gopkg.in ``.vN``) suffix, and ``+incompatible`` v2+ tags without
  a go.mod under the rules of ``appendIncompatibleVersions``;
- a canonical version or a revision query (branch, tag, full or short hash) is resolved as
  ``codeRepo.Stat``/``convert`` does: a tag on the commit when one fits, else the pseudo-version
  built on the highest fitting tag reachable from it (go.dev/ref/mod#pseudo-versions);
- ``.info`` is exactly the JSON the go command writes in its module cache (``writeDiskStat``):
  Version, Time (commit time, UTC) and Origin (VCS, URL, Subdir, Hash, Ref; no Ref for
  pseudo-versions);
- ``.mod`` is the go.mod found by ``findDir`` (the module directory, or ``vN/`` for a ``/vN``
  path) or the synthesized ``module M`` line; ``.zip`` is ``git archive`` of that directory
  rebuilt under the module zip rules (go.dev/ref/mod#zip-files) with the repository's root
  LICENSE added to a subdirectory module that has none.

Errors: a repository or revision that cannot be found, and a version the go command would refuse,
are :class:`NotFound` with the go command's reason; authentication failures name the host and
never the credential (:class:`Forbidden` when configured credentials were refused); a hung git is
:class:`UpstreamTimeout`; other git failures are :class:`Unavailable`.

Deliberate deviations from the go command: a module whose go.mod asks for a newer Go than the
serving go binary is still zipped (a proxy has no Go version), and a go.mod over 16 MiB is refused
instead of read into memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Generic, TypeVar

from modvault.cache.memory import ByteLRU
from modvault.errors import (
    Forbidden,
    ModvaultError,
    NotFound,
    StorageError,
    Unavailable,
    UpstreamTimeout,
)
from modvault.module import semver
from modvault.module.errors import ModuleError, ZipError
from modvault.module.globs import match_prefix_patterns
from modvault.module.modfile import parse_retractions, synthesize_gomod
from modvault.module.path import (
    canonical_version,
    check,
    check_path,
    go_quote,
    match_path_major,
    split_path_version,
)
from modvault.module.pseudo import (
    is_pseudo_version,
    pseudo_version,
    pseudo_version_base,
    pseudo_version_rev,
    pseudo_version_time_as_datetime,
)
from modvault.module.zipbuild import FileEntry, FileKind, entries_from_archive, select_files, write_zip
from modvault.module.zipcheck import MAX_GO_MOD, MAX_LICENSE, MAX_ZIP_FILE, ZipReader
from modvault.sources.health import HealthRegistry
from modvault.sources.tracking import CircuitOpen
from modvault.sources.upstream import HTTPUpstream, UpstreamLimits, make_client
from modvault.sources.vcs.git import (
    Blob,
    GitError,
    GitMirror,
    GitRunner,
    GitTimeout,
    HostCredential,
    OutputTooLarge,
    RemoteRefs,
    load_netrc,
    probe_repo,
)
from modvault.sources.vcs.hosts import GitHosts, HostSkipped
from modvault.sources.vcs.repo_root import (
    HTTPGet,
    RepoRoot,
    RepoRootError,
    has_path_prefix,
    httpx_getter,
    resolve_repo_root,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["GitSource"]

K = TypeVar("K")
V = TypeVar("V")

_ROOT_TTL = 600.0  # how long a discovered repository root is trusted
_ROOT_ERROR_TTL = 30.0
_MAX_ROOTS = 10000
_MIN_TIME = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
_MAX_TIME = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
_FILE_CACHE_ENTRIES = 4096
_FILE_CACHE_BYTES = 8 << 20  # go.mod and LICENSE blobs: a few KiB each
_FILE_CACHE_MAX_BLOB = 256 << 10
_FILE_ENTRY_OVERHEAD = 300  # key tuple, Blob, dict slot
_FileKey = tuple[str, str, str, int]  # repository, commit, path, size limit


# --- errors of resolution -------------------------------------------------------------------


class _NotExist(Exception):
    """A resolution failure the go command treats as fs.ErrNotExist (or a clean refusal)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _invalid(path: str, version: str, reason: str, pseudo: bool = False) -> _NotExist:
    # module.ModuleError{Path, InvalidVersionError{Version, Pseudo, Err}}.Error()
    kind = "invalid pseudo-version" if pseudo else "invalid version"
    return _NotExist(f"{path}@{version}: {kind}: {reason}")


def _all_hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)


def _path_major_prefix(path_major: str) -> str:
    # module.PathMajorPrefix: "/v2" -> "v2", ".v2-unstable" -> "v2", "" -> "".
    if path_major == "":
        return ""
    if path_major.startswith(".v") and path_major.endswith("-unstable"):
        path_major = path_major[: -len("-unstable")]
    return path_major[1:]


def module_path_lax(data: bytes | None) -> str:
    """x/mod modfile.ModulePath: the module path of a go.mod, read line by line, "" if none."""
    if data is None:
        return ""
    for raw in data.split(b"\n"):
        i = raw.find(b"//")
        if i >= 0:
            raw = raw[:i]
        line = raw.strip(b" \t\r\n\v\f")
        if not line.startswith(b"module"):
            continue
        rest = line[len(b"module"):]
        stripped = rest.strip(b" \t\r\n\v\f")
        if len(stripped) == len(rest) or len(stripped) == 0:
            continue
        if stripped[:1] in (b'"', b"`"):
            return _go_unquote(stripped.decode("utf-8", "surrogateescape"))
        return stripped.decode("utf-8", "surrogateescape")
    return ""


def _go_unquote(s: str) -> str:
    """strconv.Unquote for the quoted module paths of go.mod files; "" when malformed."""
    if len(s) < 2 or s[0] != s[-1]:
        return ""
    body = s[1:-1]
    if s[0] == "`":
        return "" if "`" in body else body.replace("\r", "")
    if s[0] != '"' or "\n" in body:
        return ""
    try:
        decoded = json.loads(s)
    except ValueError:
        return ""
    return decoded if isinstance(decoded, str) else ""


def _is_major(mpath: str, path_major: str) -> bool:
    """coderepo isMajor: whether module path ``mpath`` fits the major implied by ``path_major``."""
    if mpath == "":
        return False
    _, mpath_major, ok = split_path_version(mpath)
    if not ok:
        return False
    if path_major == "":
        return _path_major_prefix(mpath_major) in ("", "v0", "v1")
    if mpath_major == "":
        return False
    return path_major[1:] == mpath_major[1:]


def _go_json(value: object) -> str:
    """encoding/json.Marshal for the str-only documents written here (HTML-safe escaping)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _commit_datetime(t: int, commit: str) -> datetime:
    """A commit time as a datetime; the go command cannot write (JSON) or name (pseudo-versions)
    times outside years 0-9999 either."""
    if not _MIN_TIME <= t <= _MAX_TIME:
        raise _NotExist(f"commit {commit[:12]}: time outside of range [1,9999]")
    return datetime.fromtimestamp(t, UTC)


def _go_time(t: int, commit: str) -> str:
    return _commit_datetime(t, commit).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- a little single-flight memo ----------------------------------------------------------


class _Memo(Generic[K, V]):
    """Compute each key once; concurrent callers share the result. Transient errors are forgotten,
    and at most ``limit`` results are kept (oldest finished ones go first)."""

    def __init__(self, limit: int = 4096) -> None:
        self._futs: dict[K, asyncio.Future[V]] = {}
        self.limit = limit

    async def get(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        fut = self._futs.get(key)
        if fut is None:
            if len(self._futs) >= self.limit:
                for old in [k for k, f in self._futs.items() if f.done()][: self.limit // 4 or 1]:
                    del self._futs[old]
            fut = asyncio.ensure_future(fn())
            self._futs[key] = fut
        try:
            return await asyncio.shield(fut)
        except (GitError, OSError, asyncio.CancelledError):
            if self._futs.get(key) is fut and fut.done():
                del self._futs[key]
            raise


# --- one repository at one state of its refs (codehost gitRepo) ---------------------------


@dataclass(slots=True)
class _CodeRev:
    """codehost.RevInfo plus the Origin the go command records for it."""

    name: str  # full commit hash
    short: str  # 12 hex digits
    time: int  # commit time, seconds since the epoch
    version: str  # the tag asked for (when it is one of the commit's tags), else the hash
    tags: tuple[str, ...]  # tags on this commit
    ref: str = ""  # Origin.Ref


@dataclass(slots=True)
class _RevInfo:
    """modfetch.RevInfo: a module version with its provenance."""

    version: str
    time: int
    hash: str
    ref: str

    def info_json(self, url: str, subdir: str) -> bytes:
        # cmd/go/internal/modfetch writeDiskStat: TagPrefix/TagSum/RepoSum are dropped, and Ref too
        # for a pseudo-version.
        origin: dict[str, str] = {"VCS": "git", "URL": url}
        if subdir:
            origin["Subdir"] = subdir
        origin["Hash"] = self.hash
        if self.ref and not is_pseudo_version(self.version):
            origin["Ref"] = self.ref
        doc = {"Version": self.version, "Time": _go_time(self.time, self.hash), "Origin": origin}
        return _go_json(doc).encode("utf-8")


class _Files:
    """A bounded cache of small blobs by (repository, commit, path): commits never change.

    Bounded in entries and in bytes (blob data plus a per-entry overhead), least recently used
    first out (cache/memory.py). A path absent at a commit (None) is remembered too."""

    def __init__(self, entries: int = _FILE_CACHE_ENTRIES, max_bytes: int = _FILE_CACHE_BYTES
                 ) -> None:
        self._lru: ByteLRU[tuple[_FileKey, Blob | None]] = ByteLRU(max_bytes, max_entries=entries)

    @property
    def max_bytes(self) -> int:
        return self._lru.max_bytes

    @property
    def size(self) -> int:
        return self._lru.size

    @staticmethod
    def _cost(key: _FileKey, value: Blob | None) -> int:
        data = value.data if value is not None else None
        return _FILE_ENTRY_OVERHEAD + sum(len(k) for k in key[:3]) + (len(data) if data else 0)

    @staticmethod
    def _slot(key: _FileKey) -> str:
        return "\0".join((key[0], key[1], key[2], str(key[3])))

    def items(self) -> Iterator[tuple[_FileKey, Blob | None]]:
        return self._lru.values()

    def get(self, key: _FileKey) -> tuple[bool, Blob | None]:
        held = self._lru.get(self._slot(key))
        return (True, held[1]) if held is not None else (False, None)

    def put(self, key: _FileKey, value: Blob | None) -> None:
        if value is not None and value.data is not None and len(value.data) > _FILE_CACHE_MAX_BLOB:
            return
        self._lru.put(self._slot(key), (key, value), self._cost(key, value))


class _Code:
    """A repository as of one ``ls-remote``: the go command's gitRepo over our mirror."""

    def __init__(self, mirror: GitMirror, refs: RemoteRefs, files: _Files) -> None:
        self.mirror = mirror
        self.remote = refs
        self.refs = refs.refs
        self.files = files
        self.hexlen = 64 if any(len(h) == 64 for h in refs.refs.values()) else 40
        self._stat: _Memo[str, _CodeRev] = _Memo()
        self._synced: asyncio.Future[None] | None = None
        self.modules: dict[tuple[str, str, str], _Module] = {}

    async def synced(self) -> None:
        """The mirror holds every ref of this snapshot (fetched once, lazily)."""
        fut = self._synced
        if fut is None or (fut.done() and (fut.cancelled() or fut.exception() is not None
                                           or not self.mirror.present())):
            fut = self._synced = asyncio.ensure_future(self.mirror.sync(self.remote))
        await asyncio.shield(fut)

    def tags(self, prefix: str) -> list[tuple[str, str]]:
        """codehost Tags: (name, commit) of the tags starting with ``prefix``, sorted by name."""
        out = [(name[len("refs/tags/"):], h) for name, h in self.refs.items()
               if name.startswith("refs/tags/") and name[len("refs/tags/"):].startswith(prefix)]
        out.sort()
        return out

    def _tags_of(self, commit: str) -> tuple[str, ...]:
        return tuple(sorted({name[len("refs/tags/"):] for name, h in self.refs.items()
                             if name.startswith("refs/tags/") and h == commit}))

    async def _stat_local(self, version: str, rev: str) -> _CodeRev | None:
        # codehost statLocal: `git log -n1 %H %ct`, tags from the refs, Version the tag asked for.
        await self.synced()
        got = await self.mirror.log1(rev)
        if got is None:
            return None
        commit, t = got
        if commit.startswith(version):
            version = commit
        tags = self._tags_of(commit)
        short = commit[:12] if _all_hex(commit) and len(commit) in (40, 64) else commit
        return _CodeRev(commit, short, t, version if version in tags else commit, tags,
                        "" if commit.startswith(rev) else rev)

    async def stat(self, rev: str) -> _CodeRev:
        """codehost gitRepo.Stat; raises :class:`_NotExist` ("unknown revision X")."""
        return await self._stat.get(rev, lambda: self._stat_uncached(rev))

    async def _stat_uncached(self, rev: str) -> _CodeRev:
        if rev == "latest":
            return await self.latest()
        is_hex = 7 <= len(rev) <= self.hexlen and _all_hex(rev)
        if is_hex:
            # A hash the (complete) local mirror holds: the go command's fast path, no Ref.
            info = await self._stat_local(rev, rev)
            if info is not None:
                return info
        ref = commit = ""
        if f"refs/tags/{rev}" in self.refs:
            ref = f"refs/tags/{rev}"
            commit = self.refs[ref]  # tags are assumed not to change meaning: keep rev
        elif f"refs/heads/{rev}" in self.refs:
            ref = f"refs/heads/{rev}"
            commit = rev = self.refs[ref]
        elif rev == "HEAD" and "HEAD" in self.refs:
            ref = "HEAD"
            commit = rev = self.refs[ref]
        elif is_hex:
            for name in sorted(self.refs):
                h = self.refs[name]
                if h.startswith(rev):
                    if commit and commit != h:
                        raise _NotExist(f"ambiguous revision {rev}")
                    if not ref:
                        ref = name
                    commit = h
            if commit:
                rev = commit
        if not commit and not is_hex:
            raise _NotExist(f"unknown revision {rev}")
        info = await self._stat_local(rev, commit or rev)
        if info is None:
            raise _NotExist(f"unknown revision {rev}")
        info.ref = ref if ref != info.name else ""
        return info

    async def latest(self) -> _CodeRev:
        """codehost Latest: the commit HEAD names, with Origin.Ref "HEAD"."""
        head = self.refs.get("HEAD", "")
        if not head:
            raise _NotExist("no commits")
        info = await self.stat(head)
        return _CodeRev(info.name, info.short, info.time, info.version, info.tags, "HEAD")

    async def read_file(self, rev: str, path: str, limit: int) -> Blob | None:
        """codehost ReadFile: None when the revision or the file does not exist."""
        try:
            info = await self.stat(rev)
        except _NotExist:
            return None
        key = (self.mirror.key, info.name, path, limit)
        hit, value = self.files.get(key)
        if hit:
            return value
        value = await self.mirror.read_blob(info.name, path, limit)
        self.files.put(key, value)
        return value

    async def recent_tag(self, rev: str, prefix: str,
                         allowed: Callable[[str], Awaitable[bool]]) -> str:
        """codehost RecentTag: the highest allowed ``prefix`` tag reachable from ``rev``."""
        info = await self.stat(rev)
        await self.synced()
        highest = ""
        for tag in await self.mirror.merged_tags(info.name):
            if not tag.startswith(prefix) or not await allowed(tag):
                continue
            semtag = tag[len(prefix):]
            if semver.compare(semtag, highest) > 0:
                highest = semtag
        return prefix + highest if highest else ""

    async def descends_from(self, rev: str, tag: str) -> bool:
        await self.synced()
        return await self.mirror.is_ancestor(tag, rev)


# --- one module in a repository (modfetch codeRepo) ----------------------------------------


class _Module:
    """cmd/go/internal/modfetch codeRepo over a :class:`_Code` snapshot."""

    def __init__(self, code: _Code, mod_path: str, code_root: str, subdir: str) -> None:
        if not has_path_prefix(mod_path, code_root):
            raise _NotExist(f"mismatched repo: found {code_root} for {mod_path}")
        path_prefix, path_major, ok = split_path_version(mod_path)
        if not ok:
            raise _NotExist(f"invalid module path {go_quote(mod_path)}")
        if code_root == mod_path:
            path_prefix = mod_path
        code_dir = ""
        if code_root != mod_path:
            if not has_path_prefix(path_prefix, code_root):
                raise _NotExist(f"repository rooted at {code_root} cannot contain module {mod_path}")
            code_dir = path_prefix[len(code_root):].strip("/")
        if subdir:
            # filepath.Join(codeDir, subdir): joined and cleaned.
            code_dir = posixpath.normpath(posixpath.join(code_dir, subdir))
            if code_dir == ".":
                code_dir = ""
        self.code = code
        self.mod_path = mod_path
        self.code_root = code_root
        self.code_dir = code_dir
        self.path_prefix = path_prefix
        self.path_major = path_major
        self.pseudo_major = _path_major_prefix(path_major)
        self.tag_prefix = code_dir + "/" if code_dir else ""
        self._versions: _Memo[int, list[str]] = _Memo()
        self._retracted: _Memo[int, Callable[[str], bool]] = _Memo()
        self._stat: _Memo[str, _RevInfo] = _Memo()

    # list --------------------------------------------------------------------------------

    async def versions(self) -> list[str]:
        return await self._versions.get(0, self._versions_uncached)

    async def _versions_uncached(self) -> list[str]:
        if self.mod_path.startswith("gopkg.in/") and self.mod_path.endswith("-unstable"):
            return []  # gopkg.in/x.v2-unstable does not use the v2 tags
        p = self.tag_prefix
        compatible: list[str] = []
        incompatible: list[str] = []
        for name, _ in self.code.tags(p):
            v = name[len(p):]
            if v == "" or v != semver.canonical(v) or is_pseudo_version(v):
                continue
            if not match_path_major(v, self.path_major):
                if self.code_dir == "" and self.path_major == "" and semver.major(v) > "v1":
                    incompatible.append(v)
                continue
            compatible.append(v)
        compatible = semver.sort_versions(compatible)
        incompatible = semver.sort_versions(incompatible)
        return await self._append_incompatible(compatible, incompatible)

    async def _has_go_mod(self, rev: str) -> bool:
        return await self.code.read_file(rev, "go.mod", MAX_GO_MOD) is not None

    async def _append_incompatible(self, versions: list[str], incompatible: list[str]) -> list[str]:
        """codeRepo.appendIncompatibleVersions."""
        if not incompatible or self.path_major:
            return versions
        if versions and await self._has_go_mod(versions[-1]):
            # The latest compatible version has a go.mod: the author means v0/v1 (go.dev/issue/34189).
            return versions
        out = list(versions)
        last_major = ""
        last_has_go_mod = False
        for i, v in enumerate(incompatible):
            major = semver.major(v)
            if major != last_major:
                rest = incompatible[i:]
                j = next((k for k, w in enumerate(rest) if semver.major(w) != major), len(rest))
                last_major = major
                last_has_go_mod = await self._has_go_mod(rest[j - 1])
            if last_has_go_mod:
                continue
            out.append(v + "+incompatible")
        return out

    # go.mod and retractions ----------------------------------------------------------------

    def _rev_for(self, version: str) -> str:
        """codeRepo.revToRev."""
        if semver.is_valid(version):
            if is_pseudo_version(version):
                return pseudo_version_rev(version)
            if semver.build(version) == "+incompatible":
                version = version[: -len("+incompatible")]
            return self.tag_prefix + version
        return version

    async def find_dir(self, version: str) -> tuple[str, str, bytes | None]:
        """codeRepo.findDir: (rev, module directory in the repository, its go.mod when read).

        Raises :class:`_FindDirError` with the go command's reason when the go.mod files at that
        revision do not place this module (missing, or claiming another major version)."""
        if not semver.is_valid(version):
            raise _invalid(self.mod_path, version, "syntax error")
        rev = self._rev_for(version)
        file1 = posixpath.join(self.code_dir, "go.mod")
        blob1 = await self.code.read_file(rev, file1, MAX_GO_MOD)
        gomod1 = _blob_data(blob1, file1)
        mpath1 = module_path_lax(gomod1)
        found1 = gomod1 is not None and (
            _is_major(mpath1, self.path_major)
            or (self.path_major == "" and mpath1.startswith("gopkg.in/")))
        file2 = ""
        pm = self.path_major
        if pm and self.code_root != self.mod_path and not pm.startswith("."):
            dir2 = posixpath.join(self.code_dir, pm[1:])
            file2 = posixpath.join(dir2, "go.mod")
            gomod2 = _blob_data(await self.code.read_file(rev, file2, MAX_GO_MOD), file2)
            mpath2 = module_path_lax(gomod2)
            found2 = gomod2 is not None and _is_major(mpath2, pm)
            if found1 and found2:
                raise _FindDirError(f"{self.path_prefix}/{file1} and ...{pm}/go.mod both have "
                                    f"...{pm} module paths at revision {rev}")
            if found2:
                return rev, dir2, gomod2
            if gomod2 is not None:
                if mpath2 == "":
                    raise _FindDirError(
                        f"{self.code_root}/{file2} is missing module path at revision {rev}")
                raise _FindDirError(f"{self.code_root}/{file2} has non-...{pm} module path "
                                    f"{go_quote(mpath2)} at revision {rev}")
        if found1:
            return rev, self.code_dir, gomod1
        if gomod1 is not None:
            suffix = f" (and ...{pm}/go.mod does not exist)" if file2 else ""
            if mpath1 == "":
                raise _FindDirError(f"{file1} is missing module path{suffix} at revision {rev}")
            if pm:
                raise _FindDirError(f"{file1} has non-...{pm} module path {go_quote(mpath1)}"
                                    f"{suffix} at revision {rev}")
            if not split_path_version(mpath1)[2]:
                raise _FindDirError(f"{file1} has malformed module path {go_quote(mpath1)}"
                                    f"{suffix} at revision {rev}")
            raise _FindDirError(f"{file1} has post-{semver.major(version)} module path "
                                f"{go_quote(mpath1)}{suffix} at revision {rev}")
        if self.code_dir == "" and (pm == "" or pm.startswith(".")):
            return rev, "", None  # implicit go.mod at the root: v0/v1 and gopkg.in
        if file2:
            raise _FindDirError(f"missing {self.path_prefix}/go.mod and ...{pm}/go.mod "
                                f"at revision {rev}")
        raise _FindDirError(f"missing {self.path_prefix}/go.mod at revision {rev}")

    async def go_mod(self, version: str) -> bytes:
        """codeRepo.GoMod (for a version already validated by :meth:`stat`)."""
        if version != canonical_version(version):
            raise _NotExist(f"version {version} is not canonical")
        try:
            rev, d, gomod = await self.find_dir(version)
        except _FindDirError as e:
            raise _NotExist(e.message) from None
        if gomod is not None:
            return gomod
        data = _blob_data(await self.code.read_file(rev, posixpath.join(d, "go.mod"), MAX_GO_MOD),
                          "go.mod")
        return data if data is not None else synthesize_gomod(self.mod_path)

    async def is_retracted(self, v: str) -> bool:
        pred = await self._retracted.get(0, self._retracted_uncached)
        return pred(v)

    async def _retracted_uncached(self) -> Callable[[str], bool]:
        """codeRepo.retractedVersions; any failure means "nothing is retracted"."""
        try:
            versions = await self.versions()
        except _NotExist:
            return lambda v: False
        for i, v in enumerate(versions):
            if v.endswith("+incompatible"):
                versions = versions[:i]
                break
        if not versions:
            return lambda v: False
        highest = next((v for v in reversed(versions) if not semver.prerelease(v)), versions[-1])
        try:
            data = await self.go_mod(highest)
            retractions = parse_retractions(data)
        except (_NotExist, ModuleError):
            return lambda v: False
        spans = [(r.low, r.high) for r in retractions]

        def retracted(v: str) -> bool:
            return any(semver.compare(lo, v) <= 0 <= semver.compare(hi, v) for lo, hi in spans)

        return retracted

    # stat ----------------------------------------------------------------------------------

    async def stat(self, rev: str) -> _RevInfo:
        """codeRepo.Stat: the module version a version or revision query names."""
        return await self._stat.get(rev, lambda: self._stat_uncached(rev))

    async def _stat_uncached(self, rev: str) -> _RevInfo:
        if rev == "latest":
            return await self.latest_rev()
        try:
            info = await self.code.stat(self._rev_for(rev))
        except _NotExist as e:
            raise _invalid(self.mod_path, rev, e.message) from None
        return await self._convert(info, rev)

    async def latest_rev(self) -> _RevInfo:
        """codeRepo.Latest: the default branch's head as a module version."""
        info = await self.code.latest()
        return await self._convert(info, "")

    async def _convert(self, info: _CodeRev, stat_vers: str) -> _RevInfo:
        """codeRepo.convert: a commit (and the version asked for) as a module version."""
        incompatible_ok: dict[str, bool] = {}

        async def can_use_incompatible(v: str) -> bool:
            if self.code_dir or self.path_major:
                return False  # a subdirectory or a /vN path must have a matching go.mod
            if "" not in incompatible_ok:
                blob = await self.code.read_file(info.name, "go.mod", MAX_GO_MOD)
                incompatible_ok[""] = blob is None
            if not incompatible_ok[""]:
                return False  # a go.mod at the root opts in to semantic import versioning
            if v and not stat_vers.endswith("+incompatible"):
                major = semver.major(v)
                if major not in incompatible_ok:
                    blob = await self.code.read_file(info.name, f"{major}/go.mod", MAX_GO_MOD)
                    incompatible_ok[major] = blob is None
                if not incompatible_ok[major]:
                    return False  # vN/go.mod: vN tags are meant for the vN module (go.dev/issue/51324)
            return True

        async def check_canonical(v: str) -> _RevInfo:
            try:
                await self.find_dir(v)
            except _FindDirError as e:
                raise _invalid(self.mod_path, v, e.message) from None
            if v == stat_vers.removesuffix("+incompatible"):
                v = stat_vers
            base = v.removesuffix("+incompatible")
            err: _NotExist | None = None
            if not match_path_major(base, self.path_major):
                if await can_use_incompatible(base):
                    v = base + "+incompatible"
                elif self.path_major:
                    err = _invalid(self.mod_path, v, "module path includes a major version "
                                   "suffix, so major version must match")
                else:
                    want = posixpath.join(self.path_prefix, semver.major(v))
                    err = _invalid(self.mod_path, v, "module contains a go.mod file, so module "
                                   f"path must match major version ({go_quote(want)})")
            elif v.endswith("+incompatible"):
                err = _invalid(self.mod_path, v, "+incompatible suffix not allowed: major "
                               f"version {semver.major(v)} is compatible")
            if stat_vers and stat_vers == canonical_version(stat_vers):
                stat_base = stat_vers.removesuffix("+incompatible")
                if stat_base != base:
                    raise _invalid(self.mod_path, stat_vers,
                                   f"resolves to version {v} ({stat_base} is not a tag)")
            if err is not None:
                raise err
            return _RevInfo(v, info.time, info.name, info.ref)

        if is_pseudo_version(stat_vers):
            rev_info = await check_canonical(stat_vers)
            await self._validate_pseudo(info, stat_vers)
            return rev_info

        def tag_to_version(tag: str) -> tuple[str, bool]:
            if not tag.startswith(self.tag_prefix) or is_pseudo_version(tag):
                return "", False
            trimmed = tag[len(self.tag_prefix):]
            v = semver.canonical(trimmed)
            if v == "" or not trimmed.startswith(v):
                return "", False  # invalid, or incomplete (vX or vX.Y)
            return v, v == trimmed

        v, canonical = tag_to_version(info.version)
        if canonical:
            with contextlib.suppress(_NotExist):
                return await check_canonical(v)

        highest = ""
        pseudo_base = ""
        for path_tag in info.tags:
            v, canonical = tag_to_version(path_tag)
            if stat_vers and semver.compare(v, stat_vers) == 0:
                if canonical:
                    return await check_canonical(v)
                pseudo_base = v  # equivalent, not canonical: a base for a pseudo-version
            if canonical and semver.compare(highest, v) < 0 and not await self.is_retracted(v) \
                    and (match_path_major(v, self.path_major) or await can_use_incompatible(v)):
                highest = v
        if highest:
            return await check_canonical(highest)

        async def tag_allowed(tag: str) -> bool:
            v, _ = tag_to_version(tag)
            if not v:
                return False
            if not match_path_major(v, self.path_major) and not await can_use_incompatible(v):
                return False
            return not await self.is_retracted(v)

        if not pseudo_base:
            tag = await self.code.recent_tag(info.name, self.tag_prefix, tag_allowed)
            if tag:
                pseudo_base = tag_to_version(tag)[0]
        when = _commit_datetime(info.time, info.name)
        return await check_canonical(pseudo_version(self.pseudo_major, pseudo_base, when, info.short))

    async def _validate_pseudo(self, info: _CodeRev, version: str) -> None:
        """codeRepo.validatePseudoVersion."""
        def bad(reason: str) -> _NotExist:
            return _invalid(self.mod_path, version, reason, pseudo=True)

        try:
            rev = pseudo_version_rev(version)
            t = pseudo_version_time_as_datetime(version)
        except ModuleError as e:
            raise _NotExist(f"{self.mod_path}@{version}: {e}") from None
        if rev != info.short:
            if rev.startswith(info.short):
                raise bad(f"revision is longer than canonical (expected {info.short})")
            if info.short.startswith(rev):
                raise bad(f"revision is shorter than canonical (expected {info.short})")
            raise bad(f"does not match short name of revision (expected {info.short})")
        if int(t.timestamp()) != info.time:
            want = _commit_datetime(info.time, info.name).strftime("%Y%m%d%H%M%S")
            raise bad(f"does not match version-control timestamp (expected {want})")
        try:
            base = pseudo_version_base(version.removesuffix("+incompatible"))
        except ModuleError as e:
            raise _NotExist(f"{self.mod_path}@{version}: {e}") from None
        if base == "":
            if self.pseudo_major == "" and semver.major(version) == "v1":
                raise bad("major version without preceding tag must be v0, not v1")
            return
        for tag in info.tags:
            if tag.removeprefix(self.tag_prefix) == base:
                raise bad(f"tag ({tag}) found on revision {rev} is already canonical, so should "
                          "not be replaced with a pseudo-version derived from that tag")
        last_tag = ""
        found = False
        for name, _ in self.code.tags(self.tag_prefix + base):
            if semver.compare(name.removeprefix(self.tag_prefix), base) == 0:
                last_tag = name
                found = await self.code.descends_from(info.name, name)
                if found:
                    break
        if not last_tag:
            raise bad(f"preceding tag ({base}) not found")
        if not found:
            raise bad(f"revision {rev} is not a descendent of preceding tag ({last_tag})")

    # latest (the go command's "latest" query) ----------------------------------------------

    async def latest(self) -> _RevInfo:
        """modload queryProxy("latest"): the highest release, else pre-release, that is not
        retracted — ignoring +incompatible ones once a compatible version has a go.mod — else
        the default branch's head."""
        releases: list[str] = []
        prereleases: list[str] = []
        last_compatible = ""
        need_incompatible = False
        for v in await self.versions():
            if await self.is_retracted(v):
                continue
            if not need_incompatible:
                if not v.endswith("+incompatible"):
                    last_compatible = v
                elif last_compatible:
                    if await self.go_mod(last_compatible) != synthesize_gomod(self.mod_path):
                        break
                    need_incompatible = True
            (prereleases if semver.prerelease(v) else releases).append(v)
        if releases:
            return await self.stat(releases[-1])
        if prereleases:
            return await self.stat(prereleases[-1])
        return await self.latest_rev()

    # zip -----------------------------------------------------------------------------------

    async def zip(self, version: str, dest: Path, tmp_dir: Path) -> None:
        """codeRepo.Zip: ``git archive`` of the module directory, rebuilt as a module zip."""
        try:
            rev, subdir, _ = await self.find_dir(version)
        except _FindDirError as e:
            raise _NotExist(e.message) from None
        info = await self.code.stat(rev)
        await self.code.synced()
        subdir = subdir.strip("/")
        license_blob: Blob | None = None
        if subdir:
            license_blob = await self.code.read_file(rev, "LICENSE", MAX_LICENSE)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        archive = tmp_dir / f"archive-{uuid.uuid4().hex}.zip"
        try:
            try:
                ok = await self.code.mirror.archive(info.name, subdir, archive, MAX_ZIP_FILE)
            except OutputTooLarge:
                raise _NotExist(f"{self.mod_path}@{version}: downloaded zip file too large") from None
            except GitTimeout:
                raise
            except GitError as e:
                # The commit is in the mirror: git refusing to archive it is about its content
                # (an "invalid path" such as "../x"), a permanent property of this version.
                raise _NotExist(f"{self.mod_path}@{version}: {e.message}") from None
            if not ok:
                raise _NotExist(f"{self.mod_path}@{version}: {subdir}: file does not exist")
            await asyncio.to_thread(_rebuild_zip, archive, subdir, license_blob, self.mod_path,
                                    version, dest)
        finally:
            with contextlib.suppress(OSError):
                archive.unlink()


class _FindDirError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _blob_data(blob: Blob | None, name: str) -> bytes | None:
    if blob is None:
        return None
    if blob.data is None:
        raise _NotExist(f"{name}: file too large (max size is {MAX_GO_MOD} bytes)")
    return blob.data


def _unreadable() -> BinaryIO:
    raise ZipError(f"LICENSE file too large (max size is {MAX_LICENSE} bytes)")


def _rebuild_zip(archive: Path, subdir: str, license_blob: Blob | None, mod_path: str,
                 version: str, dest: Path) -> None:
    """In a thread: the files of the archive under the module zip rules, written to ``dest``."""
    try:
        with open(archive, "rb") as fp:
            reader = ZipReader(fp)
            entries = entries_from_archive(reader, subdir)
            root_license: FileEntry | None = None
            if license_blob is not None:
                if license_blob.data is not None:
                    root_license = FileEntry.from_bytes("LICENSE", license_blob.data)
                else:
                    # Too large to read: its declared size makes select_files refuse it.
                    root_license = FileEntry("LICENSE", FileKind.REGULAR, license_blob.size,
                                             _unreadable)
            selection = select_files(entries, root_license=root_license)
            with open(dest, "wb") as out:
                write_zip(out, mod_path, version, selection.kept)
    except ZipError as e:
        raise _NotExist(f"{mod_path}@{version}: create zip: {e}") from None


# --- the source ---------------------------------------------------------------------------


@dataclass(slots=True)
class _RootEntry:
    expires: float
    root: RepoRoot | None = None
    error: str = ""


@dataclass(slots=True)
class _RepoState:
    mirror: GitMirror
    code: _Code | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class GitSource:
    """The ``direct`` source: modules fetched from their git repositories and built natively.

    ``cache_dir`` holds one bare mirror per repository (``git/``) and scratch files (``tmp/``).
    At most ``max_git_procs`` git processes run at once, each killed (with its process group)
    after ``git_timeout`` seconds. ``url_rewrites`` maps a URL base to the prefix it replaces
    (git's ``url.<base>.insteadOf <prefix>``), on top of the user's own git configuration.
    Credentials for private hosts come from ``netrc`` (a .netrc file) and ``credentials``
    (``host`` — meaning ``https://host/`` — or a URL prefix, mapped to a
    :class:`HostCredential`, e.g. a token as password); they are sent only to URLs under their
    prefix, by git (as an ``http.<prefix>.extraHeader``) and by go-import discovery, and never
    appear in a message. ``http_get`` replaces the HTTP client of ``?go-get=1`` discovery;
    ``insecure`` (GOINSECURE patterns) lets matching modules use plain-http discovery and
    insecure git schemes. ``refs_ttl`` is how long one ``git ls-remote`` answer is reused.
    """

    name = "direct"

    def __init__(self, cache_dir: Path, *, max_git_procs: int = 4, git_timeout: float = 300.0,
                 url_rewrites: Mapping[str, str] | None = None, netrc: str | None = None,
                 credentials: Mapping[str, HostCredential] | None = None,
                 http_get: HTTPGet | None = None, insecure: str = "",
                 refs_ttl: float = 5.0, upstream_limits: UpstreamLimits | None = None,
                 git: str = "git", health: HealthRegistry | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        creds: dict[str, HostCredential] = {}
        if netrc is not None:
            creds.update(load_netrc(netrc))
        creds.update({h.lower(): c for h, c in (credentials or {}).items()})
        self.runner = GitRunner(max_procs=max_git_procs, timeout=git_timeout,
                                url_rewrites=url_rewrites, credentials=creds, git=git)
        self.refs_ttl = refs_ttl
        self.insecure = insecure
        self.limits = upstream_limits or UpstreamLimits()
        self._client: httpx.AsyncClient | None = None
        self._http_get = http_get
        self._roots: dict[str, _RootEntry] = {}
        self._repos: dict[str, _RepoState] = {}
        self._proxies: dict[str, HTTPUpstream] = {}
        self._files = _Files()
        self._git_version: str | None = None
        # One health record and breaker per git host (None: no breakers, as in tools and tests).
        self.hosts = GitHosts(health, self.runner, self.git_dir) if health is not None else None
        self.hosts_idle = 600.0  # readiness looks at the hosts used within this many seconds

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def git_dir(self) -> Path:
        return self.cache_dir / "git"

    @property
    def tmp_dir(self) -> Path:
        return self.cache_dir / "tmp"

    def _client_get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(self.limits)
        return self._client

    def _discovery_get(self) -> HTTPGet:
        if self._http_get is None:
            def headers_for(url: str) -> dict[str, str]:
                cred = self.runner.credential_for_url(url)
                return {} if cred is None else {"Authorization": cred.basic_header()}

            self._http_get = httpx_getter(self._client_get(), headers_for)
        return self._http_get

    async def _ping(self, scheme: str, repo: str) -> bool:
        try:
            await self.runner.run(["ls-remote", "-q", f"{scheme}://{repo}"],
                                  git_dir=await self._mirror_probe(), timeout=60.0)
        except GitError:
            return False
        return True

    async def _mirror_probe(self) -> Path:
        return await probe_repo(self.runner, self.git_dir)

    async def repo_root(self, module: str) -> RepoRoot:
        """Where ``module``'s code lives (cached); :class:`NotFound` when that is unknown."""
        now = time.monotonic()
        entry = self._roots.get(module)
        if entry is None or entry.expires < now:
            try:
                root = await resolve_repo_root(module, http_get=self._discovery_get(),
                                               ping=self._ping,
                                               insecure=match_prefix_patterns(self.insecure, module))
                entry = _RootEntry(now + _ROOT_TTL, root)
            except RepoRootError as e:
                entry = _RootEntry(now + _ROOT_ERROR_TTL, None, self.runner.redact(e.message))
            if len(self._roots) >= _MAX_ROOTS:
                for key in list(self._roots)[: _MAX_ROOTS // 4]:
                    del self._roots[key]
            self._roots[module] = entry
        if entry.root is None:
            raise NotFound(f"{module}: {entry.error}")
        return entry.root

    def _proxy(self, url: str) -> HTTPUpstream:
        up = self._proxies.get(url)
        if up is None:
            up = HTTPUpstream(url, self._client_get(), self.limits)
            self._proxies[url] = up
        return up

    def mirror_for(self, url: str) -> GitMirror:
        state = self._repos.get(url)
        if state is None:
            state = _RepoState(GitMirror(self.runner, self.git_dir, url, refs_ttl=self.refs_ttl,
                                         hosts=self.hosts))
            self._repos[url] = state
        return state.mirror

    async def _module(self, module: str) -> _Module | HTTPUpstream:
        try:
            check_path(module)
        except ModuleError as e:
            raise NotFound(str(e)) from None
        rr = await self.repo_root(module)
        if rr.vcs == "mod":
            return self._proxy(rr.repo)
        if rr.vcs != "git":
            raise NotFound(f"{module}: {self.runner.redact(rr.repo)}: version control system "
                           f"{rr.vcs!r} is not supported by modvault")
        if "://" not in rr.repo:
            # codehost newGitRepo: a remote must be a URL, never a local path or host:path.
            raise NotFound(f"{module}: git remote ({self.runner.redact(rr.repo)}) must not be "
                           "local directory (use URL syntax not host:path syntax)")
        self.mirror_for(rr.repo)
        state = self._repos[rr.repo]
        try:
            refs = await state.mirror.remote_refs()
        except GitError as e:
            raise self._git_failure(module, state.mirror, e) from None
        code = state.code
        if code is None or code.remote.digest != refs.digest:
            code = _Code(state.mirror, refs, self._files)
            state.code = code
        key = (module, rr.root, rr.subdir)
        mod = code.modules.get(key)
        if mod is None:
            try:
                mod = _Module(code, module, rr.root, rr.subdir)
            except _NotExist as e:
                raise NotFound(f"{module}: {e.message}") from None
            code.modules[key] = mod
        return mod

    def _git_failure(self, what: str, mirror: GitMirror, e: GitError) -> ModvaultError:
        host = mirror.host
        if isinstance(e, HostSkipped):
            return CircuitOpen(f"{what}: {e.message}")
        if isinstance(e, GitTimeout):
            return UpstreamTimeout(f"{what}: {host}: {e.message}")
        text = e.stderr.lower()
        auth = ("could not read username", "could not read password", "authentication failed",
                "terminal prompts disabled", "returned error: 401", "returned error: 403",
                "permission denied", "invalid username or password", "access denied",
                "authentication required")
        missing = ("repository not found", "not found", "does not appear to be a git repository",
                   "does not exist", "returned error: 404", "no such file or directory",
                   "couldn't find remote ref")
        if any(s in text for s in auth):
            hosts = self.runner.credential_hosts()
            if self.runner.credential_for_url(mirror.url) is not None or any(
                    h and h.lower() in text for h in hosts):
                return Forbidden(f"{what}: authentication to {host} failed "
                                 "with the configured credentials")
            return NotFound(f"{what}: {host} requires authentication (no credentials "
                            f"configured for it): {e.message}")
        if any(s in text for s in missing):
            return NotFound(f"{what}: repository at {host} not found: {e.message}")
        return Unavailable(f"{what}: {host}: {e.message}")

    async def _run(self, mod: _Module, what: str, op: Callable[[], Awaitable[V]]) -> V:
        """Run ``op`` for ``mod``, turning resolution and git failures into error values."""
        try:
            return await op()
        except _NotExist as e:
            raise NotFound(e.message) from None
        except _FindDirError as e:
            raise NotFound(f"{what}: {e.message}") from None
        except GitError as e:
            raise self._git_failure(what, mod.code.mirror, e) from None
        except ModuleError as e:  # a module rule the content breaks, caught nowhere closer
            raise NotFound(f"{what}: {e}") from None
        except OSError as e:  # our own disk, not the source's fault nor the client's
            raise StorageError(f"modvault store: {what}: {e.strerror or type(e).__name__}") from None

    async def _canonical(self, mod: _Module, version: str) -> _RevInfo:
        """Stat a canonical version, as the go command does before downloading it."""
        try:
            check(mod.mod_path, version)
        except ModuleError as e:
            raise _NotExist(str(e)) from None
        info = await mod.stat(version)
        if info.version != version:
            raise _invalid(mod.mod_path, version, f"resolves to version {info.version}")
        return info

    @staticmethod
    def _is_strict(module: str, version: str) -> bool:
        """A canonical version valid for the module: its .info must carry exactly that version."""
        try:
            check(module, version)
        except ModuleError:
            return False
        return True

    # --- the Source protocol -------------------------------------------------------------------

    async def list(self, module: str) -> list[str]:
        mod = await self._module(module)
        if isinstance(mod, HTTPUpstream):
            return await mod.list(module)
        return await self._run(mod, module, mod.versions)

    async def latest(self, module: str) -> bytes:
        mod = await self._module(module)
        if isinstance(mod, HTTPUpstream):
            return await mod.latest(module)
        m = mod

        async def op() -> bytes:
            info = await m.latest()
            return info.info_json(m.code.mirror.url, m.code_dir)

        return await self._run(m, f"{module}@latest", op)

    async def info(self, module: str, version: str) -> bytes:
        """.info for a canonical version (which must resolve to itself) or a query: a branch, tag,
        commit hash, "latest", or any revision the go command's Stat accepts."""
        mod = await self._module(module)
        if isinstance(mod, HTTPUpstream):
            return await mod.info(module, version)
        m = mod

        async def op() -> bytes:
            if version == "latest":
                info = await m.latest()
            elif self._is_strict(module, version):
                info = await self._canonical(m, version)
            else:
                try:
                    info = await m.stat(version)
                except _NotExist:
                    # modload queryProxy: "v1.2.3+meta" may name the tag "v1.2.3".
                    cv = canonical_version(version)
                    if not cv or cv == version:
                        raise
                    try:
                        info = await m.stat(cv)
                    except _NotExist:
                        raise _NotExist(f"{module}@{version}: invalid version: "
                                        f"unknown revision {version}") from None
            return info.info_json(m.code.mirror.url, m.code_dir)

        return await self._run(m, f"{module}@{version}", op)

    async def mod(self, module: str, version: str) -> bytes:
        mod = await self._module(module)
        if isinstance(mod, HTTPUpstream):
            return await mod.mod(module, version)
        m = mod

        async def op() -> bytes:
            await self._canonical(m, version)
            return await m.go_mod(version)

        return await self._run(m, f"{module}@{version}", op)

    async def zip(self, module: str, version: str, dest: Path) -> None:
        """Write the module zip to ``dest``; on any failure nothing is left at ``dest``."""
        try:
            mod = await self._module(module)
            if isinstance(mod, HTTPUpstream):
                await mod.zip(module, version, dest)
                return
            m = mod

            async def op() -> None:
                await self._canonical(m, version)
                await m.zip(version, Path(dest), self.tmp_dir)

            await self._run(m, f"{module}@{version}", op)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(dest)
            raise

    async def probe(self) -> tuple[bool, str]:
        """For /readyz: git runs, and some git host used lately answers (see GitHosts)."""
        if self._git_version is not None:
            return await self._hosts_ready()
        if shutil.which(self.runner.git) is None:
            return False, f"{self.runner.git} not found on PATH"
        try:
            res = await self.runner.run(["version"], timeout=10.0)
        except GitError as e:
            return False, e.message
        self._git_version = res.stdout.decode("utf-8", "replace").strip()
        try:
            self.git_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return False, f"cache directory not writable: {e.strerror}"
        return await self._hosts_ready()

    async def _hosts_ready(self) -> tuple[bool, str]:
        """git works; and its hosts? (issue 10: ready only when git works AND its hosts answer)"""
        assert self._git_version is not None
        if self.hosts is None:
            return True, self._git_version
        ok, why = await self.hosts.readiness(self.hosts_idle)
        return ok, f"{self._git_version}; {why}"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
