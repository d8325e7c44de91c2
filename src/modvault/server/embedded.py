"""One server process: granian's embedded server, on this process's own event loop.

It is the whole server with ``process_model = "single"``, and each worker of ``"workers"``
(server/worker.py, started by server/supervisor.py). granian's embedded server runs the RSGI
worker inside the running asyncio loop, with no process of granian's beside it. Done here: the
serving line once the port accepts; SIGTERM and SIGINT stop accepting, in-flight answers are
finished (server/drain.py, which then ends the process) and ``shutdown_timeout`` is the hard
deadline; a server that stops on its own (the app failed to start, or its serving task died)
exits with status 1. Nothing is respawned here: that is the supervisor's job, or with
``"single"`` the process manager's (systemd ``Restart=``, a container runtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modvault.config import Settings

if TYPE_CHECKING:
    from modvault.server.app import App

LOG = logging.getLogger("modvault.server")
# Per HTTP/1 connection, what hyper may buffer (queued response chunks, request head): granian's
# default (~408 KiB) let 64 clients of a 100 MiB zip add ~22 MiB to the worker. 264 KiB keeps
# granian's 128 KiB file chunks flowing: 5 MiB zips at 16 connections, 4 interleaved rounds, MB/s
# 1405 vs 1435 without a cap, but 1250 at 136 KiB and 1185 at 72.
HTTP1_BUFFER_BYTES = 256 * 1024 + 8192


class _Unsaid(logging.Filter):
    """granian warns at every start that its embedded server is experimental: it is what modvault
    serves with, in every process model, and is tested as such (tests/e2e)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Embedded server is experimental")


def serve_here(settings: Settings, accepting: Callable[[], None]) -> int:
    """Serve from this process until stopped; ``accepting`` is called (in a thread) once the port
    accepts connections: the serving line is true from then on."""
    from modvault import startup
    from modvault.cache.coordination.state import changes_file_held

    def on_listening() -> None:
        startup.when_listening(settings.host, settings.port, accepting)

    tls = (Path(settings.tls_cert), Path(settings.tls_key)) if settings.tls_cert else None
    with changes_file_held(settings.data_dir):  # the change token that workers share
        return serve_embedded(settings, on_listening, tls)


def server_options(settings: Settings, tls: tuple[Path, Path] | None) -> dict[str, Any]:
    """How granian's server is set up for modvault: every server process, and the benchmark's
    ceiling (bench/granian_ceiling.py), which must run on the same server to be one."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    return {
        "address": settings.host,
        "port": settings.port,
        "interface": Interfaces.RSGI,
        "http": HTTPModes.auto,
        "websockets": False,
        # task_impl stays asyncio (the default), not rust: it gave ~17% more small-body req/s
        # here, but with granian 2.8.7 a request coroutine that awaits after catching an
        # exception from an awaited Task/Future is closed (GeneratorExit), which breaks
        # fallbacks such as list-from-store.
        # Connection slots per process; the idle ones are cut by server/connreaper.py.
        "backpressure": settings.max_connections,
        "backlog": max(1024, settings.max_connections),
        "http1_settings": HTTP1Settings(max_buffer_size=HTTP1_BUFFER_BYTES),
        "ssl_cert": tls[0] if tls else None,
        "ssl_key": tls[1] if tls else None,
    }


def serve_embedded(settings: Settings, on_listening: Callable[[], None],
                 tls: tuple[Path, Path] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (exit status 0) or until the server stops on its own (1)."""
    from granian.server.embed import Server

    from modvault.observability.logs import granian_log_config
    from modvault.server import scheduling
    from modvault.server.app import create_app

    stop_asked = False
    drained = asyncio.Event()

    def app_factory() -> App:
        app = create_app()
        scheduling.install(app)  # prebuilt answers straight from granian's scheduler
        app.drain.leave = drained.set  # drained: return from the loop (no os._exit)
        return app

    server = Server(
        app_factory,
        factory=True,
        log_enabled=True,
        log_level=settings.log_level,  # type: ignore[arg-type]
        log_dictconfig=granian_log_config(),
        log_access=False,
        **server_options(settings, tls),
    )
    logging.getLogger("_granian").addFilter(_Unsaid())
    server.on_startup(on_listening)

    def past_deadline() -> None:
        LOG.warning("shutdown_timeout (%gs) passed with answers in flight: stopping now",
                    settings.shutdown_timeout)
        leave_now(0)

    def stop(loop: asyncio.AbstractEventLoop) -> None:
        nonlocal stop_asked
        if stop_asked:
            return
        stop_asked = True
        server.stop()  # type: ignore[no-untyped-call]  # granian stops accepting; the app's Drain finishes what is in flight
        loop.call_later(settings.shutdown_timeout, past_deadline)

    async def serve_rsgi(*args: Any, **kwargs: Any) -> None:
        try:
            await Server._spawn_rsgi_worker(*args, **kwargs)
        except Exception:
            LOG.exception("the server stopped on an error")
            raise

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # A loop handler, so the app's Drain (installed later) chains in front of it and the
            # loop's wake-up fd still brings the signal here.
            loop.add_signal_handler(sig, stop, loop)
        serving = asyncio.ensure_future(
            server.serve(spawn_target=serve_rsgi))  # type: ignore[arg-type]
        waiting = asyncio.ensure_future(drained.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not stop_asked:
            waiting.cancel()
            return 1
        # Stopping: the Drain returns here once nothing is in flight (an idle HTTP/2 connection
        # may keep granian's side open: it closes with the process); past_deadline backstops.
        await waiting
        return 0

    # uvloop when installed (a dependency on Linux): ~20% less CPU per cached request than
    # asyncio's loop here (bench/README.md).
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return int(uvloop.run(main()))
    return asyncio.run(main())


def leave_now(code: int) -> None:
    """Flush the logs and exit at once, without the interpreter's finalization (granian's
    runtime threads may still run)."""
    for handler in logging.getLogger("modvault").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
