"""The `modvault` command: `modvault serve` checks the settings, then serves (server/)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from modvault import __version__
from modvault.auth.cli import add_auth_commands, add_serve_flags, run_auth_command, serve_flags
from modvault.config import SETTINGS_ENV, ConfigError, Settings, load_settings
from modvault.sources.redact import redact_text

# `modvault serve` imports what starting needs (config, startup checks, logs), never the other
# commands (httpx, cryptography, the sumdb and ops modules): with process_model = "single" this
# process goes on to serve, and what it loaded stays resident (bench/bench_proxy.py measures the
# RSS); with "workers" it becomes server/supervisor.py, a fresh interpreter.
# Where the private checksum databases and the attestation key live (sumdb/private.py PRIVATE_DIR,
# supply/attestkey.py KEY_FILE; tests/unit/test_cli_memory.py keeps them equal).
PRIVATE_SUMDB_DIR = ".modvault/sumdb-private"
ATTESTATION_KEY_FILE = ".modvault/attestation/key.pem"


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the proxy")
    p.add_argument("--config", metavar="FILE", help="TOML settings file (MODVAULT_CONFIG)")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (MODVAULT_LISTEN)")
    p.add_argument("--data-dir", metavar="DIR", help="where artifacts are kept (MODVAULT_DATA_DIR)")
    p.add_argument("--upstream", metavar="LIST",
                   help="upstream list in GOPROXY syntax (MODVAULT_UPSTREAM)")
    p.add_argument("--offline", action="store_const", const=True, default=None,
                   help="serve only what is stored (MODVAULT_OFFLINE)")
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate: serve HTTPS + h2")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key (PKCS#8)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (MODVAULT_WORKERS)")
    p.add_argument("--log-level", metavar="LEVEL", help="debug|info|warning|error")
    p.add_argument("--private", metavar="PATTERNS",
                   help="GOPRIVATE-style patterns of private modules (MODVAULT_PRIVATE)")
    p.add_argument("--noproxy", metavar="PATTERNS",
                   help="modules fetched only from version control (MODVAULT_NOPROXY)")
    p.add_argument("--nosumdb", metavar="PATTERNS",
                   help="modules not checked against the public checksum database (MODVAULT_NOSUMDB)")
    p.add_argument("--sumdb", metavar="'NAME+HASH+KEY [URL]'", action="append",
                   help="checksum database to proxy and verify against; repeatable (MODVAULT_SUMDB, "
                        "';'-separated)")
    p.add_argument("--sumdb-verify", action=argparse.BooleanOptionalAction, default=None,
                   help="verify new artifacts against the checksum database (MODVAULT_SUMDB_VERIFY)")
    p.add_argument("--private-sumdb", metavar="NAME",
                   help="private checksum database to host (MODVAULT_PRIVATE_SUMDB)")
    add_serve_flags(p)


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        "listen": args.listen,
        "data_dir": args.data_dir,
        "upstream": args.upstream,
        "offline": args.offline,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "workers": args.workers,
        "log_level": args.log_level,
        "private": args.private,
        "noproxy": args.noproxy,
        "nosumdb": args.nosumdb,
        "sumdb": args.sumdb,
        "sumdb_verify": args.sumdb_verify,
        "private_sumdb": args.private_sumdb,
        **serve_flags(args),
    }


def serve(settings: Settings) -> int:
    from modvault import startup
    from modvault.observability.logs import emit

    for name in startup.unknown_variables(os.environ, settings):
        emit("warning", "modvault.config", f"{name} names no setting and is ignored "
             f"(settings are listed in the README)")
    settings = startup.absolute_paths(settings)
    startup.check_data_dir(settings.data_dir)
    listen_lock = startup.claim_listen_address(settings)
    _check_private_sumdb(settings)
    _check_attestation_key(settings)
    os.environ[SETTINGS_ENV] = settings.to_json()
    line = startup.serving_line(settings, __version__)
    if settings.process_model == "single":  # no supervisor: this process serves
        from modvault.server.embedded import serve_here

        try:
            return serve_here(settings, lambda: emit("info", "modvault", line))
        finally:
            if listen_lock is not None:
                listen_lock.release()
    _become_supervisor(settings, line, listen_lock.fd if listen_lock is not None else None)
    return 1  # not reached: exec replaced this process


def _become_supervisor(settings: Settings, line: str, lock_fd: int | None) -> None:
    """Replace this process with server/supervisor.py, which starts the workers.

    The supervisor stays resident for as long as the server runs, so it is a fresh interpreter
    with only the standard library (``-I -S``), not this one with the settings, start-up checks
    and command line loaded. It keeps this process's pid (and so its process group and its place
    under systemd) and the listen address's lock."""
    import signal

    from modvault.observability.audit import mask
    from modvault.server import supervisor

    if not hasattr(signal, "sigtimedwait"):  # macOS, for one
        raise ConfigError("process_model: 'workers' needs a system with sigtimedwait (Linux); "
                          "use process_model = 'single' here")
    if lock_fd is not None:
        os.set_inheritable(lock_fd, True)
    spec = {
        "workers": settings.workers,
        "shutdown_timeout": settings.shutdown_timeout,
        "respawn_interval": 1.0,
        "deaths_file": str(Path(settings.data_dir) / supervisor.DEATHS_FILE),
        "serving_line": mask(line),  # as observability.logs.emit would log it
        "lock_fd": lock_fd,
    }
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    worker = [sys.executable, "-m", "modvault.server.worker"]
    script = _compiled(supervisor.__file__)
    if script != supervisor.__file__:
        spec["own_script"] = 1  # its own copy: it removes it once loaded
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", script,
                                  *supervisor.spec_argv(spec, worker)])
    finally:  # only reached when exec failed
        if script != supervisor.__file__:
            import shutil

            shutil.rmtree(os.path.dirname(script), ignore_errors=True)


