"""MVS over go.mod graphs: tables for the rules, and a property check against the textbook
definition (highest version reachable per path) when nothing prunes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.module.modfile import Replacement, Requirement, parse_graph
from modvault.supply.mvs import BuildList, MainModule, Need, Summary, go_at_least, select

R = Requirement


def run(main: MainModule, graph: dict[R, Summary]) -> BuildList:
    """Feed select() the summaries it asks for, as the async resolver does."""
    have: dict[R, Summary] = {}
    for _ in range(100):
        out = select(main, have)
        if isinstance(out, BuildList):
            return out
        assert isinstance(out, Need)
        for src in out.sources:
            have[src] = graph[src]
    raise AssertionError("select() never finished")


def summary(go: str | None, *reqs: str) -> Summary:
    return Summary(go, tuple(R(*r.split("@")) for r in reqs))


def test_diamond_selects_the_highest_version() -> None:
    graph = {
        R("a", "v1.0.0"): summary("1.16", "c@v1.1.0"),
        R("b", "v1.0.0"): summary("1.16", "c@v1.3.0"),
        R("c", "v1.1.0"): summary("1.16"),
        R("c", "v1.3.0"): summary("1.16", "d@v0.1.0"),
        R("d", "v0.1.0"): summary("1.16"),
    }
    main = MainModule("m", "", "1.16", (R("a", "v1.0.0"), R("b", "v1.0.0")))
    out = run(main, graph)
    assert out.selected() == {"m": "", "a": "v1.0.0", "b": "v1.0.0", "c": "v1.3.0", "d": "v0.1.0"}
    assert out.edges[R("b", "v1.0.0")] == (R("c", "v1.3.0"),)


def test_requirements_of_unselected_versions_still_count() -> None:
    # c v1.1.0 is not selected, yet its requirement on e is part of the graph (MVS, not "latest").
    graph = {
        R("a", "v1.0.0"): summary(None, "c@v1.1.0"),
        R("b", "v1.0.0"): summary(None, "c@v1.2.0"),
        R("c", "v1.1.0"): summary(None, "e@v1.5.0"),
        R("c", "v1.2.0"): summary(None),
        R("e", "v1.5.0"): summary(None),
    }
    out = run(MainModule("m", "", None, (R("a", "v1.0.0"), R("b", "v1.0.0"))), graph)
    assert out.selected()["e"] == "v1.5.0"
    assert out.selected()["c"] == "v1.2.0"


def test_pruned_dependency_is_not_followed_past_its_requirements() -> None:
    graph = {
        R("a", "v1.0.0"): summary("1.21", "b@v1.0.0"),
        R("b", "v1.0.0"): summary("1.21", "z@v9.0.0"),
    }
    out = run(MainModule("m", "", "1.21", (R("a", "v1.0.0"),)), graph)
    assert out.selected() == {"m": "", "a": "v1.0.0", "b": "v1.0.0"}
    # The same graph under an unpruned main module loads everything.
    graph[R("z", "v9.0.0")] = summary("1.21")
    full = run(MainModule("m", "", "1.16", (R("a", "v1.0.0"),)), graph)
    assert full.selected()["z"] == "v9.0.0"


def test_unpruned_dependency_is_loaded_transitively_under_a_pruned_main() -> None:
    graph = {
        R("a", "v1.0.0"): summary(None, "b@v1.0.0"),
        R("b", "v1.0.0"): summary("1.21", "c@v1.0.0"),
        R("c", "v1.0.0"): summary("1.21", "d@v1.0.0"),
        R("d", "v1.0.0"): summary(None),
    }
    out = run(MainModule("m", "", "1.21", (R("a", "v1.0.0"),)), graph)
    assert out.selected() == {"m": "", "a": "v1.0.0", "b": "v1.0.0", "c": "v1.0.0", "d": "v1.0.0"}


def test_exclude_drops_requirements_and_replace_changes_the_source() -> None:
    graph = {
        R("a", "v1.0.0"): summary("1.16", "c@v1.2.0"),
        R("c", "v1.1.0"): summary("1.16"),
        R("fork/b", "v1.5.0"): summary("1.16", "c@v1.1.0"),
    }
    main = MainModule("m", "", "1.16", (R("a", "v1.0.0"), R("b", "v1.0.0")),
                      replaces=(Replacement("b", "", "fork/b", "v1.5.0"),),
                      excludes=frozenset({R("c", "v1.2.0")}))
    out = run(main, graph)
    assert out.selected() == {"m": "", "a": "v1.0.0", "b": "v1.0.0", "c": "v1.1.0"}
    assert main.source_of(R("b", "v1.0.0")) == R("fork/b", "v1.5.0")


def test_version_specific_replace_wins_over_wildcard() -> None:
    main = MainModule("m", "", None, (), replaces=(
        Replacement("x", "", "y", "v1.0.0"), Replacement("x", "v2.0.0+incompatible", "z", "v1.0.0")))
    assert main.source_of(R("x", "v2.0.0+incompatible")) == R("z", "v1.0.0")
    assert main.source_of(R("x", "v1.0.0")) == R("y", "v1.0.0")


def test_go_versions() -> None:
    assert go_at_least("1.17", (1, 17)) and go_at_least("1.21.3", (1, 17))
    assert go_at_least("1.21rc1", (1, 17)) and go_at_least("2.0", (1, 17))
    assert not go_at_least("1.16", (1, 17)) and not go_at_least(None, (1, 17))
    assert not go_at_least("1.9", (1, 17))


def test_parse_graph_reads_require_replace_exclude() -> None:
    d = parse_graph(b"""module example.com/m

