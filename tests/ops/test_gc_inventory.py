"""Inventory and garbage collection over a real store directory."""

from __future__ import annotations

import time
from pathlib import Path

from modvault.ops import gc
from modvault.ops.indexfeed import IndexLog, format_time, parse_time
from modvault.ops.inventory import scan_versions
from modvault.ops.journal import AccessJournal
from modvault.policy import ModulePolicy
from tests.ops.storefix import put_version

NOW = 2_000_000_000.0
DAY = 86400.0


def _store(root: Path) -> None:
    put_version(root, "example.com/old", "v1.0.0", zip_bytes=5000, mtime=NOW - 40 * DAY)
    put_version(root, "example.com/old", "v1.1.0", zip_bytes=5000, mtime=NOW - 30 * DAY)
    put_version(root, "github.com/Acme/Upper", "v2.0.0+incompatible", zip_bytes=3000,
                mtime=NOW - 20 * DAY)
    put_version(root, "corp.example/secret", "v1.0.0", zip_bytes=9000, mtime=NOW - 90 * DAY)
    put_version(root, "example.com/fresh", "v0.1.0", zip_bytes=100, mtime=NOW - 10)
    (root / ".modvault" / "blocked").mkdir(parents=True)
    (root / ".modvault" / "blocked" / "example.com.old.json").write_text("{}")


POLICY = ModulePolicy(private="corp.example")


def test_scan_versions_reads_the_layout(tmp_path: Path) -> None:
    _store(tmp_path)
    recs = scan_versions(tmp_path, policy=POLICY)
    got = [(r.module, r.version, r.source) for r in recs]
    assert got == [
        ("corp.example/secret", "v1.0.0", "private"),
        ("example.com/fresh", "v0.1.0", "public"),
        ("example.com/old", "v1.0.0", "public"),
        ("example.com/old", "v1.1.0", "public"),
        ("github.com/Acme/Upper", "v2.0.0+incompatible", "public"),
    ]
    upper = recs[-1]
    assert upper.escaped_module == "github.com/!acme/!upper"
    assert upper.sizes["zip"] == 3000 and set(upper.sizes) == {"info", "mod", "zip"}
    assert scan_versions(tmp_path, pattern="example.com/*") == [r for r in recs
                                                                if r.module.startswith("example.com")]


def test_gc_unused_for_removes_old_public_versions_only(tmp_path: Path) -> None:
    _store(tmp_path)
    # v1.0.0 was stored long ago but used yesterday: it stays.
    j = AccessJournal(tmp_path)
    j.now = NOW - DAY
    j.touch("example.com/old/@v/v1.0.0.zip")
    j.flush()
    plan = gc.plan_gc(tmp_path, max_bytes=None, unused_for=25 * DAY, policy=POLICY, now=NOW)
    assert [(v.module, v.version) for v in plan.versions] == [("example.com/old", "v1.1.0")]
    result = gc.execute_gc(tmp_path, plan)
    assert result.freed_bytes == plan.freed_bytes > 5000
    assert not (tmp_path / "example.com/old/@v/v1.1.0.zip").exists()
    assert not (tmp_path / "example.com/old/@v/v1.1.0.info").exists()
    assert (tmp_path / "example.com/old/@v/v1.0.0.zip").exists()
    assert (tmp_path / "corp.example/secret/@v/v1.0.0.zip").exists()  # private: never
    assert (tmp_path / ".modvault/blocked/example.com.old.json").exists()
    assert gc.read_stats(tmp_path)["runs"] == 1
    assert gc.read_stats(tmp_path)["freed_bytes"] == result.freed_bytes


def test_gc_max_bytes_is_lru_and_spares_recent_and_in_flight(tmp_path: Path) -> None:
    _store(tmp_path)
    total = sum(r.bytes for r in scan_versions(tmp_path))
    in_flight = "github.com/!acme/!upper/@v/v2.0.0+incompatible.zip"
    plan = gc.plan_gc(tmp_path, max_bytes=0, unused_for=None, policy=POLICY, now=NOW,
                      in_use=lambda k: k == in_flight)
    # Oldest first; the fresh one (inside the grace period), the in-flight one and the private one stay.
    assert [(v.module, v.version) for v in plan.versions] == [
        ("example.com/old", "v1.0.0"), ("example.com/old", "v1.1.0")]
    assert plan.store_bytes == total
    # A size limit stops as soon as the store fits.
    plan = gc.plan_gc(tmp_path, max_bytes=total - 1, unused_for=None, policy=POLICY, now=NOW)
    assert [(v.module, v.version) for v in plan.versions] == [("example.com/old", "v1.0.0")]


