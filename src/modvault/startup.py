"""Start-up checks for `modvault serve`, each ending in one clear line instead of a traceback.

- Paths in the settings are made absolute once, before anything changes directory (git runs in other
  directories; a relative data_dir would point somewhere else there).
- The data directory must exist or be creatable, be writable, and have room for a write.
- The listen address must be free. granian binds with SO_REUSEPORT, so a second process on the same
  port would be let in by the kernel and silently get half the traffic (with its own data directory).
  We refuse that unless ``allow_port_sharing`` is set: a plain bind without SO_REUSEPORT fails while
  anyone listens there, and an exclusive lock per listen address (held for the life of the process)
  closes the window between that check and granian's own bind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from modvault.config import ConfigError, Settings, env_name

PATH_SETTINGS = ("data_dir", "tls_cert", "tls_key", "upstream_ca_file", "netrc")
MIN_FREE_BYTES = 16 * 1024 * 1024
# MODVAULT_* variables that are not settings but are read on purpose.
KNOWN_VARIABLES = frozenset({"MODVAULT_CONFIG", "MODVAULT__SETTINGS_JSON"})


class StartupError(ConfigError):
    """Start-up cannot go on; the message is the one line shown to the operator."""


def absolute_paths(settings: Settings) -> Settings:
    """Every path setting resolved against the current directory, once."""
    changes = {name: os.path.abspath(os.path.expanduser(getattr(settings, name)))
               for name in PATH_SETTINGS if hasattr(settings, name) and getattr(settings, name)}
    return dataclasses.replace(settings, **changes)


def unknown_variables(environ: Mapping[str, str], settings: Settings) -> list[str]:
    """MODVAULT_* variables that name no setting (typos are otherwise silently ignored)."""
    known = {env_name(f.name) for f in dataclasses.fields(settings)} | KNOWN_VARIABLES
    return sorted(k for k in environ if k.startswith("MODVAULT_") and k not in known)


def check_data_dir(path: str) -> None:
    """Create ``path`` if needed, then prove a write works there (temp file, fsync, unlink)."""
    where = Path(path)
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"data_dir: cannot create {path}: {exc.strerror}") from None
    if not where.is_dir():
        raise StartupError(f"data_dir: {path} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".modvault-write-check-", dir=path)
    except OSError as exc:
        raise StartupError(_write_error(path, exc)) from None
    try:
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
    except OSError as exc:
        raise StartupError(_write_error(path, exc)) from None
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    free = _free_bytes(path)
    if free is not None and free < MIN_FREE_BYTES:
        raise StartupError(f"data_dir: {path}: only {free // 1024} KiB free; modvault needs at "
                           f"least {MIN_FREE_BYTES // (1024 * 1024)} MiB to store artifacts")


def _write_error(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"data_dir: {path}: no space left on the device; free some space or choose another data_dir"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"data_dir: {path} is not writable by this user (permission denied)"
    if exc.errno == errno.EROFS:
        return f"data_dir: {path} is on a read-only file system"
    return f"data_dir: cannot write in {path}: {exc.strerror}"


def _free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> OSError | None:
    """Bind (without SO_REUSEPORT) and release: the error if someone already listens there."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None


class ListenLock:
    """An exclusive lock named after the listen address, held while this process runs."""

    def __init__(self, host: str, port: int, directory: str | None = None) -> None:
        base = directory or os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        tag = hashlib.sha256(f"{host}:{port}".encode()).hexdigest()[:16]
        self.path = os.path.join(base, f"modvault-listen-{port}-{tag}.lock")
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def claim_listen_address(settings: Settings) -> ListenLock | None:
    """Refuse a port someone listens on (or another modvault is starting on); None when sharing
    is allowed."""
    host, port = settings.host, settings.port
    if getattr(settings, "allow_port_sharing", False):
        return None
    exc = port_is_free(host, port)
    if exc is not None:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"listen: {settings.listen} is already in use (another modvault or "
                               f"program listens there; set allow_port_sharing = true only to run "
                               f"several modvaults on one port on purpose)")
        if exc.errno == errno.EADDRNOTAVAIL:
            raise StartupError(f"listen: {host} is not an address of this machine")
        if exc.errno == errno.EACCES:
            raise StartupError(f"listen: port {port} needs privileges this user lacks")
        raise StartupError(f"listen: cannot bind {settings.listen}: {exc.strerror}")
    if port == 0:
        return None
    lock = ListenLock(host, port)
    try:
        got = lock.acquire()
    except OSError:
        return None  # no usable lock directory: the bind check above stands alone
    if not got:
        raise StartupError(f"listen: {settings.listen} is being claimed by another modvault "
                           f"starting right now")
    return lock


def when_listening(host: str, port: int, then: Callable[[], None], timeout: float = 60.0) -> None:
    """Call ``then`` (in a thread) once a TCP connection to host:port succeeds: the port is bound
    and accepting, so a line printed there is true."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    # The first connect by name loads the "idna" codec (getaddrinfo encodes the host with it),
    # and that import would run in the thread below while granian forks the workers: a worker
    # forked mid-import inherits the module's import lock held by a thread it does not have, and
    # hangs for good at its own first connect (an upstream fetch). Loaded here, before the fork.
    target.encode("idna")

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((target, port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.02)
                continue
            then()
            return

    threading.Thread(target=wait, name="modvault-serving-line", daemon=True).start()


def verification_state(settings: Settings) -> str:
    """What the serving line says about checksum verification."""
    from modvault.config import sumdb_settings
    from modvault.sumdb.config import parse_sumdb

    if not settings.sumdb_verify:
        return "checksum verification OFF (sumdb_verify = false)"
    dbs = [parse_sumdb(item) for item in sumdb_settings(settings)]
    if not dbs:
        return "checksum verification OFF (no database)"
    db = dbs[0]
    from modvault.sources.redact import redact_url

    where = f" at {redact_url(db.url)}" if db.url else ""
    return f"checksum verification on against {db.name}{where}"


def serving_line(settings: Settings, version: str) -> str:
    from modvault.sources.upstream_list import redact_upstream_list

    scheme = "https" if settings.tls_cert else "http"
    mode = "offline" if settings.offline else f"upstream={redact_upstream_list(settings.upstream)}"
    return (f"modvault {version} serving {scheme}://{settings.listen} data={settings.data_dir} "
            f"{mode}; {verification_state(settings)}")
