"""Session fixtures for the direct-mode tests: the parity corpus, the go command's answers for it
(``GOPROXY=direct``), and GitSource's answers for the same repositories."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modvault.errors import ModvaultError
from modvault.module.dirhash import hash_zip
from modvault.module.pseudo import is_pseudo_version
from modvault.sources.vcs import GitSource
from tests.support.gitrepos import GO, download_json, go_env, rmtree, run_go
from tests.vcs.corpus import Corpus


@pytest.fixture(scope="package")
def corpus(git_corpus: Corpus) -> Iterator[Corpus]:
    c = git_corpus
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")}
    # GitSource honours the user's git configuration: point it at the corpus's insteadOf rewrite,
    # exactly as the go command's environment does.
    os.environ["GIT_CONFIG_GLOBAL"] = str(c.gitconfig)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    try:
        yield c
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def go_home(c: Corpus, name: str, **extra: str) -> tuple[Path, dict[str, str]]:
    home = c.root / name
    home.mkdir()
    env = go_env(home, c.repos, GOPROXY="direct", **extra)
    env["GIT_CONFIG_GLOBAL"] = str(c.gitconfig)
    return home, env


def _json_stream(stdout: str) -> list[dict[str, object]]:
    return download_json(stdout) if stdout.strip() else []


@dataclass
class Reference:
    """What the go command answered, keyed by "module@version" / "module@query" / module."""

    downloads: dict[str, dict[str, object]] = field(default_factory=dict)
    info_files: dict[str, bytes] = field(default_factory=dict)
    mod_files: dict[str, bytes] = field(default_factory=dict)
    lists: dict[str, dict[str, object]] = field(default_factory=dict)
    latest: dict[str, dict[str, object]] = field(default_factory=dict)
    queries: dict[str, dict[str, object]] = field(default_factory=dict)
    pseudo: list[str] = field(default_factory=list)


def _download(home: Path, env: dict[str, str], keys: list[str], ref: Reference) -> None:
    proc = run_go(["mod", "download", "-json", *keys], cwd=home, env=env, check=False)
    docs = _json_stream(proc.stdout)
    assert len(docs) == len(keys), (keys, proc.stdout, proc.stderr)
    for key, doc in zip(keys, docs, strict=True):
        ref.downloads[key] = doc
        # Read the cache files now: later queries may rewrite .info files.
        if isinstance(doc.get("Info"), str):
            ref.info_files[key] = Path(str(doc["Info"])).read_bytes()
        if isinstance(doc.get("GoMod"), str):
            ref.mod_files[key] = Path(str(doc["GoMod"])).read_bytes()


@pytest.fixture(scope="package")
def reference(corpus: Corpus) -> Reference:
    if GO is None:
        pytest.skip("go toolchain not on PATH")
    c = corpus
    ref = Reference()
    home, env = go_home(c, "go-home")
    _download(home, env, c.downloads, ref)
    proc = run_go(["list", "-m", "-e", "-versions", "-retracted", "-json", *c.modules],
                  cwd=home, env=env, check=False)
    for m, doc in zip(c.modules, _json_stream(proc.stdout), strict=True):
        ref.lists[m] = doc
    # @latest as the module cache records it: `go list -m M@latest` merges the Origin of the
    # version list into its answer, `go mod download M@latest` stores the .info of the version.
    latest = Reference()
    _download(home, env, [f"{m}@latest" for m in c.modules], latest)
    for m in c.modules:
        doc = latest.downloads[f"{m}@latest"]
        ref.latest[m] = doc
        if f"{m}@latest" in latest.info_files:
            doc["InfoBytes"] = latest.info_files[f"{m}@latest"].decode()
    proc = run_go(["list", "-m", "-e", "-json", *c.queries], cwd=home, env=env, check=False)
    for q, doc in zip(c.queries, _json_stream(proc.stdout), strict=True):
        ref.queries[q] = doc
    pseudo = sorted({f"{d['Path']}@{d['Version']}" for d in ref.queries.values()
                     if isinstance(d.get("Version"), str) and is_pseudo_version(str(d["Version"]))
                     and not d.get("Error")})
    ref.pseudo = pseudo
    _download(home, env, pseudo, ref)
    rmtree(home / "gopath")
    return ref


@dataclass
class Outcome:
    """One GitSource answer: a value, or the error it raised."""

    value: object = None
    error: ModvaultError | None = None


@dataclass
class Ours:
    info: dict[str, Outcome] = field(default_factory=dict)
    mod: dict[str, Outcome] = field(default_factory=dict)
    zip: dict[str, Outcome] = field(default_factory=dict)  # value: h1
    zip_left: dict[str, bool] = field(default_factory=dict)  # a failed zip left a file behind
    lists: dict[str, Outcome] = field(default_factory=dict)
    latest: dict[str, Outcome] = field(default_factory=dict)
    queries: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0


async def _outcome(coro: object) -> Outcome:
    try:
        return Outcome(await coro)  # type: ignore[misc]
    except ModvaultError as e:
        return Outcome(error=e)


def split_key(key: str) -> tuple[str, str]:
    m, _, v = key.rpartition("@")
    return m, v


@pytest.fixture(scope="package")
def ours(corpus: Corpus, reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Ours:
    """GitSource's answers for everything the go command was asked, computed concurrently."""
    import time

    out = Ours()
    cache = tmp_path_factory.mktemp("gitsource-cache")
    zips = tmp_path_factory.mktemp("gitsource-zips")

    async def main() -> None:
        src = GitSource(cache, max_git_procs=4, git_timeout=120)
        try:
            async def download(key: str) -> None:
                m, v = split_key(key)
                out.info[key] = await _outcome(src.info(m, v))
                out.mod[key] = await _outcome(src.mod(m, v))
                dest = zips / (key.replace("/", "_") + ".zip")
                res = await _outcome(src.zip(m, v, dest))
                if res.error is None:
                    res.value = hash_zip(dest)
                else:
                    out.zip_left[key] = dest.exists()
                out.zip[key] = res

            async def listing(m: str) -> None:
                out.lists[m] = await _outcome(src.list(m))
                out.latest[m] = await _outcome(src.latest(m))

            async def query(q: str) -> None:
                m, v = split_key(q)
                out.queries[q] = await _outcome(src.info(m, v))

            await asyncio.gather(
                *[download(k) for k in [*corpus.downloads, *reference.pseudo]],
                *[listing(m) for m in corpus.modules],
                *[query(q) for q in corpus.queries])
        finally:
            await src.aclose()

    t0 = time.perf_counter()
    asyncio.run(main())
    out.seconds = time.perf_counter() - t0
    return out


def clean_origin(doc: dict[str, object]) -> dict[str, object]:
    """The go command's answer as its module cache stores it (modfetch writeDiskStat)."""
    version = str(doc["Version"])
    origin = dict(doc.get("Origin") or {})  # type: ignore[call-overload]
    for k in ("TagPrefix", "TagSum", "RepoSum"):
        origin.pop(k, None)
    if is_pseudo_version(version):
        origin.pop("Ref", None)
    return {"Version": version, "Time": doc["Time"], "Origin": origin}


def go_marshal(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