def _compiled(source: str) -> str:
    """``source`` compiled to bytecode in a new private directory (``mkdtemp``: mode 0700, a
    name nobody could have chosen first), or ``source`` itself when that cannot be written.

    A script given as source is compiled at every start, and the compiler's garbage stays
    resident in the supervisor for the server's life (0.9 MiB of its 9.5); bytecode runs as it
    is. Not kept under the data directory: code run from there could be planted by anyone who
    can write artifacts, and a server must never execute what its data directory holds."""
    import py_compile
    import shutil
    import tempfile

    try:
        where = tempfile.mkdtemp(prefix="modvault-supervisor-")
    except OSError:
        return source
    target = os.path.join(where, "supervisor.pyc")
    try:
        py_compile.compile(source, cfile=target, doraise=True)
    except (OSError, py_compile.PyCompileError):
        shutil.rmtree(where, ignore_errors=True)
        return source
    return target


def _check_private_sumdb(settings: Settings) -> None:
    """A configured private database must exist before any worker starts."""
    if not settings.private_sumdb and not (Path(settings.data_dir) / PRIVATE_SUMDB_DIR).is_dir():
        return  # none named, none created: nothing to check (and nothing heavy imported)
    from modvault.sumdb.private import PrivateSumdb, PrivateSumdbError, check_signing_keys
    from modvault.wiring import build_store, private_sumdb_name

    name = private_sumdb_name(settings)
    if not name:
        return

    async def check() -> None:
        store = build_store(settings)
        try:
            db = PrivateSumdb.open(Path(settings.data_dir), name, store)
            # The log is read here only from a local store: a network client (obstore's runtime
            # threads) started in this process would not survive the fork into granian's workers.
            # Each worker reads (and checks) the log from the bucket on first use.
            if settings.store == "fs":
                await db.refresh()
        finally:
            await store.aclose()

    try:
        if settings.store == "s3":
            check_signing_keys(Path(settings.data_dir), name)
        else:
            asyncio.run(check())
    except PrivateSumdbError as exc:
        raise ConfigError(f"private_sumdb: {exc} (create it with `modvault sumdb init {name}`)") from None


def _check_attestation_key(settings: Settings) -> None:
    """An attestation key that exists must load before any worker starts."""
    if not (Path(settings.data_dir) / ATTESTATION_KEY_FILE).exists():
        return  # never created (`modvault attest init`): nothing to load
    from modvault.supply.attestkey import AttestationKeyError, load_key

    try:
        load_key(settings.data_dir)
    except AttestationKeyError as exc:
        raise ConfigError(f"attestation key: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modvault", description="A caching Go module proxy.")
    parser.add_argument("--version", action="version", version=f"modvault {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["serve"]:  # see the note at the top: serve imports no other command
        args = parser.parse_args(argv)
    else:
        args, code = _other_command(parser, sub, argv)
        if code is not None:
            return code
    try:
        settings = load_settings(config_file=args.config, flags=_flags(args))
        if args.command == "serve":
            return serve(settings)
    except ConfigError as exc:
        if args.command == "serve":  # serve speaks JSON lines only, this line included
            from modvault.observability.logs import emit

            emit("error", "modvault", f"cannot start: {redact_text(str(exc))}")
        else:
            print(f"modvault: configuration error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    """The ``modvault`` command and ``python -m modvault``: ``main`` and then leave at once.

    A finished command exits without the interpreter's finalization: native runtimes some commands
    load (obstore's threads, for the S3 store) could abort the process while it was torn down, after
    the command had done its work (seen as SIGABRT with complete output, no Python frame left).
    Files are closed by then; what Python and logging still buffer is flushed first."""
    code = main()
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # output that could not be written is a failure (e.g. a closed pipe)
    os._exit(code)


def _other_command(parser: argparse.ArgumentParser,
                   sub: argparse._SubParsersAction[argparse.ArgumentParser],
                   argv: list[str] | None) -> tuple[argparse.Namespace, int | None]:
    from modvault.ops.client_cli import add_client_commands
    from modvault.ops.store_cli import add_bundle_commands, add_store_commands, run_ops_command
    from modvault.sumdb.admin import add_sumdb_commands, run_sumdb_command
    from modvault.supply.commands import add_supply_commands, run_supply_command

    add_sumdb_commands(sub)
    add_store_commands(sub)
    add_client_commands(sub)
    add_bundle_commands(sub)
    add_supply_commands(sub)
    add_auth_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "sumdb":
        return args, run_sumdb_command(args)
    if hasattr(args, "auth_handler"):
        return args, run_auth_command(args)
    if hasattr(args, "ops_handler"):
        return args, run_ops_command(args)
    if args.command in ("attest", "sbom"):
        return args, run_supply_command(args)
    return args, None


if __name__ == "__main__":
    sys.exit(main())
