"""Parity with the go command in direct mode (GOPROXY=direct GOSUMDB=off), on the corpus of
tests/vcs/corpus.py: for every module@version, GitSource's .info bytes, .mod bytes and zip h1 equal
what ``go mod download -json`` leaves in its module cache; version lists equal
``go list -m -versions -retracted``; @latest and revision queries equal ``go list -m M@query`` (as
the module cache records them). Where the go command refuses, GitSource refuses too (404) with the
go command's reason, and leaves no artifact behind."""

from __future__ import annotations

import json

import pytest

from modvault.errors import NotFound
from modvault.module.dirhash import hash_gomod
from modvault.module.zipcheck import check_zip
from tests.vcs.conftest import Ours, Reference, clean_origin, go_marshal, split_key
from tests.vcs.corpus import A

pytestmark = pytest.mark.timeout(240)


def _go_error(doc: dict[str, object]) -> str:
    err = doc.get("Error")
    if isinstance(err, dict):
        return str(err.get("Err", ""))
    return str(err or "")


def _first_line(text: str) -> str:
    """The reason in a go error worth finding in ours: git's first "fatal:" line when git failed
    (the go command's message around it names its own cache directories), else the first line."""
    for line in text.splitlines():
        if "fatal: " in line:
            return line[line.index("fatal: "):]
    return text.splitlines()[0] if text else ""


def _report(failures: list[str], total: int, what: str) -> None:
    assert not failures, f"{len(failures)} of {total} {what} differ:\n" + "\n".join(failures)


def test_corpus_shape(reference: Reference, ours: Ours) -> None:
    # The suite compares many artifacts, and the go command succeeded for most of them.
    ok = [k for k, d in reference.downloads.items() if "Zip" in d]
    assert len(ok) >= 40, ok
    assert len(reference.pseudo) >= 10, reference.pseudo
    print(f"\nparity corpus: {len(reference.downloads)} module@version downloads "
          f"({len(ok)} zips), {len(reference.pseudo)} pseudo-versions, "
          f"{len(reference.queries)} queries, {len(reference.lists)} lists; "
          f"GitSource answered everything in {ours.seconds:.2f}s")


def test_info_parity(reference: Reference, ours: Ours) -> None:
    failures = []
    for key, doc in reference.downloads.items():
        got = ours.info[key]
        if key in reference.info_files:
            if got.value != reference.info_files[key]:
                failures.append(f"{key}: go {reference.info_files[key]!r}\n  ours {got.value!r} "
                                f"{got.error!r}")
        elif not isinstance(got.error, NotFound):
            failures.append(f"{key}: go failed ({_go_error(doc)}), ours {got.value!r} {got.error!r}")
        elif _first_line(_go_error(doc)) not in got.error.message:
            failures.append(f"{key}: go said {_go_error(doc)!r}\n  ours {got.error.message!r}")
    _report(failures, len(reference.downloads), ".info answers")


def test_mod_parity(reference: Reference, ours: Ours) -> None:
    failures = []
    for key, doc in reference.downloads.items():
        got = ours.mod[key]
        if key in reference.mod_files:
            if got.value != reference.mod_files[key]:
                failures.append(f"{key}: go {reference.mod_files[key]!r}\n  ours {got.value!r} "
                                f"{got.error!r}")
            elif hash_gomod(got.value) != doc["GoModSum"]:
                failures.append(f"{key}: GoModSum differs")
        elif not isinstance(got.error, NotFound):
            failures.append(f"{key}: go failed ({_go_error(doc)}), ours {got.value!r} {got.error!r}")
    _report(failures, len(reference.downloads), ".mod answers")


def test_zip_parity(reference: Reference, ours: Ours) -> None:
    failures = []
    for key, doc in reference.downloads.items():
        got = ours.zip[key]
        if "Zip" in doc:
            if got.value != doc["Sum"]:
                failures.append(f"{key}: go {doc['Sum']}, ours {got.value} {got.error!r}")
            continue
        if not isinstance(got.error, NotFound):
            failures.append(f"{key}: go failed ({_go_error(doc)}), ours {got.value!r} {got.error!r}")
            continue
        if ours.zip_left[key]:
            failures.append(f"{key}: a failed zip left a partial artifact")
        reason = _first_line(_go_error(doc))
        if reason.startswith("create zip: ") and reason not in got.error.message:
            failures.append(f"{key}: go said {_go_error(doc)!r}\n  ours {got.error.message!r}")
    _report(failures, len(reference.downloads), "zips")


def test_list_parity(reference: Reference, ours: Ours) -> None:
    failures = []
    for module, doc in reference.lists.items():
        got = ours.lists[module]
        if _go_error(doc):
            if not isinstance(got.error, NotFound):
                failures.append(f"{module}: go failed ({_go_error(doc)}), ours {got.value!r}")
        elif got.value != doc.get("Versions", []):
            failures.append(f"{module}: go {doc.get('Versions', [])}, ours {got.value} {got.error!r}")
    _report(failures, len(reference.lists), "version lists")


