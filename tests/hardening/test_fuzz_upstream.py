"""Fuzzing upstream answers: whatever an upstream sends for .info, .mod, list, @latest or .zip, the
client never gets a 500, and nothing that breaks the rules is stored.

Each example asks for a version no earlier example used, so the answer comes from the upstream,
shaped by the example (status, headers, body), and is judged by what landed in the store.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modvault.module import semver
from modvault.module.path import check, is_canonical_version
from modvault.module.pseudo import is_pseudo_version
from modvault.module.zipcheck import check_zip
from tests.conftest import Corpus
from tests.support.modvault_proc import ModvaultProcess
from tests.support.upstream_server import Behaviour, TestUpstreamServer

pytestmark = pytest.mark.e2e

MOD = "github.com/acme/hello"
_counter = itertools.count(1)


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


Render = Callable[[str], bytes]  # the body for a given version


def _good_zip(v: str) -> bytes:
    prefix = f"{MOD}@{v}/"
    return _zip([(prefix + "go.mod", f"module {MOD}\n".encode()), (prefix + "hello.go", b"package hello\n")])


def zip_bodies() -> st.SearchStrategy[Render]:
    names = st.one_of(
        st.sampled_from(["go.mod", "hello.go", "a/b.go", "LICENSE", "x/../../evil", "A.go", "a.go",
                         "con.go", "sub/go.mod", "dir/", ".git/config", "é.go", "a\\b.go"]),
        st.text(alphabet="abcAB./_-~\\ é", min_size=1, max_size=12))
    entry = st.tuples(st.sampled_from(["self", "self", "", "other@v1.0.0/", "noslash"]), names,
                      st.binary(max_size=200))

    def entries(es: list[tuple[str, str, bytes]]) -> Render:
        def render(v: str) -> bytes:
            pre = {"self": f"{MOD}@{v}/", "noslash": f"{MOD}@{v}"}
            return _zip([(pre.get(p, p) + n, d) for p, n, d in es])
        return render

    return st.one_of(
        st.just(_good_zip),
        st.lists(entry, max_size=6).map(entries),
        st.binary(max_size=300).map(lambda b: lambda v: b),
        st.integers(0, 400).map(lambda n: lambda v: _good_zip(v)[:n]),
    )


def info_bodies() -> st.SearchStrategy[Render]:
    docs = st.fixed_dictionaries(
        {"Version": st.one_of(st.just("SELF"), st.sampled_from(["v1.0.0", "v2.0.0", "master", "", "v1"]),
                              st.integers(), st.none())},
        optional={"Time": st.one_of(st.just("2020-01-01T00:00:00Z"), st.integers(), st.text(max_size=10)),
                  "Origin": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)})

    def as_json(d: dict[str, object]) -> Render:
        return lambda v: json.dumps({**d, "Version": v if d["Version"] == "SELF" else d["Version"]}).encode()

    return st.one_of(
        docs.map(as_json),
        st.sampled_from([b"[" * 30000 + b"]" * 30000, b'{"Version":' + b"[" * 20000 + b"]" * 20000 + b"}",
                         b"\xff\xfe{}", b"{}" + b" " * 70000]).map(lambda b: lambda v: b),
        st.binary(max_size=200).map(lambda b: lambda v: b),
    )


def list_bodies() -> st.SearchStrategy[Render]:
    line = st.one_of(st.sampled_from(["v1.0.0", "v1.1.0", "v2.0.0", "v1.0.0+incompatible", "garbage",
                                      "v0.0.0-20200101000000-abcdefabcdef", "v1.2.3-rc.1", "V1.0.0", ""]),
                     st.text(alphabet="v0123456789.-+abc \t", max_size=15))
    raw = st.lists(line, max_size=30).map(lambda ls: "\n".join(ls).encode()) | st.binary(max_size=200)
    return raw.map(lambda b: lambda v: b)


def behaviours(kind: str) -> st.SearchStrategy[Callable[[str], Behaviour]]:
    if kind == "zip":
        bodies = zip_bodies()
    elif kind in ("info", "latest"):
        bodies = info_bodies()
    elif kind == "list":
        bodies = list_bodies()
    else:
        bodies = st.one_of(st.binary(max_size=300), st.just(f"module {MOD}\n".encode())).map(
            lambda b: lambda v: b)

    def build(render: Render, status: int, enc: str, lie: int | None,
              chunked: int | None) -> Callable[[str], Behaviour]:
        def make(v: str) -> Behaviour:
            body = render(v)
            sent = gzip.compress(body) if enc == "gzip" else body
            return Behaviour(status=status, body=sent, headers={"Content-Encoding": enc} if enc else None,
                             content_length=None if lie is None else max(0, len(sent) + lie),
                             chunked=chunked)
        return make

    return st.builds(build, bodies, st.sampled_from([200, 200, 200, 404, 410, 500, 502, 503, 403, 204, 302]),
                     st.sampled_from(["", "", "gzip", "br"]),
                     st.one_of(st.none(), st.none(), st.integers(-50, 50)),
                     # Transfer-Encoding: chunked (Content-Length then unsent), in chunks this big.
                     st.one_of(st.none(), st.none(), st.none(), st.sampled_from([1, 7, 200, 4096])))


def _stored_is_valid(data: Path, kind: str, version: str, answer: httpx.Response) -> None:
    esc = "github.com/acme/hello/@v"
    if kind == "list":
        f = data / esc / "list"
        if f.exists():
            versions = f.read_text().split()
            for v in versions:
                assert is_canonical_version(v) and not is_pseudo_version(v), v
                check(MOD, v)
            assert versions == semver.sort_versions(versions)
        return
    if kind == "latest":
        f = data / "github.com/acme/hello/@latest"
        if f.exists():
            doc = json.loads(f.read_bytes())
            assert is_canonical_version(doc["Version"])
        return
    f = data / esc / f"{version}.{kind}"
    if not f.exists():
        assert answer.status_code != 200, (kind, version)
        return
    stored = f.read_bytes()
    if kind == "info":
        doc = json.loads(stored)
        assert doc["Version"] == version and isinstance(doc.get("Time", ""), str)
    elif kind == "zip":
        check_zip(f, MOD, version)
    if answer.status_code == 200:
        assert answer.content == stored


def test_upstream_answers_never_make_a_500_or_store_junk(corpus: Corpus, tmp_path: Path) -> None:
    upstream = TestUpstreamServer(corpus.proxy_a).start()
    data = tmp_path / "data"
    mv = ModvaultProcess(data, upstream.url, env={
        "MODVAULT_UPSTREAM_RETRIES": "0", "MODVAULT_NEGATIVE_TTL": "0", "MODVAULT_MUTABLE_TTL": "0",
        "MODVAULT_UPSTREAM_READ_TIMEOUT": "3", "MODVAULT_MAX_INFO_BYTES": "65536"})
    try:
        @settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(["info", "mod", "zip", "list", "latest"]).flatmap(
            lambda kind: st.tuples(st.just(kind), behaviours(kind))))
        def one(case: tuple[str, Callable[[str], Behaviour]]) -> None:
            kind, make = case
            version = f"v1.5.{next(_counter)}"  # never asked before: the upstream answers
            behaviour = make(version)
            if kind == "list":
                path = f"/{MOD}/@v/list"
            elif kind == "latest":
                path = f"/{MOD}/@latest"
            else:
                path = f"/{MOD}/@v/{version}.{kind}"
            upstream.reset()
            upstream.behaviours[path] = behaviour
            if kind == "zip":  # the zip check needs the .mod to exist upstream too
                upstream.behaviours[f"/{MOD}/@v/{version}.mod"] = Behaviour(body=f"module {MOD}\n".encode())
            r = httpx.get(mv.url + path, timeout=60)
            assert r.status_code != 500 and r.status_code < 600, (kind, r.status_code, r.text)
            assert r.status_code in (200, 404, 410, 502, 503, 504), (kind, r.status_code, r.text)
            _stored_is_valid(data, kind, version, r)

        one()
        assert mv.proc.poll() is None
        assert "Traceback" not in mv.output()
        assert not list((data / ".modvault" / "tmp").iterdir())
    finally:
        mv.stop()
        upstream.stop()
