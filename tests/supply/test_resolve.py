"""The async resolver around MVS: bounded in go.mod files and in concurrent fetches."""

from __future__ import annotations

import asyncio

import pytest

from modvault.errors import BadRequest
from modvault.supply.resolve import ModuleFacts, build_graph, main_from_gomod, resolve


class ChainSource:
    """example.com/mN v1.0.0 requires example.com/m(N+1) v1.0.0, forever (a hostile graph),
    with fan-out: each also requires example.com/fN v1.0.0."""

    def __init__(self) -> None:
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def gomod(self, path: str, version: str) -> bytes:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        name = path.rsplit("/", 1)[1]
        if name.startswith("f"):
            return f"module {path}\n".encode()
        n = int(name[1:])
        return (f"module {path}\n\ngo 1.16\n\nrequire (\n\texample.com/m{n + 1} v1.0.0\n"
                f"\texample.com/f{n} v1.0.0\n)\n").encode()

    async def facts(self, path: str, version: str) -> ModuleFacts:
        return ModuleFacts("h1:x", "0" * 64, "MIT")


def test_graph_size_is_bounded() -> None:
    source = ChainSource()
    main = main_from_gomod(b"module example.com/app\n\ngo 1.16\n\nrequire example.com/m0 v1.0.0\n")
    with pytest.raises(BadRequest, match="too large"):
        asyncio.run(resolve(main, source, max_modules=300, concurrency=4))
    assert source.calls <= 300
    assert source.max_in_flight <= 4


def test_small_graph_resolves_with_edges() -> None:
    class Small(ChainSource):
        async def gomod(self, path: str, version: str) -> bytes:
            if path == "example.com/m3":
                return b"module example.com/m3\n"
            return await super().gomod(path, version)

    main = main_from_gomod(b"module example.com/app\n\ngo 1.16\n\nrequire example.com/m0 v1.0.0\n")
    graph = asyncio.run(build_graph(main, Small()))
    assert [c.path for c in graph.modules] == [
        "example.com/f0", "example.com/f1", "example.com/f2",
        "example.com/m0", "example.com/m1", "example.com/m2", "example.com/m3"]
    assert graph.depends["example.com/m1"] == ("example.com/f1", "example.com/m2")
    assert graph.depends["example.com/app"] == ("example.com/m0",)


def test_directory_replacement_is_refused() -> None:
    main = main_from_gomod(b"module example.com/app\nrequire example.com/m0 v1.0.0\n"
                           b"replace example.com/m0 => ./m0\n")
    with pytest.raises(BadRequest, match="directory"):
        asyncio.run(resolve(main, ChainSource()))


@pytest.mark.parametrize("gomod", [b"", b"go 1.21\n", b"module example.com/app\nrequire (\n",
                                   b"module example.com/app\nrequire example.com/x vX\n",
                                   b"module example.com/app\nreplace example.com/x => y\n"])
def test_bad_main_go_mod(gomod: bytes) -> None:
    with pytest.raises(BadRequest):
        main_from_gomod(gomod)
