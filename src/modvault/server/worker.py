"""One worker of ``process_model = "workers"``: ``python -m modvault.server.worker``.

server/supervisor.py starts it, with the settings that ``modvault serve`` read and checked in
the environment (``SETTINGS_ENV``); it serves on the listen address beside its sibling workers
(server/embedded.py) until SIGTERM, and the supervisor respawns it if it dies.
"""

from __future__ import annotations

import os

from modvault.config import SETTINGS_ENV, Settings
from modvault.server.embedded import leave_now, serve_here
from modvault.server.supervisor import READY, SUPERVISOR_ENV

PR_SET_PDEATHSIG = 1  # prctl(2)


def stop_with_supervisor() -> int:
    """SIGTERM this worker when its supervisor is gone (killed with SIGKILL, say): a worker left
    behind would keep serving the port, with no one to stop it or to respawn its siblings.
    The supervisor's pid."""
    import ctypes
    import signal

    parent = os.environ.get(SUPERVISOR_ENV, "")
    if not parent.isdigit():
        raise SystemExit(f"{__name__} is started by the supervisor, which sets {SUPERVISOR_ENV}")
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only
    if prctl is None or prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return int(parent)  # best effort: without it, a worker outlives a killed supervisor
    if str(os.getppid()) != parent:  # the supervisor died before the call above
        raise SystemExit(f"{__name__}: the supervisor ({parent}) is gone")
    return int(parent)


def main() -> int:
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise SystemExit(f"{__name__} is started by `modvault serve`, which sets {SETTINGS_ENV}")
    supervisor = stop_with_supervisor()
    settings = Settings.from_json(raw)
    # Once the port accepts: the supervisor logs the serving line for the first worker to say so.
    return serve_here(settings, lambda: os.kill(supervisor, READY))


if __name__ == "__main__":
    leave_now(main())
