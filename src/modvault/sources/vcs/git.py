"""Running git for the direct source: bare mirrors, bounded processes, credentials kept out of sight.

One bare mirror per repository URL lives under ``<cache>/git/<sha256(url)>``. It is created once (in
a temporary directory, then renamed into place) and afterwards kept current with ``git fetch`` of
all branches and tags (``--prune``), never re-cloned. Reads (``log``, ``cat-file``, ``for-each-ref``,
``archive``) are local to the mirror. The remote's refs come from ``git ls-remote``, as the go
command reads them (cmd/go/internal/modfetch/codehost/git.go ``loadRefs``), so answers depend on the
remote as it is now, and the mirror is fetched only when its refs differ from the remote's.

Every git process:

- runs as an asyncio subprocess (never blocking the event loop), in its own process group, inside a
  semaphore that bounds how many run at once, under a timeout that kills the whole group;
- runs with ``GIT_TERMINAL_PROMPT=0`` and ``GCM_INTERACTIVE=never`` (as the go command sets them),
  stdin from /dev/null, hooks disabled (``core.hooksPath=/dev/null``) and English messages;
- otherwise inherits the environment, so the user's git configuration (``GIT_CONFIG_GLOBAL``,
  ``insteadOf`` rewrites, credential helpers, ssh settings) applies exactly as it does to the go
  command's git. ``GIT_CONFIG_GLOBAL`` is never set here.

Extra URL rewrites and per-host credentials (a .netrc file or explicit tokens) are handed to git
through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` environment variables —
never on the command line, where other local users could read them — as
``url.<base>.insteadOf`` and ``http.https://<host>/.extraHeader`` entries. Every message that
leaves this module is passed through :meth:`GitRunner.redact`, which removes the configured
secrets and any ``user:password@`` in URLs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import netrc
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from modvault.sources.vcs.hosts import GitHosts

__all__ = [
    "GitError",
    "GitMirror",
    "GitRunner",
    "GitTimeout",
    "HostCredential",
    "OutputTooLarge",
    "RemoteRefs",
    "load_netrc",
    "probe_repo",
]

LOG = logging.getLogger("modvault.vcs")

_STDERR_LIMIT = 64 << 10
_DEFAULT_STDOUT_LIMIT = 64 << 20
_CHUNK = 64 << 10
# Variables that would point git at some other repository than the one we name.
_STRIP_ENV = frozenset({
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_COMMON_DIR", "GIT_PREFIX",
    "GIT_QUARANTINE_PATH", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
})
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s'\"]*@")


@dataclass(frozen=True, slots=True)
class HostCredential:
    """A username and password (or token) for one host. Never shown by ``repr``."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"HostCredential(username={self.username!r}, password='***')"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def load_netrc(path: str | os.PathLike[str]) -> dict[str, HostCredential]:
    """Per-host credentials from a .netrc file (``machine``/``login``/``password``)."""
    try:
        parsed = netrc.netrc(os.fspath(path))
    except (OSError, netrc.NetrcParseError) as e:
        # The parse error quotes file content (possibly a password): say only where it failed.
        where = f" (line {e.lineno})" if isinstance(e, netrc.NetrcParseError) else ""
        raise ValueError(f"cannot read netrc file {os.fspath(path)}{where}") from None
    out: dict[str, HostCredential] = {}
    for host, (login, _account, password) in parsed.hosts.items():
        if host == "default" or password is None:
            continue
        out[host.lower()] = HostCredential(login or "", password)
    return out


class GitError(Exception):
    """A git command failed. ``stderr`` and ``message`` are already redacted."""

    def __init__(self, command: str, returncode: int | None, stderr: str) -> None:
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:", "remote:"))]
        detail = (fatal or lines or [f"exit status {returncode}"])[0]
        self.message = f"git {command}: {detail}"
        super().__init__(self.message)


class GitTimeout(GitError):
    """A git command ran past its deadline and was killed (with its whole process group)."""

    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(command, None, "")
        self.message = f"git {command}: timed out after {timeout:g}s"
        self.args = (self.message,)


class OutputTooLarge(GitError):
    """A git command wrote more than its output limit; it was killed."""

    def __init__(self, command: str, limit: int) -> None:
        super().__init__(command, None, "")
        self.limit = limit
        self.message = f"git {command}: output larger than {limit} bytes"
        self.args = (self.message,)


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str