def test_latest_parity(reference: Reference, ours: Ours) -> None:
    failures = []
    for module, doc in reference.latest.items():
        got = ours.latest[module]
        if _go_error(doc):
            if not isinstance(got.error, NotFound):
                failures.append(f"{module}: go failed ({_go_error(doc)}), ours {got.value!r}")
        elif "InfoBytes" not in doc or got.value != str(doc["InfoBytes"]).encode():
            failures.append(f"{module}: go {doc.get('InfoBytes')!r}\n  ours {got.value!r} "
                            f"{got.error!r}")
    _report(failures, len(reference.latest), "@latest answers")


def test_query_parity(reference: Reference, ours: Ours) -> None:
    failures = []
    for query, doc in reference.queries.items():
        got = ours.queries[query]
        if _go_error(doc):
            if not isinstance(got.error, NotFound):
                failures.append(f"{query}: go failed ({_go_error(doc)}), ours {got.value!r}")
            elif _first_line(_go_error(doc)) not in got.error.message:
                failures.append(f"{query}: go said {_go_error(doc)!r}\n  ours {got.error.message!r}")
        elif got.value != go_marshal(clean_origin(doc)):
            failures.append(f"{query}: go {go_marshal(clean_origin(doc))!r}\n  ours {got.value!r} "
                            f"{got.error!r}")
    _report(failures, len(reference.queries), "query answers")


def test_pseudo_versions_are_downloaded(reference: Reference, ours: Ours) -> None:
    for key in reference.pseudo:
        doc = reference.downloads[key]
        assert "Zip" in doc, (key, _go_error(doc))
        assert ours.info[key].value == reference.info_files[key], key
        assert ours.mod[key].value == reference.mod_files[key], key
        assert ours.zip[key].value == doc["Sum"], key


def test_our_zips_pass_the_zip_checks(reference: Reference, ours: Ours, tmp_path: object) -> None:
    # Every zip GitSource wrote is a valid module zip (what the service checks before storing).
    import asyncio
    from pathlib import Path

    from modvault.sources.vcs import GitSource

    keys = [k for k, d in reference.downloads.items() if "Zip" in d][:6]

    async def main() -> None:
        src = GitSource(Path(str(tmp_path)) / "cache")
        try:
            for key in keys:
                m, v = split_key(key)
                dest = Path(str(tmp_path)) / "z.zip"
                await src.zip(m, v, dest)
                summary = check_zip(dest, m, v)
                assert summary is not None
        finally:
            await src.aclose()

    asyncio.run(main())


def test_specific_expectations(reference: Reference, ours: Ours) -> None:
    """Spot checks that the corpus exercises what it claims to (not only that we agree)."""
    lists = {m: d.get("Versions", []) for m, d in reference.lists.items()}
    assert lists[f"{A}/legacy"] == ["v1.0.0", "v2.0.0+incompatible", "v3.1.0+incompatible",
                                    "v4.0.0+incompatible"]
    assert lists[f"{A}/gomodv2"] == ["v1.0.0"]
    assert lists[f"{A}/mono/sub"] == ["v1.0.0", "v1.1.0"]
    assert lists[f"{A}/basic"] == ["v0.1.0", "v1.0.0", "v1.1.0-rc.1", "v1.1.0"]
    assert reference.latest[f"{A}/prerel"]["Version"] == "v0.1.0-beta.2"
    assert reference.latest[f"{A}/legacy"]["Version"] == "v4.0.0+incompatible"
    assert reference.latest[f"{A}/retract"]["Version"] == "v1.0.0"
    assert str(reference.latest[f"{A}/untagged"]["Version"]).startswith("v0.0.0-")
    q = reference.queries
    assert str(q[f"{A}/legacy@main"]["Version"]).startswith("v3.1.1-0.")
    assert str(q[f"{A}/legacy@main"]["Version"]).endswith("+incompatible")
    assert str(q[f"{A}/retract@main"]["Version"]).startswith("v1.0.1-0.")
    assert str(q[f"{A}/basic@dev"]["Version"]).startswith("v1.1.1-0.")
    assert str(q[f"{A}/untagged2/v2@main"]["Version"]).startswith("v2.0.0-")
    d = reference.downloads
    assert "case-insensitive file name collision" in _go_error(d[f"{A}/casefold@v1.0.0"])
    assert "disallowed as path element component on Windows" in _go_error(d[f"{A}/winnames@v1.0.0"])
    assert "LICENSE file too large" in _go_error(d[f"{A}/biglicense@v1.0.0"])
    info = json.loads(reference.info_files["vcs.example.test/team/lib.git@v1.0.0"])
    assert info["Origin"]["URL"] == "https://vcs.example.test/team/lib"
    info = json.loads(reference.info_files[f"{A}/mono/sub@v1.0.0"])
    assert info["Origin"]["Subdir"] == "sub" and info["Origin"]["Ref"] == "refs/tags/sub/v1.0.0"
