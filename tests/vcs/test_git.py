"""GitRunner: bounded, non-interactive git processes, killed on timeout, secrets kept out of argv
and messages. A stand-in ``git`` script records how it was run."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import time
from pathlib import Path

import pytest

from modvault.sources.vcs.git import (
    GitError,
    GitRunner,
    GitTimeout,
    HostCredential,
    OutputTooLarge,
    RemoteRefs,
    load_netrc,
)

TOKEN = "ghp_SuperSecretToken123"


def fake_git(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fake-git"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    git = fake_git(tmp_path, f"sleep 60 &\necho $! > {tmp_path}/child\nexec sleep 60\n")
    runner = GitRunner(git=git, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(GitTimeout) as e:
        asyncio.run(runner.run(["fetch", "origin"]))
    assert time.monotonic() - t0 < 5
    assert "timed out after 0.5s" in e.value.message
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the grandchild outlived the timeout"


def test_cancellation_kills_the_process(tmp_path: Path) -> None:
    git = fake_git(tmp_path, f"echo $$ > {tmp_path}/pid\nexec sleep 60\n")
    runner = GitRunner(git=git, timeout=60)

    async def main() -> None:
        task = asyncio.ensure_future(runner.run(["fetch"]))
        while not (tmp_path / "pid").exists():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    pid = int((tmp_path / "pid").read_text())
    assert not _alive(pid)


def test_semaphore_bounds_concurrency(tmp_path: Path) -> None:
    log = tmp_path / "log"
    git = fake_git(tmp_path, f"echo start >> {log}\nsleep 0.15\necho end >> {log}\n")
    runner = GitRunner(git=git, max_procs=2)

    async def main() -> None:
        await asyncio.gather(*[runner.run(["status"]) for _ in range(6)])

    asyncio.run(main())
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_environment_and_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    git = fake_git(tmp_path, f'echo "ARGS $*" > {out}\nenv >> {out}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/some/user/gitconfig")
    monkeypatch.setenv("GIT_DIR", "/not/this/repo")
    runner = GitRunner(git=git, credentials={"git.corp.example": HostCredential("x", TOKEN)},
                       url_rewrites={"https://mirror.corp.example/": "https://github.com/"})
    asyncio.run(runner.run(["ls-remote", "https://git.corp.example/lib"], git_dir=tmp_path))
    text = out.read_text()
    args = text.splitlines()[0]
    env = dict(line.split("=", 1) for line in text.splitlines()[1:] if "=" in line)
    assert args.startswith("ARGS -c core.hooksPath=/dev/null ls-remote")
    assert TOKEN not in args and "Authorization" not in args
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GCM_INTERACTIVE"] == "never"
    # The user's git configuration is honoured, never replaced.
    assert env["GIT_CONFIG_GLOBAL"] == "/some/user/gitconfig"
    assert env["GIT_DIR"] == str(tmp_path)
    config = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
              for i in range(int(env["GIT_CONFIG_COUNT"]))}
    basic = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    assert config == {
        "url.https://mirror.corp.example/.insteadOf": "https://github.com/",
        "http.https://git.corp.example/.extraHeader": f"Authorization: Basic {basic}",
    }


def test_existing_git_config_count_is_extended(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    git = fake_git(tmp_path, f"env > {out}\n")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.name")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "someone")
    runner = GitRunner(git=git, url_rewrites={"https://a.example/": "https://b.example/"})
    asyncio.run(runner.run(["version"]))
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_0"] == "user.name"
    assert env["GIT_CONFIG_KEY_1"] == "url.https://a.example/.insteadOf"


def test_messages_never_carry_credentials(tmp_path: Path) -> None:
    basic = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    git = fake_git(tmp_path, (
        f"echo \"fatal: unable to access 'https://x:{TOKEN}@git.corp.example/lib/': "
        f"The requested URL returned error: 403 (Authorization: Basic {basic})\" >&2\n"
        "echo \"remote: see https://user:pa55word@other.example/x\" >&2\nexit 128\n"))
    runner = GitRunner(git=git, credentials={"git.corp.example": HostCredential("x", TOKEN)},
                       url_rewrites={f"https://x:{TOKEN}@git.corp.example/": "https://corp/"})
    with pytest.raises(GitError) as e:
        asyncio.run(runner.run(["ls-remote", f"https://x:{TOKEN}@git.corp.example/lib"]))
    for text in (e.value.message, e.value.stderr, str(e.value), e.value.command):
        assert TOKEN not in text and basic not in text and "pa55word" not in text
    assert "git.corp.example" in e.value.message
    assert e.value.returncode == 128


def test_output_limits(tmp_path: Path) -> None:
    git = fake_git(tmp_path, "head -c 100000 /dev/zero\n")
    runner = GitRunner(git=git)
    with pytest.raises(OutputTooLarge):
        asyncio.run(runner.run(["cat-file"], limit=1000))
    dest = tmp_path / "archive.zip"
    with pytest.raises(OutputTooLarge):
        asyncio.run(runner.run(["archive"], stdout_path=dest, limit=1000))
    res = asyncio.run(runner.run(["archive"], stdout_path=dest, limit=200000))
    assert res.returncode == 0 and dest.stat().st_size == 100000


def test_failure_is_returned_without_check(tmp_path: Path) -> None:
    git = fake_git(tmp_path, "echo nope >&2\nexit 1\n")
    res = asyncio.run(GitRunner(git=git).run(["merge-base"], check=False))
    assert res.returncode == 1 and res.stderr.strip() == "nope"


def test_remote_refs_parse() -> None:
    out = ("a" * 40 + "\tHEAD\n" + "a" * 40 + "\trefs/heads/main\n" + "b" * 40 + "\trefs/tags/v1.0.0\n"
           + "c" * 40 + "\trefs/tags/v1.0.0^{}\n" + "d" * 40 + "\trefs/pull/1/head\n")
    refs = RemoteRefs.parse(out)
    assert refs.refs == {"HEAD": "a" * 40, "refs/heads/main": "a" * 40,
                         "refs/tags/v1.0.0": "c" * 40}
    assert refs.raw["refs/tags/v1.0.0"] == "b" * 40 and "refs/pull/1/head" not in refs.raw
    assert RemoteRefs.parse(out).digest == refs.digest != RemoteRefs.parse("").digest


def test_netrc(tmp_path: Path) -> None:
    p = tmp_path / "netrc"
    p.write_text(f"machine git.corp.example login bot password {TOKEN}\n"
                 "machine Other.Example login u password p\n")
    os.chmod(p, 0o600)
    creds = load_netrc(p)
    assert creds["git.corp.example"].password == TOKEN
    assert creds["other.example"].username == "u"
    assert TOKEN not in repr(creds)
    bad = tmp_path / "bad"
    bad.write_text(f"machine x login y password {TOKEN} bogus\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ValueError) as e:
        load_netrc(bad)
    assert TOKEN not in str(e.value)


def test_credential_prefixes() -> None:
    runner = GitRunner(credentials={"git.corp.example": HostCredential("a", "b"),
                                    "http://127.0.0.1:8080/team": HostCredential("c", "d")})
    assert runner.credential_for_url("https://git.corp.example/x/y") is not None
    assert runner.credential_for_url("http://git.corp.example/x") is None  # https only
    assert runner.credential_for_url("https://git.corp.example.evil/x") is None
    assert runner.credential_for_url("http://127.0.0.1:8080/team/lib") is not None
    assert runner.credential_for_url("http://127.0.0.1:8080/other") is None
    assert runner.credential_hosts() == {"git.corp.example", "127.0.0.1:8080"}