class GitRunner:
    """Starts git processes: bounded in number, killed on timeout, never prompting."""

    def __init__(self, *, max_procs: int = 4, timeout: float = 300.0,
                 url_rewrites: Mapping[str, str] | None = None,
                 credentials: Mapping[str, HostCredential] | None = None,
                 git: str = "git") -> None:
        if max_procs < 1:
            raise ValueError("max_procs must be at least 1")
        self.timeout = timeout
        self.git = git
        self._sem = asyncio.Semaphore(max_procs)
        # Credentials by URL prefix: a bare host means "https://host/".
        self.credentials: dict[str, HostCredential] = {}
        for key, cred in (credentials or {}).items():
            prefix = key if "://" in key else f"https://{key}/"
            parts = urlsplit(prefix)
            prefix = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"
            if not prefix.endswith("/"):
                prefix += "/"
            self.credentials[prefix] = cred
        self.url_rewrites = dict(url_rewrites or {})
        self._secrets = self._collect_secrets()
        self._env = self._build_env()

    # --- environment and redaction -------------------------------------------------------------

    def _collect_secrets(self) -> list[str]:
        secrets: set[str] = set()
        for cred in self.credentials.values():
            if cred.password:
                secrets.add(cred.password)
                secrets.add(cred.basic_header().split(" ", 1)[1])
        for new, old in self.url_rewrites.items():
            for url in (new, old):
                parts = urlsplit(url)
                if parts.password:
                    secrets.add(parts.password)
        # Longest first, so that a secret containing another is removed whole.
        return sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` without configured secrets or URL userinfo."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _URL_USERINFO.sub(r"\1***@", text)

    def _build_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _STRIP_ENV}
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GCM_INTERACTIVE"] = "never"
        env["LC_ALL"] = "C"
        env.pop("LANGUAGE", None)
        try:
            n = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
        except ValueError:
            n = 0
        entries: list[tuple[str, str]] = []
        for new, old in self.url_rewrites.items():
            entries.append((f"url.{new}.insteadOf", old))
        for prefix, cred in sorted(self.credentials.items()):
            entries.append((f"http.{prefix}.extraHeader", f"Authorization: {cred.basic_header()}"))
        for key, value in entries:
            env[f"GIT_CONFIG_KEY_{n}"] = key
            env[f"GIT_CONFIG_VALUE_{n}"] = value
            n += 1
        if entries:
            env["GIT_CONFIG_COUNT"] = str(n)
        return env

    def credential_for_url(self, url: str) -> HostCredential | None:
        """The credential configured for ``url`` (longest matching prefix), if any."""
        parts = urlsplit(url)
        norm = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"
        best = max((p for p in self.credentials if norm.startswith(p) or norm + "/" == p),
                   key=len, default=None)
        return None if best is None else self.credentials[best]

    def credential_hosts(self) -> set[str]:
        """The hosts (``host`` or ``host:port``) that have credentials."""
        return {urlsplit(p).netloc for p in self.credentials}

    # --- running --------------------------------------------------------------------------------

    async def run(self, args: Sequence[str], *, git_dir: Path | None = None,
                  cwd: Path | None = None, stdin: bytes | None = None,
                  stdout_path: Path | None = None, limit: int = _DEFAULT_STDOUT_LIMIT,
                  timeout: float | None = None, check: bool = True,
                  bounded: bool = True) -> GitResult:
        """Run ``git -c core.hooksPath=/dev/null <args>``; raise :class:`GitError` on failure.

        ``stdout_path`` sends the output straight to a file (for archives), whose size is watched
        against ``limit``; otherwise the output is collected in memory up to ``limit`` bytes.
        With ``check=False`` a non-zero exit status is returned rather than raised.
        ``bounded=False`` skips the process limit (health probes, which have a limit of their own
        and must not wait behind long clones).
        """
        timeout = self.timeout if timeout is None else timeout
        command = self.redact(" ".join(_short_args(args)))
        env = self._env
        if git_dir is not None:
            env = dict(env, GIT_DIR=str(git_dir))
        argv = [self.git, "-c", "core.hooksPath=/dev/null", *args]
        async with self._sem if bounded else contextlib.nullcontext():
            out_file = open(stdout_path, "wb") if stdout_path is not None else None  # noqa: SIM115
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, cwd=cwd, env=env,
                    stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                    stdout=out_file if out_file is not None else asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, start_new_session=True)
            except BaseException:
                if out_file is not None:
                    out_file.close()
                raise
            try:
                async with asyncio.timeout(timeout):
                    rc, out, err = await self._communicate(proc, stdin, out_file, limit, command)
            except TimeoutError:
                _kill_group(proc)
                await _reap(proc)
                raise GitTimeout(command, timeout) from None
            except BaseException:
                _kill_group(proc)
                await _reap(proc)
                raise
            finally:
                if out_file is not None:
                    out_file.close()
        stderr = self.redact(err.decode("utf-8", "replace"))
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("git %s: exit %d", command, rc)
        if check and rc != 0:
            raise GitError(command, rc, stderr)
        return GitResult(rc, out, stderr)

    async def _communicate(self, proc: asyncio.subprocess.Process, stdin: bytes | None,
                           out_file: IO[bytes] | None, limit: int, command: str) \
            -> tuple[int, bytes, bytes]:
        async def feed() -> bytes:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin or b"")
                await proc.stdin.drain()
            proc.stdin.close()
            return b""

        async def read_err() -> bytes:
            assert proc.stderr is not None
            buf = bytearray()
            while chunk := await proc.stderr.read(_CHUNK):
                if len(buf) < _STDERR_LIMIT:
                    buf += chunk[: _STDERR_LIMIT - len(buf)]
            return bytes(buf)

        async def read_out() -> bytes:
            if out_file is not None:
                return await watch_file(out_file)
            assert proc.stdout is not None
            buf = bytearray()
            while chunk := await proc.stdout.read(_CHUNK):
                buf += chunk
                if len(buf) > limit:
                    raise OutputTooLarge(command, limit)
            return bytes(buf)

        async def watch_file(f: IO[bytes]) -> bytes:
            # git writes to the file itself; its size is checked while it runs.
            fd = f.fileno()
            exited = asyncio.ensure_future(proc.wait())
            try:
                while not exited.done():
                    if os.fstat(fd).st_size > limit:
                        raise OutputTooLarge(command, limit)
                    await asyncio.wait({exited}, timeout=0.05)
            finally:
                exited.cancel()
            if os.fstat(fd).st_size > limit:
                raise OutputTooLarge(command, limit)
            return b""

        tasks = [asyncio.ensure_future(read_out()), asyncio.ensure_future(read_err())]
        if stdin is not None:
            tasks.append(asyncio.ensure_future(feed()))
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        rc = await proc.wait()
        return rc, results[0], results[1]


def _short_args(args: Sequence[str]) -> list[str]:
    # For messages: drop option noise, keep the verb and operands.
    out = [a for a in args if a not in ("--end-of-options", "--", "-q")]
    return out[:6]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(proc.wait())


# --- the remote's refs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteRefs:
    """What ``git ls-remote`` says about a repository.

    ``refs`` is the go command's view (codehost ``loadRefs``): ``HEAD``, ``refs/heads/*`` and
    ``refs/tags/*`` mapped to commit hashes, with annotated tags peeled. ``raw`` holds the
    unpeeled values (tag objects), which is what a mirror's own refs hold.
    """

    refs: Mapping[str, str]
    raw: Mapping[str, str]
    digest: str

    @classmethod
    def parse(cls, out: str) -> RemoteRefs:
        refs: dict[str, str] = {}
        raw: dict[str, str] = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) != 2:
                continue
            h, name = f
            if name == "HEAD" or name.startswith(("refs/heads/", "refs/tags/")):
                refs[name] = h
                if not name.endswith("^{}"):
                    raw[name] = h
        for name in [k for k in refs if k.endswith("^{}")]:
            refs[name[:-3]] = refs.pop(name)
        digest = hashlib.sha256(
            "".join(f"{k} {raw[k]}\n" for k in sorted(raw)).encode()).hexdigest()
        return cls(refs, raw, digest)


# --- mirrors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blob:
    size: int
    data: bytes | None  # None when larger than the limit asked for


class GitMirror:
    """A bare mirror of one remote repository, shared by every module it holds."""

    def __init__(self, runner: GitRunner, cache_dir: Path, url: str, *,
                 refs_ttl: float = 5.0, hosts: GitHosts | None = None) -> None:
        self.runner = runner
        self.hosts = hosts  # the host's health record sees every command that talks to it
        self.url = url
        self.key = hashlib.sha256(url.encode()).hexdigest()[:40]
        self.root = cache_dir
        self.dir = cache_dir / self.key
        self.refs_ttl = refs_ttl
        self._lock = asyncio.Lock()
        self._refs: RemoteRefs | None = None
        self._refs_at = 0.0
        self._refs_task: asyncio.Task[RemoteRefs] | None = None
        self._synced_digest: str | None = None
        self.fetches = 0  # number of `git fetch` runs (for tests and benchmarks)
        self.clones = 0  # number of mirror creations

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        return parts.hostname or self.url

    # --- remote refs -----------------------------------------------------------------------

    async def remote_refs(self, *, fresh: bool = False) -> RemoteRefs:
        """The remote's refs (``git ls-remote``), reused for ``refs_ttl`` seconds; single-flight."""
        now = time.monotonic()
        if not fresh and self._refs is not None and now - self._refs_at < self.refs_ttl:
            return self._refs
        task = self._refs_task
        if task is None or task.done():
            task = asyncio.ensure_future(self._ls_remote())
            self._refs_task = task
        refs = await asyncio.shield(task)
        return refs

    async def _ls_remote(self) -> RemoteRefs:
        git_dir = self.dir if (self.dir / "objects").is_dir() else await self._probe_dir()
        args = ["ls-remote", "-q", "--end-of-options", self.url]
        if self.hosts is None:
            res = await self.runner.run(args, git_dir=git_dir)
        else:
            res = await self.hosts.call(self.url, "ls-remote",
                                        lambda: self.runner.run(args, git_dir=git_dir),
                                        latency=True, phase="total")
        refs = RemoteRefs.parse(res.stdout.decode("utf-8", "replace"))
        self._refs, self._refs_at = refs, time.monotonic()
        return refs

    async def _probe_dir(self) -> Path:
        return await probe_repo(self.runner, self.root)

    def present(self) -> bool:
        """Whether the mirror is on disk (gc may remove an idle one; the next sync clones again)."""
        return (self.dir / "objects").is_dir()

    # --- creating and updating -------------------------------------------------------------

    async def sync(self, remote: RemoteRefs) -> None:
        """Make the mirror hold every ref in ``remote`` (create it, or ``git fetch``)."""
        if self._synced_digest == remote.digest and self.present():
            return
        async with self._lock, _FileLock(self.root / f"{self.key}.lock", self.runner.timeout):
            if self._synced_digest == remote.digest and self.present():
                return
            created = False
            if not (self.dir / "objects").is_dir():
                fmt = "sha256" if any(len(h) == 64 for h in remote.raw.values()) else "sha1"
                await _init_bare(self.runner, self.dir, self.url, fmt)
                self.clones += 1
                created = True
            if await self._local_matches(remote):
                self._synced_digest = remote.digest
                return
            specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
            if "HEAD" in remote.raw:
                specs.append("+HEAD:refs/modvault/HEAD")
            started = time.monotonic()
            args = ["-c", "protocol.version=2", "fetch", "-q", "-f", "--prune", "--no-tags",
                    "--no-write-fetch-head", "--end-of-options", "origin", *specs]
            if self.hosts is None:
                await self.runner.run(args, git_dir=self.dir)
            else:
                await self.hosts.call(self.url, "fetch",
                                      lambda: self.runner.run(args, git_dir=self.dir),
                                      latency=False, phase="fetch")
            self.fetches += 1
            self._synced_digest = remote.digest
            LOG.info("%s %s (%d refs) in %.2fs", "cloned" if created else "fetched",
                     self.runner.redact(self.url), len(remote.raw), time.monotonic() - started)

    async def _local_matches(self, remote: RemoteRefs) -> bool:
        res = await self.runner.run(
            ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/", "refs/tags/",
             "refs/modvault/"], git_dir=self.dir)
        local: dict[str, str] = {}
        for line in res.stdout.decode("utf-8", "replace").splitlines():
            h, _, name = line.partition(" ")
            local[name] = h
        want = {k: v for k, v in remote.raw.items() if k != "HEAD"}
        if "HEAD" in remote.raw:
            want["refs/modvault/HEAD"] = remote.raw["HEAD"]
        return local == want

    # --- local reads -----------------------------------------------------------------------

    async def log1(self, rev: str) -> tuple[str, int] | None:
        """(full hash, committer time) of ``rev`` in the mirror, or None if it is unknown."""
        res = await self.runner.run(
            ["-c", "log.showsignature=false", "log", "--no-decorate", "-n1",
             "--format=format:%H %ct", "--end-of-options", rev, "--"],
            git_dir=self.dir, check=False)
        if res.returncode != 0:
            return None
        f = res.stdout.decode("utf-8", "replace").split()
        if len(f) < 2 or not f[1].lstrip("-").isdigit():
            return None
        return f[0], int(f[1])

    async def read_blob(self, commit: str, path: str, limit: int) -> Blob | None:
        """The blob at ``commit:path`` (None if absent or not a blob), read only up to ``limit``.

        Like ``git cat-file blob`` (what the go command runs): a symbolic link reads as its target.
        """
        spec = f"{commit}:{path}"
        if "\n" in spec:
            return None
        query = (spec + "\n").encode("utf-8", "surrogateescape")
        try:
            res = await self.runner.run(["cat-file", "--batch"], git_dir=self.dir, stdin=query,
                                        limit=limit + 256)
        except OutputTooLarge:
            res = await self.runner.run(
                ["cat-file", "--batch-check=%(objecttype) %(objectsize)"], git_dir=self.dir,
                stdin=query)
            f = res.stdout.decode("utf-8", "replace").split()
            if len(f) == 2 and f[0] == "blob" and f[1].isdigit():
                return Blob(int(f[1]), None)
            return None
        header, _, rest = res.stdout.partition(b"\n")
        f = header.decode("utf-8", "replace").split()
        # "<oid> blob <size>", or "<name> missing" / "<name> ambiguous".
        if len(f) != 3 or f[1] != "blob" or not f[2].isdigit():
            return None
        size = int(f[2])
        if size > limit:
            return Blob(size, None)
        return Blob(size, rest[:size])

    async def merged_tags(self, commit: str) -> list[str]:
        """Tags (without ``refs/tags/``) whose commits are ancestors of ``commit`` (or it)."""
        res = await self.runner.run(
            ["for-each-ref", "--format=%(refname)", f"--merged={commit}", "refs/tags/"],
            git_dir=self.dir)
        out: list[str] = []
        for line in res.stdout.decode("utf-8", "surrogateescape").splitlines():
            line = line.strip()
            if line.startswith("refs/tags/"):
                out.append(line[len("refs/tags/"):])
        return out

    async def is_ancestor(self, tag: str, commit: str) -> bool:
        res = await self.runner.run(
            ["merge-base", "--is-ancestor", "--", f"refs/tags/{tag}", commit],
            git_dir=self.dir, check=False)
        if res.returncode in (0, 1):
            return res.returncode == 0
        raise GitError("merge-base --is-ancestor", res.returncode, res.stderr)

    async def archive(self, commit: str, subdir: str, dest: Path, limit: int) -> bool:
        """``git archive --format=zip`` of ``commit`` (limited to ``subdir``) into ``dest``.

        Run as the go command runs it (codehost ``ReadZip``): ``core.autocrlf=input``,
        ``core.eol=lf`` and export attributes disabled. False when ``subdir`` matches nothing.
        Raises :class:`OutputTooLarge` past ``limit`` bytes.
        """
        attrs = self.dir / "info" / "attributes"
        const = "\n* -export-subst -export-ignore\n"
        if not attrs.is_file() or not attrs.read_text(errors="replace").endswith(const):
            attrs.parent.mkdir(exist_ok=True)
            with open(attrs, "a") as fh:
                fh.write(const)
        args = ["-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip",
                "--prefix=prefix/", "--end-of-options", commit]
        if subdir:
            args.append(subdir)
        res = await self.runner.run(args, git_dir=self.dir, stdout_path=dest, limit=limit,
                                    check=False)
        if res.returncode != 0:
            if "did not match any files" in res.stderr:
                return False
            raise GitError("archive", res.returncode, res.stderr)
        return True


async def _init_bare(runner: GitRunner, final: Path, url: str | None,
                     object_format: str = "sha1", bounded: bool = True) -> None:
    """Create a bare repository at ``final`` atomically (built aside, then renamed)."""
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        fmt = [f"--object-format={object_format}"] if object_format != "sha1" else []
        await runner.run(["init", "-q", "--bare", *fmt, str(tmp)], cwd=tmp.parent,
                         bounded=bounded)
        cfg = [("gc.autoDetach", "false"), ("maintenance.autoDetach", "false"),
               ("core.logAllRefUpdates", "false")]
        for key, value in cfg:
            await runner.run(["config", key, value], git_dir=tmp, bounded=bounded)
        if url is not None:
            await runner.run(["remote", "add", "origin", "--", url], git_dir=tmp,
                             bounded=bounded)
        info = tmp / "info"
        info.mkdir(exist_ok=True)
        # codehost ensureGitAttributes: archives must not depend on export-subst/export-ignore.
        (info / "attributes").write_text("\n* -export-subst -export-ignore\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "objects").is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


async def probe_repo(runner: GitRunner, root: Path, *, bounded: bool = True) -> Path:
    """An empty bare repository under ``root`` to run ``ls-remote`` in before a mirror exists
    (``bounded=False``: outside the process limit, for health probes)."""
    probe = root / ".probe.git"
    if not (probe / "objects").is_dir():
        await _init_bare(runner, probe, None, bounded=bounded)
    return probe


class _FileLock:
    """An exclusive flock on a file, taken without blocking the event loop (polling)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd: int | None = None

    async def __aenter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise GitTimeout(f"lock {self.path.name}", self.timeout) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        self.fd = fd
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