go 1.21

require (
\texample.com/a v1.0.0
\texample.com/b v2.0.0+incompatible // indirect
)

exclude example.com/c v1.2.0
replace example.com/a => example.com/fork v1.1.0
replace (
\texample.com/d v1.0.0 => ../d
)
""")
    assert d.module == "example.com/m" and d.go == "1.21"
    assert d.requires == (R("example.com/a", "v1.0.0"), R("example.com/b", "v2.0.0+incompatible"))
    assert d.excludes == (R("example.com/c", "v1.2.0"),)
    assert d.replaces == (Replacement("example.com/a", "", "example.com/fork", "v1.1.0"),
                          Replacement("example.com/d", "v1.0.0", "../d", ""))
    assert d.replaces[1].is_directory


# --- property: unpruned MVS equals the highest version reachable per path --------------------

_PATHS = ["p0", "p1", "p2", "p3", "p4"]
_VERSIONS = ["v1.0.0", "v1.1.0", "v1.2.0", "v1.10.0"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[MainModule, dict[R, Summary]]:
    nodes = [R(p, v) for p in _PATHS for v in _VERSIONS]
    graph = {}
    for n in nodes:
        reqs = draw(st.lists(st.sampled_from([m for m in nodes if m.path != n.path]), max_size=3,
                             unique=True))
        graph[n] = Summary(draw(st.sampled_from([None, "1.16"])), tuple(reqs))
    roots = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3, unique_by=lambda r: r.path))
    return MainModule("main", "", "1.16", tuple(roots)), graph


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_unpruned_mvs_is_the_maximum_over_the_reachable_graph(
        case: tuple[MainModule, dict[R, Summary]]) -> None:
    main, graph = case
    reachable: set[R] = set()
    todo = list(main.requires)
    while todo:
        m = todo.pop()
        if m in reachable:
            continue
        reachable.add(m)
        todo.extend(graph[m].requires)
    want: dict[str, str] = {"main": ""}
    for m in reachable:
        if m.path not in want or _VERSIONS.index(m.version) > _VERSIONS.index(want[m.path]):
            want[m.path] = m.version
    assert run(main, graph).selected() == want
