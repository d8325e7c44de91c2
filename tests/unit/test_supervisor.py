"""server/supervisor.py with real processes: stand-in workers (small Python programs) whose exits,
signals and environment the tests choose, under the supervisor run as `modvault serve` runs it
(`python -I -S supervisor.py SPEC`). The real workers are covered end to end by
tests/hardening/test_worker_death.py and tests/e2e/test_startup.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from modvault.server import supervisor
from tests.support.waits import wait_for

SERVING = "modvault 0.0 serving http://127.0.0.1:1 (a stand-in)"


def start(tmp_path: Path, worker: str, workers: int = 1, shutdown_timeout: float = 5,
          respawn_interval: float = 0.2, crash_loop: float = supervisor.CRASH_LOOP
          ) -> tuple[subprocess.Popen[str], Path]:
    deaths = tmp_path / "data" / supervisor.DEATHS_FILE
    spec: dict[str, object] = {
        "workers": workers, "shutdown_timeout": shutdown_timeout,
        "respawn_interval": respawn_interval, "crash_loop": crash_loop,
        "deaths_file": str(deaths), "lock_fd": None, "serving_line": SERVING}
    argv = supervisor.spec_argv(spec, [sys.executable, "-c", worker])
    proc = subprocess.Popen([sys.executable, "-I", "-S", supervisor.__file__, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    return proc, deaths


def lines(err: str) -> list[dict[str, str]]:
    return [json.loads(x) for x in err.splitlines() if x.startswith("{")]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


SLEEPER = """
import os, signal, sys, time
open(os.environ["MODVAULT__WORKER"] + "-" + str(os.getpid()), "w").write("")
time.sleep(0.2)  # its "port accepts": ready
os.kill(int(os.environ["MODVAULT__SUPERVISOR"]), signal.SIGUSR1)
time.sleep(600)
"""


def serving_lines(err: str) -> list[dict[str, str]]:
    return [d for d in lines(err) if d["msg"] == SERVING]


def test_each_worker_gets_its_number_and_the_first_ready_one_has_the_line_logged_once(
        tmp_path: Path) -> None:
    proc, deaths = start(tmp_path, SLEEPER, workers=3)
    try:
        assert wait_for(lambda: len(list(tmp_path.glob("[0-9]-*"))) == 3, 20)
        assert sorted(p.name.split("-")[0] for p in tmp_path.glob("[0-9]-*")) == ["1", "2", "3"]
        assert deaths.read_text() == "0\n"
        assert sorted(children(proc.pid)) == sorted(int(p.name.split("-")[1])
                                                    for p in tmp_path.glob("[0-9]-*"))
        # A respawned worker reports ready again: the line is not logged again.
        first = next(tmp_path.glob("1-*"))
        os.kill(int(first.name.split("-")[1]), signal.SIGKILL)
        assert wait_for(lambda: len(list(tmp_path.glob("1-*"))) == 2, 20)
        assert deaths.read_text() == "1\n"
        time.sleep(0.5)  # past the respawned worker's ready signal
        os.kill(proc.pid, signal.SIGHUP)  # ignored, and said so
        time.sleep(0.3)
        assert proc.poll() is None and len(children(proc.pid)) == 3
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    msgs = [d["msg"] for d in lines(err)]
    assert any(m == "worker-1 exited unexpectedly (killed by SIGKILL, death 1 since start); "
               "respawning it" for m in msgs), msgs
    assert any(m.startswith("SIGHUP ignored") for m in msgs), msgs
    assert [(d["level"], d["logger"]) for d in serving_lines(err)] == [("info", "modvault")]


def test_the_serving_line_waits_for_a_worker_that_is_ready(tmp_path: Path) -> None:
    """Nothing is logged for a worker that dies before its port accepts; the line comes with its
    respawn, once it is ready, and not before."""
    worker = """
import os, signal, sys, time
if not os.path.exists("started"):
    open("started", "w").write("")
    sys.exit(1)  # dies before it is ready
time.sleep(0.5)
open("ready", "w").write("")
os.kill(int(os.environ["MODVAULT__SUPERVISOR"]), signal.SIGUSR1)
time.sleep(600)
"""
    proc, deaths = start(tmp_path, worker)
    try:
        assert wait_for(lambda: (tmp_path / "ready").exists(), 20)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and deaths.read_text() == "1\n"
    assert len(serving_lines(err)) == 1
    death = next(i for i, d in enumerate(lines(err)) if "exit status 1" in d["msg"])
    assert lines(err).index(serving_lines(err)[0]) > death


def test_a_worker_dying_again_soon_after_its_respawn_stops_the_server(tmp_path: Path) -> None:
    proc, deaths = start(tmp_path, "import sys; sys.exit(3)", workers=2)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    msgs = [d["msg"] for d in lines(err)]
    assert any("exit status 3, death 1 since start); respawning it" in m for m in msgs), msgs
    assert any("again within 5.5s of its respawn: a crash loop" in m for m in msgs), msgs
    assert int(deaths.read_text()) >= 3  # both died once, and one again after its respawn
    assert all(d["logger"] == "modvault.workers" and d["level"] == "error" for d in lines(err))


def test_a_worker_dying_long_after_its_respawn_is_respawned_again(tmp_path: Path) -> None:
    # Each start lives 0.4 s: past a crash-loop window of 0.2 s, so every death is respawned.
    worker = "import time; time.sleep(0.4); raise SystemExit(4)"
    proc, deaths = start(tmp_path, worker, respawn_interval=0.1, crash_loop=0.2)
    try:
        assert wait_for(lambda: deaths.exists() and int(deaths.read_text()) >= 3, 20)
        assert proc.poll() is None
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "crash loop" not in err and err.count("respawning it") >= 3


def test_sigterm_is_passed_on_and_the_supervisor_waits_for_the_drain(tmp_path: Path) -> None:
    worker = """
