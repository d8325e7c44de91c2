"""The supervisor of ``process_model = "workers"``: starts the workers and respawns one that dies.

It is the process ``modvault serve`` becomes (``cli.serve`` execs it once the settings and the
start-up checks passed), and it stays resident beside the workers for as long as they serve, so
it is the bare interpreter and nothing else: run as ``python -I -S supervisor.py KEY=VALUE ...
-- WORKER ARGV`` (:func:`spec_argv`), it imports only ``os``, ``_signal``, ``sys`` and ``time``
(about 8.5 MiB resident, the interpreter's own 8.3; granian's own supervisor took about 35 MiB,
with asyncio, ssl, uvloop and the command line). ``signal`` and ``json`` are left out on purpose:
``signal`` wraps ``_signal``'s numbers in an enum, and with it come ``enum``, ``functools`` and
``collections`` (1 MiB resident); ``json`` brings ``re`` (0.5 MiB more).

Each worker is a separate ``python -m modvault.server.worker``: one granian embedded server
(server/embedded.py) on the listen address, which granian binds with ``SO_REUSEPORT``, so the
kernel spreads connections over the workers as it did over granian's.

What it does, as granian's supervisor did for the workers before:
- a worker that exits while nothing asked it to (the OOM killer, a crash) is logged as a JSON
  line, counted in ``DEATHS_FILE`` (every worker's ``/metrics`` exports the count) and respawned
  after ``respawn_interval`` seconds; one that dies again within ``CRASH_LOOP`` seconds of its
  respawn is a crash loop, and the server stops with exit status 1;
- SIGTERM or SIGINT is passed on to every worker, which stops accepting and finishes what is in
  flight (server/drain.py) within ``shutdown_timeout``; a worker still running a second after
  that is killed, and the supervisor exits 0 once every worker is gone.
A worker sends ``READY`` (SIGUSR1) once its port accepts connections; the first one to do so has
the supervisor log the "serving ..." line, once per server run. SIGHUP is logged and ignored: new
settings take a restart.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing itself is not imported at run time: 7 more modules resident
if TYPE_CHECKING:  # typeshed describes signal.py, whose functions these are
    import signal
else:  # the C module under signal.py: the same functions, on plain numbers (see above)
    import _signal as signal

CRASH_LOOP = 5.5  # seconds: a respawned worker dying within this is a crash loop (as granian)
KILL_MARGIN = 1.0  # seconds past shutdown_timeout before a stopping worker is killed
READY = signal.SIGUSR1  # from a worker: its port accepts connections
SIGNAL_NAMES: dict[int, str] = {}  # number -> name; of two (SIGABRT, SIGIOT), as signal.Signals,
for _name, _number in sorted(vars(signal).items()):  # the first in alphabetical order
    if _name.startswith("SIG") and not _name.startswith("SIG_") and isinstance(_number, int):
        SIGNAL_NAMES.setdefault(_number, _name)
WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, READY}
WORKER_ENV = "MODVAULT__WORKER"  # the worker's number, 1-based
SUPERVISOR_ENV = "MODVAULT__SUPERVISOR"  # this process's pid: a worker stops when it is gone
DEATHS_FILE = ".modvault/run/worker-deaths"  # under the data directory (observability/workers.py)


def log(level: str, msg: str, logger: str = "modvault.workers") -> None:
    """One JSON line on stderr, in the shape of observability/logs.py (which it cannot import).
    Best effort: with stderr gone (a closed pipe), the workers must still be looked after."""
    written(f'{{"ts":{round(time.time(), 3)!r},"level":{quoted(level)},"logger":{quoted(logger)},'
            f'"msg":{quoted(msg)}}}\n')


def quoted(text: str) -> str:
    """``text`` as a JSON string, as ``json.dumps`` writes it (ASCII only): RFC 8259 section 7
    escapes the quote, the backslash and the control characters; the rest of what is not ASCII
    is escaped as well (UTF-16 surrogate pairs past U+FFFF), so any stderr encoding takes it."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0x20 <= code < 0x7F:
            out.append("\\" + ch if ch in '"\\' else ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def written(text: str) -> bool:
    """Write and flush stderr; False when it cannot be written any more."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True


def write_count(path: str, count: int) -> None:
    """Best effort (the disk may be full): the count is a metric, not a record."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(f"{count}\n")
        os.replace(tmp, path)
    except OSError:
        pass


def send(pid: int, sig: int) -> bool:
    """Signal a worker; False when it is gone already (not reaped yet)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = SIGNAL_NAMES.get(sig)
        return f"killed by {name}" if name else f"killed by signal {sig}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """The workers, by number, and what to do when one of them exits."""

    def __init__(self, spec: dict[str, str], argv: list[str]) -> None:
        self.workers = int(spec["workers"])
        self.argv = argv
        self.shutdown_timeout = float(spec["shutdown_timeout"])
        self.respawn_interval = float(spec.get("respawn_interval", 1.0))
        self.crash_loop = float(spec.get("crash_loop", CRASH_LOOP))
        self.deaths_file = spec["deaths_file"]
        self.serving_line: str | None = spec.get("serving_line")
        self.pids: dict[int, int] = {}  # pid -> worker number
        self.respawned: dict[int, float] = {}  # worker number -> when it was last respawned
        self.due: dict[int, float] = {}  # worker number -> when to respawn it
        self.deaths = 0
        self.stopping = False
        self.code = 0

    def spawn(self, number: int) -> None:
        env = dict(os.environ)
        env[WORKER_ENV] = str(number)
        env[SUPERVISOR_ENV] = str(os.getpid())
        try:
            # The worker starts with no signal blocked (this process blocks those it waits for).
            pid = os.posix_spawn(self.argv[0], self.argv, env, setsigmask=set())
        except OSError as exc:  # out of processes or memory: as if it had died at once
            self.died(number, f"not started: {exc.strerror or exc}")
            return
        self.pids[pid] = number

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        write_count(self.deaths_file, 0)  # per server run
        for number in range(1, self.workers + 1):
            self.spawn(number)
        while self.pids or (self.due and not self.stopping):
            now = time.monotonic()
            for number, when in sorted(self.due.items()):
                if when <= now and not self.stopping:
                    del self.due[number]
                    self.respawned[number] = now
                    self.spawn(number)
            wait = min([w - now for w in self.due.values()] + [1.0])
            info = signal.sigtimedwait(WATCHED, max(0.01, wait))
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                self.stop(info.si_signo)
            elif info is not None and info.si_signo == signal.SIGHUP:
                log("warning", "SIGHUP ignored: modvault reloads nothing; restart it to apply "
                               "new settings")
            elif (info is not None and info.si_signo == READY and info.si_pid in self.pids
                  and self.serving_line is not None and not self.stopping):
                log("info", self.serving_line, logger="modvault")
                self.serving_line = None  # once per server run
            self.reap()
        return self.code

    def reap(self) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.pids.clear()
                return
            if pid == 0:
                return
            number = self.pids.pop(pid, None)
            if number is not None and not self.stopping:
                self.died(number, describe_exit(status))

    def died(self, number: int, how: str) -> None:
        self.deaths += 1
        write_count(self.deaths_file, self.deaths)
        now = time.monotonic()
        if now - self.respawned.get(number, -self.crash_loop - 1) <= self.crash_loop:
            log("error", f"worker-{number} exited unexpectedly ({how}) again within "
                         f"{self.crash_loop:g}s of its respawn: a crash loop, stopping the server")
            self.code = 1
            self.stop(None)
            return
        log("error", f"worker-{number} exited unexpectedly ({how}, death {self.deaths} since "
                     f"start); respawning it")
        self.due[number] = now + self.respawn_interval

    def stop(self, sig: int | None) -> None:
        """Pass the signal on, wait for the workers' drain, kill what outlives its deadline."""
        if self.stopping:
            return
        self.stopping = True
        self.due.clear()
        for pid in list(self.pids):
            send(pid, sig or signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + KILL_MARGIN
        while self.pids:
            self.reap()
            left = deadline - time.monotonic()
            if not self.pids or left <= 0:
                break
            signal.sigtimedwait({signal.SIGCHLD}, min(left, 0.5))
        for pid in list(self.pids):
            send(pid, signal.SIGKILL)
        while self.pids:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.pids.pop(pid, None)


def spec_argv(spec: dict[str, object], worker: list[str]) -> list[str]:
    """The supervisor's arguments: ``KEY=VALUE`` for each setting that is not None, ``--``, then
    the worker's command line. (Arguments, not JSON: parsing JSON would bring ``re``.)"""
    for key in spec:
        if "=" in key or key.startswith("-"):
            raise ValueError(f"not a setting name: {key!r}")
    return [f"{key}={value}" for key, value in spec.items() if value is not None] + ["--", *worker]


def parse_argv(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """What :func:`spec_argv` made: (the settings, the worker's command line)."""
    if "--" not in args:
        raise SystemExit("usage: supervisor.py KEY=VALUE ... -- WORKER ARGV")
    cut = args.index("--")
    spec = dict(arg.partition("=")[::2] for arg in args[:cut])
    return spec, args[cut + 1:]


def main(argv: list[str]) -> int:
    spec, worker = parse_argv(argv[1:])
    if spec.get("own_script") == "1":  # cli compiled this copy for this process: loaded now
        try:
            os.unlink(argv[0])
            os.rmdir(os.path.dirname(argv[0]))
        except OSError:
            pass
    lock_fd = int(spec.get("lock_fd", "-1"))
    if lock_fd >= 0:
        # The listen address's lock stays held here, and is not handed on to the workers.
        os.set_inheritable(lock_fd, False)
    return Supervisor(spec, worker).run()


if __name__ == "__main__":
    status = main(sys.argv)
    written("")  # then os._exit: the interpreter's own flush of a stderr that is gone (a
    os._exit(status)  # closed pipe) would turn the status into 120
