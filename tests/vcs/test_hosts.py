"""GitHosts in process, against real git over a socket: probes do not queue behind git's process limit,
an open breaker skips the host without starting git, and hosts past the limit go untracked instead of
sharing a breaker with others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from modvault.sources.health import BreakerPolicy, HealthRegistry, State
from modvault.sources.vcs.git import GitError, GitRunner
from modvault.sources.vcs.hosts import GitHosts, HostSkipped
from tests.support.git_http import GitHTTPServer
from tests.support.gitrepos import Repo


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[GitHTTPServer, GitHTTPServer]]:
    repo = Repo(tmp_path, "github.com/acme/one")
    repo.write({"go.mod": "module github.com/acme/one\n"})
    repo.commit("v1", ["v1.0.0"])
    root = tmp_path / "repos" / "github.com"
    a, b = GitHTTPServer(root).start(), GitHTTPServer(root).start()
    yield a, b
    a.stop()
    b.stop()


def ls_remote(runner: GitRunner, hosts: GitHosts, url: str, timeout: float = 60) -> object:
    async def op() -> object:
        return await runner.run(["ls-remote", "-q", url], timeout=timeout)

    return hosts.call(url, "ls-remote", op, latency=True, phase="total")


def test_probe_runs_while_git_process_limit_is_taken(servers: tuple[GitHTTPServer, GitHTTPServer],
                                                     tmp_path: Path) -> None:
    silent, healthy = servers
    silent.hold_everything(30)

    async def main() -> None:
        runner = GitRunner(max_procs=1)
        hosts = GitHosts(HealthRegistry(), runner, tmp_path / "probe")
        assert hosts.record(f"{healthy.url}/acme/one") is not None
        holder = asyncio.ensure_future(ls_remote(runner, hosts, f"{silent.url}/acme/one"))
        while not silent.count("acme/one"):  # the one slot is taken by a git that hangs
            await asyncio.sleep(0.05)
        name = f"127.0.0.1:{healthy.port}"
        ok, why = await hosts.probe(name)
        assert ok, why
        assert not holder.done()
        assert hosts.registry.records[name].successes == 1
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder

    asyncio.run(main())


def test_open_breaker_skips_without_starting_git(servers: tuple[GitHTTPServer, GitHTTPServer],
                                                 tmp_path: Path) -> None:
    srv, _ = servers
    srv.fail_everything(503)
    url = f"{srv.url}/acme/one"

    async def main() -> None:
        runner = GitRunner()
        hosts = GitHosts(HealthRegistry(BreakerPolicy(failures=2, backoff=60)), runner,
                         tmp_path / "probe")
        for _ in range(2):
            with pytest.raises(GitError) as caught:
                await ls_remote(runner, hosts, url)
            assert not isinstance(caught.value, HostSkipped)
        asked = srv.count("acme/one")
        with pytest.raises(HostSkipped) as skipped:
            await ls_remote(runner, hosts, url)
        assert "circuit open" in skipped.value.message
        assert srv.count("acme/one") == asked
        rec = hosts.registry.records[f"127.0.0.1:{srv.port}"]
        assert rec.state is State.OPEN and rec.kind == "git"

    asyncio.run(main())


def test_hosts_past_the_limit_go_untracked(servers: tuple[GitHTTPServer, GitHTTPServer],
                                           tmp_path: Path) -> None:
    good, bad = servers
    bad.fail_everything(503)

    async def main() -> None:
        runner = GitRunner()
        hosts = GitHosts(HealthRegistry(BreakerPolicy(failures=1, backoff=60)), runner,
                         tmp_path / "probe", max_hosts=1)
        await ls_remote(runner, hosts, f"{good.url}/acme/one")
        for _ in range(3):  # failures of an untracked host: no record, no breaker, no skipping
            with pytest.raises(GitError) as caught:
                await ls_remote(runner, hosts, f"{bad.url}/acme/one")
            assert not isinstance(caught.value, HostSkipped)
        assert list(hosts.registry.records) == [f"127.0.0.1:{good.port}"]
        await ls_remote(runner, hosts, f"{good.url}/acme/one")  # the tracked host is unaffected

    asyncio.run(main())
