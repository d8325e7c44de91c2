"""Health of the git hosts direct mode talks to: one record and breaker per host, never per repository.

Fed by real git traffic (``git ls-remote`` and ``git fetch`` of a mirror; local reads of a mirror
never reach the host) and by active probes (``git ls-remote`` of the repository last used on that
host, so the probe goes the way git goes: ``insteadOf`` rewrites, credentials, proxies). A record is
named by the host (and port) of the repository URL as modvault resolves it, before git's own URL
rewrites: a bounded label, never a module path.

Clients choose the hosts (a module path ending in ``.git`` names any host), so at most ``max_hosts``
hosts get a record (a bounded set of metric labels); the ones beyond go untracked (no breaker), never
into a record shared with other hosts, whose failures could then block a healthy host.

An open breaker answers at once (:class:`HostSkipped`, 503 at the edge) instead of letting every
request wait for git's timeout. What counts against a host: no answer at all (timeouts, refused or
unroutable connections, unresolvable names) and broken answers (HTTP 5xx, a hung-up transfer). A
host that answers "not found" or "authentication required" is healthy: it answered.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from modvault.observability import metrics
from modvault.observability.health import publish_state
from modvault.sources.health import HealthRecord, HealthRegistry, State
from modvault.sources.vcs.git import GitError, GitRunner, GitTimeout, OutputTooLarge, probe_repo

T = TypeVar("T")

KIND = "git"

# stderr of git (and curl, ssh underneath) when the host never answered.
_NO_ANSWER = (
    "could not resolve host", "could not resolve hostname", "name or service not known",
    "failed to connect", "couldn't connect to server", "connection refused", "connection timed out",
    "operation timed out", "network is unreachable", "no route to host", "connection reset",
    "timed out", "temporary failure in name resolution",
)
# The host answered, with a refusal that is not a failure of the host.
_ANSWERED = (
    "could not read username", "could not read password", "authentication failed",
    "terminal prompts disabled", "returned error: 401", "returned error: 403",
    "returned error: 404", "permission denied", "invalid username or password", "access denied",
    "authentication required", "repository not found", "not found",
    "does not appear to be a git repository", "does not exist", "no such file or directory",
    "couldn't find remote ref",
)
# Our own side failed (disk, local repository): the host is not to blame, nor praised.
_LOCAL = ("no space left on device", "read-only file system", "cannot lock ref",
          "unable to create", "disk quota exceeded")


def host_of(url: str) -> str:
    """The record name of a repository URL: ``host`` or ``host:port``, lower case, no userinfo."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return "other"
    return f"{host}:{parts.port}" if parts.port else host


def verdict(err: GitError) -> str:
    """What a failed git command says about its host: "down" (no answer), "broken" (a bad
    answer), "answered" (a refusal: healthy) or "local" (our side failed: no verdict)."""
    if isinstance(err, GitTimeout):
        return "down"
    if isinstance(err, OutputTooLarge):
        return "answered"
    text = err.stderr.lower()
    if any(s in text for s in _LOCAL):
        return "local"
    if any(s in text for s in _NO_ANSWER):
        return "down"
    if any(s in text for s in _ANSWERED):
        return "answered"
    return "broken"


class HostSkipped(GitError):
    """Not sent to the host: its breaker is open, or it was unreachable moments ago."""

    def __init__(self, command: str, why: str) -> None:
        super().__init__(command, None, "")
        self.message = why
        self.args = (why,)


