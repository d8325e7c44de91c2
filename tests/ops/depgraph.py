"""A small module graph with requirements, built by the real go command from local git repositories:

    consumer -> acme/app v1.0.0 -> acme/lib v1.0.0 -> acme/base v1.0.0
                                -> acme/base v1.1.0
(go mod download all then needs base v1.0.0's .mod and base v1.1.0's zip.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.gitrepos import Repo, download_json, export_proxy, go_env, rmtree, run_go

CONSUMER_MAIN = """package main

import (
\t"fmt"

\t"github.com/acme/app"
)

func main() { fmt.Println(app.Hello()) }
"""


@dataclass
class DepGraph:
    root: Path
    proxy: Path  # static GOPROXY tree with every version
    sums: dict[str, str]  # "M@V" -> h1 of the zip (from the go command in direct mode)

    def consumer(self, where: Path) -> Path:
        """A main module that requires app v1.0.0 (no go.sum: the go command resolves it)."""
        where.mkdir(parents=True)
        (where / "go.mod").write_text("module example.com/consumer\n\ngo 1.21\n\n"
                                      "require github.com/acme/app v1.0.0\n")
        (where / "main.go").write_text(CONSUMER_MAIN)
        return where


def build_depgraph(root: Path) -> DepGraph:
    base = Repo(root, "github.com/acme/base")
    for v in ("v1.0.0", "v1.1.0"):
        base.write({"go.mod": "module github.com/acme/base\n\ngo 1.21\n",
                    "base.go": f'package base\n\nconst Version = "{v}"\n'})
        base.commit(v, [v])
    lib = Repo(root, "github.com/acme/lib")
    lib.write({"go.mod": "module github.com/acme/lib\n\ngo 1.21\n\nrequire github.com/acme/base v1.0.0\n",
               "lib.go": 'package lib\n\nimport "github.com/acme/base"\n\n'
                         'func Name() string { return "lib on base " + base.Version }\n'})
    lib.commit("v1.0.0", ["v1.0.0"])
    app = Repo(root, "github.com/acme/app")
    app.write({"go.mod": "module github.com/acme/app\n\ngo 1.21\n\nrequire (\n"
                         "\tgithub.com/acme/base v1.1.0\n\tgithub.com/acme/lib v1.0.0\n)\n",
               "app.go": 'package app\n\nimport "github.com/acme/lib"\n\n'
                         'func Hello() string { return "hello from app, " + lib.Name() }\n'})
    app.commit("v1.0.0", ["v1.0.0"])

    home = root / "ref"
    home.mkdir()
    env = go_env(home, root / "repos", GOPROXY="direct")
    want = ["github.com/acme/base@v1.0.0", "github.com/acme/base@v1.1.0",
            "github.com/acme/lib@v1.0.0", "github.com/acme/app@v1.0.0"]
    proc = run_go(["mod", "download", "-json", *want], cwd=home, env=env)
    sums = {f"{d['Path']}@{d['Version']}": str(d["Sum"]) for d in download_json(proc.stdout)}
    proxy = root / "proxy"
    cache = home / "gopath" / "pkg" / "mod"
    export_proxy(cache, proxy)
    rmtree(cache)
    return DepGraph(root, proxy, sums)
