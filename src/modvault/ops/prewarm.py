"""Prewarm a running modvault: resolve the module graph through it and fetch every artifact.

Starting from targets (see :mod:`modvault.ops.targets`), each module version's ``.mod`` is fetched
from the server and its requirements are followed transitively (what ``go mod download all`` may ask
for, before graph pruning); ``.info``, ``.mod`` and ``.zip`` of every version are fetched with at most
``jobs`` requests at a time. Zips are streamed and counted, never held in memory. The server's
``Cache-Status`` header tells what it already had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from modvault.module import semver
from modvault.module.errors import ModuleError
from modvault.module.modfile import parse_lax
from modvault.module.path import check, escape_path, escape_version
from modvault.ops.targets import Target, TargetError, from_gomod, from_gosum, from_lines, gowork_uses
from modvault.ops.targets import kind_of as target_kind

MAX_ERROR = 300


@dataclass
class VersionOutcome:
    target: Target
    fetched: int = 0  # artifacts the server had to fetch
    cached: int = 0  # artifacts the server already held
    bytes: int = 0
    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {"Path": self.target.module, "Version": self.target.version, "Fetched": self.fetched,
                "Cached": self.cached, "Bytes": self.bytes, "Error": self.error or None}


@dataclass
class PrewarmReport:
    outcomes: list[VersionOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[VersionOutcome]:
        return [o for o in self.outcomes if o.error]

    def to_json(self) -> dict[str, object]:
        return {"Versions": len(self.outcomes),
                "Fetched": sum(o.fetched for o in self.outcomes),
                "Cached": sum(o.cached for o in self.outcomes),
                "Bytes": sum(o.bytes for o in self.outcomes),
                "Failed": len(self.failed), "Seconds": round(self.seconds, 3),
                "Items": [o.to_json() for o in self.outcomes]}


class Progress:
    """Reports progress: a bar on a terminal (tqdm), plain lines otherwise, nothing for --json."""

    def __init__(self, mode: str, err: TextIO) -> None:
        self.mode = mode
        self.err = err
        self.bar: Any = None
        self.done = self.total = self.fetched = self.cached = self.bytes = 0
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=0, unit="mod", file=err, dynamic_ncols=True, desc="prewarm")

    def discovered(self, n: int = 1) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def finished(self, o: VersionOutcome) -> None:
        self.done += 1
        self.fetched += o.fetched
        self.cached += o.cached
        self.bytes += o.bytes
        if self.bar is not None:
            from modvault.ops.units import format_bytes

            self.bar.set_postfix_str(
                f"fetched={self.fetched} cached={self.cached} {format_bytes(self.bytes)}",
                refresh=False)
            self.bar.update(1)
        elif self.mode == "lines":
            state = f"FAILED: {o.error}" if o.error else f"{o.fetched} fetched, {o.cached} cached"
            print(f"[{self.done}/{self.total}] {o.target} {state}", file=self.err, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _reason(resp: httpx.Response) -> str:
    text = resp.text.strip().splitlines()
    return f"{resp.status_code} {text[0][:MAX_ERROR] if text else resp.reason_phrase}"


class Prewarmer:
    def __init__(self, client: httpx.AsyncClient, *, jobs: int = 8, transitive: bool = True,
                 progress: Progress | None = None) -> None:
        self.client = client
        self.sem = asyncio.Semaphore(max(1, jobs))
        self.transitive = transitive
        self.progress = progress or Progress("none", sys.stderr)
        self.seen: set[Target] = set()
        self.outcomes: list[VersionOutcome] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, targets: list[Target]) -> PrewarmReport:
        started = time.monotonic()
        for t in targets:
            self._spawn(t)
        while self.tasks:
            await asyncio.gather(*list(self.tasks))
        self.progress.close()
        order = {t: i for i, t in enumerate(targets)}
        self.outcomes.sort(key=lambda o: (order.get(o.target, len(order)), o.target))
        return PrewarmReport(self.outcomes, time.monotonic() - started)

    def _spawn(self, t: Target) -> None:
        if t in self.seen:
            return
        self.seen.add(t)
        self.progress.discovered()
        task = asyncio.get_running_loop().create_task(self._one(t))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _get(self, path: str, out: VersionOutcome, *, stream: bool = False) -> bytes | None:
        """GET one artifact; counts it; returns the body (None for a streamed zip or an error)."""
        async with self.sem:
            try:
                async with self.client.stream("GET", path) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        out.error = f"{path.rsplit('/', 1)[-1]}: {_reason(resp)}"
                        return None
                    body = b""
                    if stream:
                        async for chunk in resp.aiter_raw(256 * 1024):
                            out.bytes += len(chunk)
                    else:
                        body = await resp.aread()
                        out.bytes += len(body)
                    if "hit" in resp.headers.get("cache-status", "").split(";")[-1]:
                        out.cached += 1
                    else:
                        out.fetched += 1
                    return body
            except httpx.HTTPError as exc:
                out.error = f"{path.rsplit('/', 1)[-1]}: {type(exc).__name__}: {str(exc)[:MAX_ERROR]}"
                return None

    async def _one(self, t: Target) -> None:
        out = VersionOutcome(t)
        try:
            await self._fetch_version(t, out)
        finally:
            self.outcomes.append(out)
            self.progress.finished(out)

    async def _resolve(self, emod: str, query: str, out: VersionOutcome) -> str | None:
        """A query to a version as the go command resolves it: ``latest`` is the highest release in
        ``list`` (else the highest pre-release, else ``@latest``); anything else is a .info query."""
        if query == "latest":
            listed = await self._get(f"/{emod}/@v/list", out)
            if listed is None:
                return None
            versions = [v for v in listed.decode("utf-8", "replace").split() if semver.is_valid(v)]
            releases = [v for v in versions if not semver.is_prerelease(v)]
            pool = releases or versions
            if pool:
                return semver.sort_versions(pool)[-1]
            path = f"/{emod}/@latest"
        else:
            path = f"/{emod}/@v/{escape_version(query)}.info"
        body = await self._get(path, out)
        if body is None:
            return None
        try:
            version = json.loads(body)["Version"]
            if not isinstance(version, str) or not semver.is_valid(version):
                raise ValueError(version)
        except (ValueError, KeyError, TypeError):
            out.error = f"{query}: the server's answer is not a version document"
            return None
        return version

    async def _fetch_version(self, t: Target, out: VersionOutcome) -> None:
        emod = escape_path(t.module)
        version = t.version
        try:
            check(t.module, version)
        except ModuleError:
            resolved = await self._resolve(emod, version, out)
            if resolved is None:
                return
            version = resolved
            out.target = Target(t.module, version)
            if out.target in self.seen:
                return
            self.seen.add(out.target)
        ev = escape_version(version)
        base = f"/{emod}/@v/{ev}"
        mod = await self._get(base + ".mod", out)
        if mod is None:
            return
        if self.transitive:
            try:
                for m, v in parse_lax(mod).requires:
                    self._spawn(Target(m, v))
            except ModuleError as exc:
                out.error = f"{version}.mod: {exc}"
                return
        info, _ = await asyncio.gather(self._get(base + ".info", out),
                                       self._get(base + ".zip", out, stream=True))
        del info


# -- inputs --------------------------------------------------------------------------------------

def load_targets(args: list[str], stdin: TextIO,
                 read: Callable[[Path], bytes] = lambda p: p.read_bytes()) -> list[Target]:
    """Targets from arguments: ``M@V``, ``-`` (lines on stdin), or a go.mod/go.sum/go.work/lines file."""
    out: dict[Target, None] = {}
    for arg in args:
        found: list[Target]
        if arg == "-":
            found = from_lines(stdin.read(), "stdin")
        elif "@" in arg and not os.path.exists(arg):
            from modvault.ops.targets import parse_target

            found = [parse_target(arg)]
        else:
            path = Path(arg)
            try:
                data = read(path)
            except OSError as exc:
                raise TargetError(f"{arg}: {exc.strerror}") from None
            kind = target_kind(path.name)
            if kind == "gomod":
                found = from_gomod(data, arg)
            elif kind == "gosum":
                found = from_gosum(data.decode("utf-8", "replace"), arg)
            elif kind == "gowork":
                found = []
                for use in gowork_uses(data.decode("utf-8", "replace"), arg):
                    gomod = path.parent / use / "go.mod"
                    try:
                        found += from_gomod(read(gomod), str(gomod))
                    except OSError as exc:
                        raise TargetError(f"{gomod}: {exc.strerror}") from None
            else:
                found = from_lines(data.decode("utf-8", "replace"), arg)
        for t in found:
            out[t] = None
    return list(out)


def client_for(server: str, *, timeout: float = 600.0) -> httpx.AsyncClient:
    """An HTTP client for a modvault server: token from MODVAULT_TOKEN, else .netrc ($NETRC)."""
    headers = {"user-agent": "modvault-prewarm", "accept-encoding": "identity"}
    auth: httpx.Auth | None = None
    token = os.environ.get("MODVAULT_TOKEN", "")
    if token:
        headers["authorization"] = f"Bearer {token}"
    else:
        netrc = os.environ.get("NETRC") or str(Path.home() / ".netrc")
        if os.path.isfile(netrc):
            with contextlib.suppress(Exception):
                auth = httpx.NetRCAuth(netrc)
    return httpx.AsyncClient(base_url=server.rstrip("/"), headers=headers, auth=auth,
                             timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True,
                             limits=httpx.Limits(max_connections=64))
