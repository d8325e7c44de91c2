"""Synthetic module graphs in local git repositories, for the supply-chain end-to-end tests.

Every module carries a real licence text (tests/supply/licence_texts) and the Go files of a real
Debian-packaged module tree, so the zips modvault builds are realistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.supply.licence_texts import TREES, licence_text
from tests.support.gitrepos import Repo

GOCODE = Path("/usr/share/gocode/src")
P = "github.com/sb"

# module -> licence its LICENSE carries ("" = an unknown text, expected NOASSERTION)
LICENCES = {
    f"{P}/a": "Apache-2.0",
    f"{P}/b": "MPL-2.0",
    f"{P}/c": "BSD-3-Clause",
    f"{P}/d": "MIT",
    f"{P}/e": "ISC",
    f"{P}/inc": "BSD-2-Clause",
    f"{P}/fork": "",
    f"{P}/p": "MIT",
    f"{P}/q": "MIT",
    f"{P}/z": "MIT",
    f"{P}/x": "ISC",
}
UNKNOWN_LICENCE = "This code may be used by the Frobnitz Corporation only, on Tuesdays.\n"


def _files(module: str, gomod: str | None) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {}
    lic = LICENCES[module]
    files["LICENSE"] = licence_text(lic) if lic else UNKNOWN_LICENCE
    tree = GOCODE / TREES.get(lic or "MIT", "")
    if lic and tree.is_dir():
        for src in sorted(tree.glob("*.go")):
            if not src.name.endswith("_test.go"):
                files[f"vendored/{src.name}"] = src.read_bytes()
    pkg = module.rsplit("/", 1)[1]
    files[f"{pkg}.go"] = f"package {pkg}\n\nconst Name = {module!r}\n".replace("'", '"')
    if gomod is not None:
        files["go.mod"] = gomod
    return files


def _gomod(module: str, go: str | None, *reqs: str) -> str:
    text = f"module {module}\n"
    if go:
        text += f"\ngo {go}\n"
    if reqs:
        text += "\nrequire (\n" + "".join(f"\t{r.replace('@', ' ')}\n" for r in reqs) + ")\n"
    return text


def _module(root: Path, name: str, versions: list[tuple[str, str | None, tuple[str, ...]]]) -> Repo:
    """versions: (tag, go directive or None (no go.mod at all if go == "none"), requirements)."""
    module = f"{P}/{name}"
    repo = Repo(root, module)
    for tag, go, reqs in versions:
        gomod = None if go == "none" else _gomod(module, go, *reqs)
        if gomod is None and (repo.work / "go.mod").exists():
            repo.remove(["go.mod"])
        repo.write(_files(module, gomod))
        repo.commit(tag, [tag])
    return repo


@dataclass
class Graphs:
    root: Path
    mains: dict[str, str]  # scenario -> main go.mod text


def build_graphs(root: Path) -> Graphs:
    _module(root, "d", [("v0.1.0", "1.16", ())])
    _module(root, "e", [("v1.0.0", "1.16", ())])
    _module(root, "c", [("v1.1.0", "1.16", ()), ("v1.2.0", "1.16", (f"{P}/e@v1.0.0",)),
                        ("v1.3.0", "1.16", (f"{P}/d@v0.1.0",))])
    _module(root, "a", [("v1.0.0", "1.16", (f"{P}/c@v1.1.0",))])
    _module(root, "b", [("v1.0.0", "1.16", (f"{P}/c@v1.3.0",))])
    _module(root, "x", [("v1.0.0", None, (f"{P}/c@v1.2.0",))])
    _module(root, "fork", [("v1.5.0", "1.16", (f"{P}/e@v1.0.0",))])
    # v1 has a go.mod; v2.0.0 has none: the go command calls it v2.0.0+incompatible.
    _module(root, "inc", [("v1.0.0", "1.16", ()), ("v2.0.0", "none", ())])
    _module(root, "z", [("v1.0.0", "1.21", ())])
    _module(root, "q", [("v1.0.0", "1.21", (f"{P}/z@v1.0.0",))])
    _module(root, "p", [("v1.0.0", "1.21", (f"{P}/q@v1.0.0",))])

    def main(go: str, *reqs: str, extra: str = "") -> str:
        return _gomod("example.com/app", go, *reqs) + extra

    mains = {
        # a diamond: a needs c v1.1.0, b needs c v1.3.0 (which needs d): MVS picks c v1.3.0
        "diamond": main("1.16", f"{P}/a@v1.0.0", f"{P}/b@v1.0.0"),
        # x (no go directive) needs c v1.2.0 (which needs e); excluding c v1.3.0 drops b's
        # requirement on it, so c v1.2.0 is selected and d never enters the graph
        "exclude": main("1.16", f"{P}/b@v1.0.0", f"{P}/x@v1.0.0",
                        extra=f"\nexclude {P}/c v1.3.0\n"),
        # a's go.mod and zip come from fork v1.5.0 (which needs e, not c)
        "replace": main("1.16", f"{P}/a@v1.0.0", extra=f"\nreplace {P}/a => {P}/fork v1.5.0\n"),
        "incompatible": main("1.16", f"{P}/inc@v2.0.0+incompatible", f"{P}/a@v1.0.0"),
        # go 1.21 prunes: q's requirement on z is not followed (p and q prune too)
        "pruned": main("1.21", f"{P}/p@v1.0.0"),
    }
    return Graphs(root, mains)