def test_gc_includes_idle_git_mirrors(tmp_path: Path) -> None:
    import os

    _store(tmp_path)
    mirror = tmp_path / gc.VCS_GIT_DIR / ("a" * 40)
    (mirror / "objects" / "pack").mkdir(parents=True)
    (mirror / "objects" / "pack" / "p.pack").write_bytes(b"p" * 7000)
    for dirpath, _, files in os.walk(mirror):
        for f in [*files, "."]:
            os.utime(os.path.join(dirpath, f), (NOW - 50 * DAY, NOW - 50 * DAY))
    plan = gc.plan_gc(tmp_path, max_bytes=None, unused_for=45 * DAY, policy=POLICY, now=NOW)
    assert [m.path.name for m in plan.mirrors] == ["a" * 40]
    assert plan.versions == []
    result = gc.execute_gc(tmp_path, plan)
    assert result.freed_bytes == 7000
    assert not mirror.exists()


def test_index_log_orders_and_pages(tmp_path: Path) -> None:
    put_version(tmp_path, "example.com/b", "v1.0.0", mtime=NOW - 300)
    put_version(tmp_path, "example.com/a", "v1.0.0", mtime=NOW - 200)
    log = IndexLog(tmp_path)
    assert log.refresh() == 2
    put_version(tmp_path, "example.com/a", "v1.1.0", mtime=NOW - 500)  # stored late, old mtime
    assert log.refresh() == 1
    assert log.refresh() == 0
    entries = log.page(0, 10)
    assert [(e.path, e.version) for e in entries] == [
        ("example.com/b", "v1.0.0"), ("example.com/a", "v1.0.0"), ("example.com/a", "v1.1.0")]
    times = [e.timestamp for e in entries]
    assert times == sorted(times)
    # Paging by the last timestamp seen; a second process reads the same log.
    other = IndexLog(tmp_path)
    other.refresh()
    second = other.page(parse_time(format_time(entries[0].timestamp)), 1)
    assert [(e.path, e.version) for e in second] == [("example.com/b", "v1.0.0")]
    assert other.page(entries[1].timestamp, 5) == entries[1:]
    # A version that gc removes and a later fetch stores again keeps its first entry.
    for f in (tmp_path / "example.com/b/@v").iterdir():
        f.unlink()
    put_version(tmp_path, "example.com/b", "v1.0.0", mtime=time.time())
    assert other.refresh() == 0


def test_parse_time_rejects_zoneless() -> None:
    import pytest

    assert parse_time("2019-04-10T19:08:52.997264Z") == parse_time("2019-04-10T21:08:52.997264+02:00")
    for bad in ("2019-04-10", "2019-04-10T19:08:52", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_published_modules_are_never_collected_or_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    put_version(tmp_path, "example.com/pub", "v1.0.0", zip_bytes=5000, mtime=NOW - 400 * DAY)
    put_version(tmp_path, "example.com/cached", "v1.0.0", zip_bytes=5000, mtime=NOW - 400 * DAY)
    (tmp_path / ".modvault/published").mkdir(parents=True)
    (tmp_path / ".modvault/published/example.com/pub.json").parent.mkdir(parents=True)
    (tmp_path / ".modvault/published/example.com/pub.json").write_text('{"versions": {}}')
    recs = {r.module: r for r in scan_versions(tmp_path)}
    assert recs["example.com/pub"].source == "published" and recs["example.com/pub"].private
    plan = gc.plan_gc(tmp_path, max_bytes=0, unused_for=DAY, policy=ModulePolicy(), now=NOW)
    assert [v.module for v in plan.versions] == ["example.com/cached"]
    out = subprocess.run([sys.executable, "-m", "modvault", "rm", "example.com/pub",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "published" in out.stderr
    assert (tmp_path / "example.com/pub/@v/v1.0.0.zip").exists()
