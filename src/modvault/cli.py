"""The `modvault` command: `modvault serve` starts the proxy on granian, in-process."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import os
import sys
from pathlib import Path

from modvault import __version__
from modvault.auth.cli import add_auth_commands, add_serve_flags, run_auth_command, serve_flags
from modvault.config import SETTINGS_ENV, ConfigError, Settings, load_settings
from modvault.sources.redact import redact_text

# `modvault serve` becomes granian's supervisor, whose memory every worker is forked from and which
# stays resident beside them: it imports what serving needs to start (config, startup checks,
# logs, granian), never the other commands (httpx, cryptography, the sumdb and ops modules)
# nor the app itself, which each worker imports (bench/bench_proxy.py measures the RSS).
# Where the private checksum databases and the attestation key live (sumdb/private.py PRIVATE_DIR,
# supply/attestkey.py KEY_FILE; tests/unit/test_cli_memory.py keeps them equal).
PRIVATE_SUMDB_DIR = ".modvault/sumdb-private"
ATTESTATION_KEY_FILE = ".modvault/attestation/key.pem"
HTTP1_BUFFER_BYTES = 256 * 1024 + 8192


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
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    from modvault import startup
    from modvault.cache.coordination.state import changes_file_held
    from modvault.observability.logs import emit, granian_log_config

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
    kwargs: dict[str, object] = {}
    if settings.tls_cert:
        kwargs["ssl_cert"] = Path(settings.tls_cert)
        kwargs["ssl_key"] = Path(settings.tls_key)
    if settings.process_model == "single":  # no supervisor: server/embedded.py
        from modvault.server.embedded import serve_single

        try:
            with changes_file_held(settings.data_dir):
                return serve_single(
                    settings, lambda: startup.when_listening(
                        settings.host, settings.port, lambda: emit("info", "modvault", line)),
                    HTTP1_BUFFER_BYTES,
                    (Path(settings.tls_cert), Path(settings.tls_key)) if settings.tls_cert else None)
        finally:
            if listen_lock is not None:
                listen_lock.release()
    server = Granian(
        "modvault.server.app:create_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        workers=settings.workers,
        log_enabled=True,
        log_level=settings.log_level,  # type: ignore[arg-type]
        log_dictconfig=granian_log_config(),  # one format: JSON lines, granian's included
        # SIGTERM: in-flight answers get shutdown_timeout seconds, then workers are killed.
        workers_kill_timeout=max(1, math.ceil(settings.shutdown_timeout)),
        log_access=False,
        websockets=False,
        # Not task_impl=rust: it gave ~17% more small-body req/s here, but with granian 2.8.7 a
        # request coroutine that awaits after catching an exception from an awaited Task/Future
        # is closed (GeneratorExit), which breaks fallbacks such as list-from-store.
        # A worker that dies (OOM killer, crash) is respawned, logged and counted; one that dies
        # again within 5.5 s of its respawn is a crash loop and granian stops the server.
        # uvloop when installed (a dependency on Linux): ~20% less CPU per cached request than
        # asyncio's loop here (bench/README.md). Named, not "auto", which would prefer any other
        # loop package that happens to be installed.
        loop=Loops.uvloop if importlib.util.find_spec("uvloop") is not None else Loops.asyncio,
        respawn_failed_workers=True,
        respawn_interval=1.0,
        # Connection slots per worker; the idle ones are cut by server/connreaper.py.
        backpressure=settings.max_connections,
        backlog=max(1024, settings.max_connections),
        # Per HTTP/1 connection, what hyper may buffer (queued response chunks, request head):
        # granian's default (~408 KiB) let 64 clients of a 100 MiB zip add ~22 MiB to the worker.
        # 264 KiB keeps granian's 128 KiB file chunks flowing: 5 MiB zips at 16 connections, 4
        # interleaved rounds, MB/s 1405 vs 1435 without a cap, but 1250 at 136 KiB and 1185 at 72.
        http1_settings=HTTP1Settings(max_buffer_size=HTTP1_BUFFER_BYTES),
        **kwargs,  # type: ignore[arg-type]
    )
    # The serving line is printed once the port accepts connections, not before.
    server.on_startup(lambda: startup.when_listening(settings.host, settings.port,
                                                     lambda: emit("info", "modvault", line)))
    server.on_startup(lambda: install_death_counter(settings.data_dir))
    try:
        with changes_file_held(settings.data_dir):  # the workers' shared change token
            server.serve()
    finally:
        if listen_lock is not None:
            listen_lock.release()
    return 0


def install_death_counter(data_dir: str) -> None:
    from modvault.observability.workers import install

    install(data_dir)


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