import signal, sys, time
def bye(*_):
    time.sleep(0.5)  # finishing what is in flight
    open("drained", "w").write("yes")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open("ready", "w").write("1")
time.sleep(600)
"""
    proc, deaths = start(tmp_path, worker)
    assert wait_for(lambda: (tmp_path / "ready").exists(), 20)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)  # the supervisor alone, as `kill <pid>` would
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and (tmp_path / "drained").read_text() == "yes"
    assert time.monotonic() - started >= 0.5
    assert deaths.read_text() == "0\n" and "exited unexpectedly" not in err


def test_a_worker_outliving_its_deadline_is_killed(tmp_path: Path) -> None:
    worker = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
open("ready", "w").write("1")
time.sleep(600)
"""
    proc, _ = start(tmp_path, worker, workers=2, shutdown_timeout=0.5)
    assert wait_for(lambda: (tmp_path / "ready").exists() and len(children(proc.pid)) == 2, 20)
    pids = children(proc.pid)
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=20)
    took = time.monotonic() - started
    assert proc.returncode == 0
    assert 0.5 + supervisor.KILL_MARGIN - 0.1 <= took < 0.5 + supervisor.KILL_MARGIN + 5, took
    for pid in pids:  # gone, and reaped (no zombie left behind)
        assert not Path(f"/proc/{pid}").exists()


def test_a_closed_stderr_does_not_stop_the_supervisor(tmp_path: Path) -> None:
    """Its log lines go nowhere, but deaths are still counted and workers still respawned."""
    proc, deaths = start(tmp_path, SLEEPER, crash_loop=0.01)  # two deaths in a row: no loop
    try:
        assert wait_for(lambda: len(list(tmp_path.glob("1-*"))) == 1, 20)
        assert proc.stderr is not None
        proc.stderr.close()  # the reading end: the supervisor's next write gets EPIPE
        first = next(tmp_path.glob("1-*"))
        os.kill(int(first.name.split("-")[1]), signal.SIGKILL)
        assert wait_for(lambda: len(list(tmp_path.glob("1-*"))) == 2, 20)
        os.kill(int(next(p for p in tmp_path.glob("1-*") if p != first).name.split("-")[1]),
                signal.SIGKILL)  # a second death: after the first write failed
        assert wait_for(lambda: len(list(tmp_path.glob("1-*"))) == 3, 30)
        assert proc.poll() is None and deaths.read_text() == "2\n"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_serve_refuses_the_workers_model_where_the_supervisor_cannot_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where signal.sigtimedwait is missing (macOS), `modvault serve` says to use the single
    model instead of exec'ing a supervisor that would fail."""
    from modvault import cli
    from modvault.config import ConfigError, Settings

    monkeypatch.delattr(signal, "sigtimedwait")
    with pytest.raises(ConfigError, match="process_model = 'single'"):
        cli._become_supervisor(Settings(), "serving", None)


@given(st.text())
@example("\x00\x1f\x7f\"\\\n\r\t\b\f\u2028\ud7ff\ue000\uffff\U00010000\U0010ffff")
def test_log_strings_are_written_as_json_writes_them(text: str) -> None:
    """The supervisor quotes its log lines' strings itself (json would bring re): the same
    characters as json.dumps, and they read back as what was written."""
    assert supervisor.quoted(text) == json.dumps(text)
    assert json.loads(supervisor.quoted(text)) == text


@given(st.dictionaries(st.text(st.characters(blacklist_characters="=\x00"), min_size=1)
                       .filter(lambda k: not k.startswith("-")),
                       st.text(st.characters(blacklist_characters="\x00"))),
       st.lists(st.text(st.characters(blacklist_characters="\x00"))))
def test_the_settings_and_the_worker_command_survive_the_arguments(
        spec: dict[str, str], worker: list[str]) -> None:
    """Whatever the values hold (``=``, ``--``, spaces, newlines), the supervisor reads back the
    settings and the worker's command line it was given."""
    args = supervisor.spec_argv(dict(spec), worker)
    assert supervisor.parse_argv(args) == (spec, worker)


def test_settings_that_are_none_are_left_out_and_bad_names_refused() -> None:
    args = supervisor.spec_argv({"workers": 2, "lock_fd": None, "shutdown_timeout": 1.5}, ["w"])
    assert args == ["workers=2", "shutdown_timeout=1.5", "--", "w"]
    with pytest.raises(ValueError):
        supervisor.spec_argv({"a=b": 1}, [])
    with pytest.raises(ValueError):
        supervisor.spec_argv({"--": 1}, [])
    with pytest.raises(SystemExit):
        supervisor.parse_argv(["workers=1"])


def test_signal_names_are_those_of_the_signal_module() -> None:
    for sig in signal.Signals:
        assert supervisor.SIGNAL_NAMES[int(sig)] == sig.name
    assert supervisor.describe_exit(9) == "killed by SIGKILL"  # wait statuses
    assert supervisor.describe_exit(int(signal.SIGRTMIN) + 5) == (
        f"killed by signal {int(signal.SIGRTMIN) + 5}")  # a number signal.py has no name for
    assert supervisor.describe_exit(3 << 8) == "exit status 3"
