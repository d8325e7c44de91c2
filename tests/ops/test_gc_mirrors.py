"""gc of direct mode's git mirrors while a GitSource is using them: the next fetch clones again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from modvault.config import Settings
from modvault.module.dirhash import hash_zip
from modvault.ops import gc
from modvault.policy import ModulePolicy
from modvault.sources.vcs import GitSource
from tests.support.gitrepos import Repo


def test_removed_mirror_is_cloned_again(gitenv: Path) -> None:
    repo = Repo(gitenv, "github.com/acme/mirrored")
    repo.write({"go.mod": "module github.com/acme/mirrored\n\ngo 1.21\n", "m.go": "package m\n"})
    repo.commit("v1", ["v1.0.0"])
    data = gitenv / "data"

    async def main() -> tuple[str, str]:
        src = GitSource(data / ".modvault/vcs")
        try:
            info = await src.info("github.com/acme/mirrored", "v1.0.0")
            assert b'"v1.0.0"' in info
            mirrors = gc.scan_mirrors(data)
            assert len(mirrors) == 1 and mirrors[0].bytes > 0
            first = data / "first.zip"
            await src.zip("github.com/acme/mirrored", "v1.0.0", first)
            plan = gc.plan_gc(data, max_bytes=0, unused_for=None, policy=ModulePolicy(),
                              now=time.time() + 3600)
            assert [m.path for m in plan.mirrors] == [mirrors[0].path]
            assert gc.execute_gc(data, plan).removed_mirrors
            assert gc.scan_mirrors(data) == []
            # Same refs as before: the source must notice the mirror is gone and clone again.
            second = data / "second.zip"
            await src.zip("github.com/acme/mirrored", "v1.0.0", second)
            assert len(gc.scan_mirrors(data)) == 1
            return hash_zip(first), hash_zip(second)
        finally:
            await src.aclose()

    a, b = asyncio.run(main())
    assert a == b


def test_mirrors_in_a_separate_work_dir_are_found(gitenv: Path) -> None:
    """With work_dir set, the mirrors live there, not under the data directory: gc must look there."""
    repo = Repo(gitenv, "github.com/acme/elsewhere")
    repo.write({"go.mod": "module github.com/acme/elsewhere\n\ngo 1.21\n", "m.go": "package m\n"})
    repo.commit("v1", ["v1.0.0"])
    settings = Settings(data_dir=str(gitenv / "data"), work_dir=str(gitenv / "scratch"))
    git_dir = gc.mirrors_dir(settings)
    assert git_dir == gitenv / "scratch" / "vcs" / "git"

    async def fetch() -> None:
        src = GitSource(gitenv / "scratch" / "vcs")  # as wiring.build_git_source places it
        try:
            await src.info("github.com/acme/elsewhere", "v1.0.0")
        finally:
            await src.aclose()

    asyncio.run(fetch())
    assert gc.scan_mirrors(gitenv / "data") == []  # the old assumption finds nothing
    mirrors = gc.scan_mirrors(gitenv / "data", git_dir)
    assert len(mirrors) == 1 and mirrors[0].bytes > 0
    plan = gc.plan_gc(gitenv / "data", max_bytes=0, unused_for=None, policy=ModulePolicy(),
                      now=time.time() + 3600, git_dir=git_dir)
    assert [m.path for m in plan.mirrors] == [mirrors[0].path]
