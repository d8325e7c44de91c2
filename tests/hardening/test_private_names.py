"""Class 8: nothing matching ``private``/``nosumdb`` is ever sent to a public checksum database.

Before: with --private corp.example, /sumdb/<db>/lookup/corp.example/x@v1.0.0 was forwarded to the
configured database (sum.golang.org by default), telling its operator the private module's name.
"""

from __future__ import annotations

import httpx
import pytest

from modvault.sumdb import note
from tests.conftest import ModvaultFactory
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

DB = "sum.test.example"


@pytest.mark.parametrize("flags", [("--private", "corp.example"),
                                   ("--nosumdb", "corp.example,*.internal"),
                                   ("--private", "corp.example", "--nosumdb", "other.example")])
def test_private_lookups_never_reach_the_public_database(
        flags: tuple[str, ...], upstream_a: TestUpstreamServer, upstream_b: TestUpstreamServer,
        modvault: ModvaultFactory) -> None:
    _, vkey = note.generate_key(DB)
    database = upstream_b  # stands for the public database: it records every request
    mv = modvault(upstream_a.url, *flags, "--sumdb", f"{vkey} {database.url}")
    with httpx.Client(base_url=mv.url, timeout=30) as client:
        for module in ("corp.example/x", "corp.example/deep/er/path", "corp.example"):
            r = client.get(f"/sumdb/{DB}/lookup/{module}@v1.0.0")
            assert r.status_code == 403, (module, r.status_code, r.text)
            assert "private" in r.text
        if "*.internal" in flags[1]:
            assert client.get(f"/sumdb/{DB}/lookup/git.corp.internal/y@v1.0.0").status_code == 403
        assert not any("corp" in p or "internal" in p for p in database.requests), database.requests
        # A public module is still forwarded (the recorder sees it): the check above can fail.
        client.get(f"/sumdb/{DB}/lookup/github.com/acme/hello@v1.0.0")
    assert any("github.com/acme/hello" in p for p in database.requests), database.requests