class GitHosts:
    """The health records of git hosts, on a shared :class:`HealthRegistry`.

    ``on_new`` hears each host the first time it is used, with the probe to run for it (wiring
    hands it to the :class:`~modvault.sources.tracking.Prober`).
    """

    def __init__(self, registry: HealthRegistry, runner: GitRunner, probe_dir: Path, *,
                 probe_timeout: float = 10.0, probe_concurrency: int = 2,
                 max_hosts: int = 64) -> None:
        self.registry = registry
        self.max_hosts = max_hosts
        self.runner = runner
        self.probe_dir = probe_dir
        self.probe_timeout = probe_timeout
        self.on_new: Callable[[HealthRecord, Callable[[], Awaitable[tuple[bool, str]]]], None] \
            | None = None
        self._last_url: dict[str, str] = {}  # host -> repository last used there (for probes)
        # Probes do not queue behind clones in the runner's process limit; they have their own.
        self._probe_slots = asyncio.Semaphore(probe_concurrency)

    def record(self, url: str) -> HealthRecord | None:
        """The record of ``url``'s host (created on first use); None when it goes untracked."""
        name = host_of(url)
        rec = self.registry.records.get(name)
        if rec is None:
            if (len(self._last_url) >= self.max_hosts
                    or len(self.registry.records) >= self.registry.max_records):
                return None
            rec = self.registry.get(name, KIND)
            publish_state(rec)
            if self.on_new is not None:
                self.on_new(rec, functools.partial(self.probe, rec.name))
        elif rec.kind != KIND:
            return None  # a proxy or database of that name: not ours to feed
        self._last_url[rec.name] = url
        return rec

    def records(self) -> list[HealthRecord]:
        return [r for r in self.registry.records.values() if r.kind == KIND]

    def _feed(self, rec: HealthRecord, err: GitError | None, seconds: float,
              latency: bool) -> None:
        if err is None:
            self.registry.success(rec, seconds if latency else None)
            return
        found = verdict(err)
        if found == "answered":
            self.registry.success(rec)
        elif found != "local":
            self.registry.failure(rec, self.runner.redact(err.message), answered=found != "down")

    async def call(self, url: str, command: str, op: Callable[[], Awaitable[T]], *,
                   latency: bool, phase: str) -> T:
        """Run ``op`` (one git command that talks to ``url``'s host) under the host's breaker.

        ``latency``: its duration is a latency sample (``ls-remote``; not ``fetch``, whose time
        grows with the repository). Raises :class:`HostSkipped` at once when the host is skipped.
        """
        rec = self.record(url)
        if rec is None:
            return await op()
        if not self.registry.allow(rec):
            metrics.UPSTREAM_SKIPPED.labels(rec.name).inc()
            raise HostSkipped(command, self.registry.why_skipped(rec))
        started = time.perf_counter()
        try:
            result = await op()
        except GitError as err:
            self._feed(rec, err, time.perf_counter() - started, latency)
            if verdict(err) == "down":
                self.registry.remember_unreachable(rec, self.runner.redact(err.message))
            raise
        seconds = time.perf_counter() - started
        self._feed(rec, None, seconds, latency)
        metrics.UPSTREAM_PHASE.labels(rec.name, phase).observe(seconds)
        return result

    async def probe(self, name: str) -> tuple[bool, str]:
        """``git ls-remote`` of the repository last used on host ``name``; feeds its record."""
        url = self._last_url.get(name)
        rec = self.registry.records.get(name)
        if url is None or rec is None:
            return False, "never used"
        async with self._probe_slots:
            started = time.perf_counter()
            try:
                git_dir = await probe_repo(self.runner, self.probe_dir, bounded=False)
                await self.runner.run(["ls-remote", "-q", "--end-of-options", url],
                                      git_dir=git_dir, timeout=self.probe_timeout, bounded=False)
            except GitError as err:
                self._feed(rec, err, time.perf_counter() - started, True)
                metrics.UPSTREAM_PROBES.labels(name, "error").inc()
                return verdict(err) in ("answered", "local"), err.message
        seconds = time.perf_counter() - started
        self._feed(rec, None, seconds, True)
        metrics.UPSTREAM_PHASE.labels(name, "total").observe(seconds)
        metrics.UPSTREAM_PROBES.labels(name, "ok").inc()
        return True, "ls-remote answered"

    async def readiness(self, idle: float) -> tuple[bool, str]:
        """Is some git host used within ``idle`` seconds reachable now? (Nothing used yet: yes.)
        A host whose last word was a failure is asked once more, right now."""
        now = self.registry.clock()
        used = [r for r in self.records() if r.last_used is not None and now - r.last_used <= idle]
        if not used:
            return True, "no git host used yet"
        reasons: list[str] = []
        for rec in sorted(used, key=lambda r: -(r.last_success or 0.0)):
            if rec.state is not State.CLOSED and not self.registry.allow(rec, use=False):
                reasons.append(self.registry.why_skipped(rec))
                continue
            failed_last = rec.last_failure is not None and (
                rec.last_success is None or rec.last_failure > rec.last_success)
            if rec.state is State.CLOSED and not failed_last and not rec.unreachable(now):
                return True, f"git host {rec.name} answered"
            ok, why = await self.probe(rec.name)
            if ok and rec.state is not State.OPEN:
                return True, f"git host {rec.name}: {why}"
            reasons.append(f"git host {rec.name}: {why}")
        return False, "; ".join(reasons)
