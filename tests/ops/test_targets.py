"""Reading prewarm/export targets from arguments, go.mod, go.sum, go.work and line files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.ops.prewarm import load_targets
from modvault.ops.targets import Target, TargetError, from_gomod, from_gosum, gowork_uses, parse_target


def test_gomod_requires_in_order() -> None:
    data = (b"module example.com/m\n\ngo 1.21\n\nrequire (\n\tgolang.org/x/text v0.14.0 // indirect\n"
            b"\tgithub.com/acme/v2 v2.1.0\n)\nrequire rsc.io/quote v1.5.2\n"
            b"replace rsc.io/quote => ./local\nexclude rsc.io/sampler v1.99.99\n")
    assert from_gomod(data) == [Target("golang.org/x/text", "v0.14.0"),
                                Target("github.com/acme/v2", "v2.1.0"),
                                Target("rsc.io/quote", "v1.5.2")]
    with pytest.raises(TargetError, match=r"go\.mod"):
        from_gomod(b"module example.com/m\nrequire github.com/acme/v2 v1.0.0\n")


def test_gosum_lines() -> None:
    text = ("github.com/acme/a v1.0.0 h1:abc=\ngithub.com/acme/a v1.0.0/go.mod h1:def=\n"
            "github.com/acme/b v0.1.0/go.mod h1:ghi=\n\n")
    assert from_gosum(text) == [Target("github.com/acme/a", "v1.0.0"),
                                Target("github.com/acme/b", "v0.1.0")]
    with pytest.raises(TargetError, match=r"go\.sum:1"):
        from_gosum("github.com/acme/a v1.0.0\n")


def test_gowork_uses() -> None:
    text = 'go 1.21\n\nuse ./a // main\nuse (\n\t./b\n\t"./c d"\n)\n'
    assert gowork_uses(text) == ["./a", "./b", "./c d"]
    with pytest.raises(TargetError, match="unterminated"):
        gowork_uses("use (\n./a\n")


def test_parse_target_errors() -> None:
    assert parse_target("github.com/acme/a@latest") == Target("github.com/acme/a", "latest")
    for bad in ("github.com/acme/a", "@v1.0.0", "not a path@v1.0.0", "github.com/acme/a@"):
        with pytest.raises(TargetError):
            parse_target(bad)


def test_load_targets_mixes_inputs(tmp_path: Path) -> None:
    (tmp_path / "w" / "m").mkdir(parents=True)
    (tmp_path / "w" / "m" / "go.mod").write_text("module example.com/m\nrequire rsc.io/quote v1.5.2\n")
    (tmp_path / "w" / "go.work").write_text("go 1.21\nuse ./m\n")
    (tmp_path / "list.txt").write_text("rsc.io/quote@v1.5.2\n# c\nrsc.io/sampler@v1.3.0\n")
    got = load_targets([str(tmp_path / "w" / "go.work"), str(tmp_path / "list.txt"), "-",
                        "golang.org/x/text@v0.3.0"], io.StringIO("golang.org/x/text@v0.3.0\n"))
    assert got == [Target("rsc.io/quote", "v1.5.2"), Target("rsc.io/sampler", "v1.3.0"),
                   Target("golang.org/x/text", "v0.3.0")]
    with pytest.raises(TargetError, match="No such file"):
        load_targets([str(tmp_path / "nope.sum")], io.StringIO(""))


@given(st.lists(st.tuples(st.sampled_from(["github.com/a/b", "example.com/x", "rsc.io/q"]),
                          st.sampled_from(["v1.0.0", "v0.2.3", "v1.1.0-rc.1"]), st.booleans()),
                max_size=12))
def test_gosum_roundtrip(entries: list[tuple[str, str, bool]]) -> None:
    text = "".join(f"{m} {v}{'/go.mod' if modonly else ''} h1:x=\n" for m, v, modonly in entries)
    want = list(dict.fromkeys(Target(m, v) for m, v, _ in entries))
    assert from_gosum(text) == want
