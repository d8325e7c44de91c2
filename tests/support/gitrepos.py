"""Build local git repositories with fixed dates, and a static GOPROXY from them via the real go command.

The go command in direct mode is the reference builder (../shared/TESTING.md): a git config with
``url.<dir>.insteadOf = https://github.com/`` makes it clone these local repositories.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

GO = shutil.which("go")
EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None, when: int = EPOCH) -> str:
    e = dict(env or os.environ)
    date = f"@{when} +0000"
    e.update({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
              "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
              "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
              "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    return subprocess.run(["git", *args], cwd=cwd, env=e, check=True, capture_output=True,
                          text=True).stdout


class Repo:
    """A work tree under ``<root>/work/<path>`` pushed to a bare ``<root>/repos/<path>``."""

    def __init__(self, root: Path, path: str) -> None:
        self.path = path
        self.work = root / "work" / path
        self.bare = root / "repos" / path
        self.work.mkdir(parents=True)
        self.bare.mkdir(parents=True)
        git(self.bare, "init", "-q", "--bare", "-b", "main")
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.bare))
        self.clock = EPOCH

    def write(self, files: Mapping[str, str | bytes]) -> None:
        for name, content in files.items():
            p = self.work / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content.encode() if isinstance(content, str) else content)

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            (self.work / name).unlink()

    def commit(self, message: str = "change", tags: Iterable[str] = ()) -> str:
        self.clock += 3600
        git(self.work, "add", "-A", when=self.clock)
        git(self.work, "commit", "-q", "--allow-empty", "-m", message, when=self.clock)
        for tag in tags:
            git(self.work, "tag", tag, when=self.clock)
        git(self.work, "push", "-q", "--tags", "origin", "main", when=self.clock)
        return git(self.work, "rev-parse", "HEAD").strip()


def shared_gocache() -> Path:
    """The go build cache every test shares (MODVAULT_TEST_GOCACHE, or one per user under the temp
    directory, kept between runs). It only holds compiled packages keyed by their inputs and is safe
    for concurrent go commands; module downloads (GOMODCACHE) stay per test, so the go command still
    asks the proxy under test. A cold build of the standard library costs tens of seconds per test."""
    return Path(os.environ.get("MODVAULT_TEST_GOCACHE")
                or Path(tempfile.gettempdir()) / f"modvault-test-gocache-{os.getuid()}")


def go_env(root: Path, repos: Path | None = None, **extra: str) -> dict[str, str]:
    """An isolated environment for the go command: nothing from the user's machine leaks in.

    With ``repos``, ``https://github.com/X`` is rewritten to the local bare repository ``repos/X``.
    """
    gitconfig = root / "gitconfig"
    if not gitconfig.exists():
        text = '[protocol "file"]\n\tallow = always\n'
        if repos is not None:
            text += f'[url "{repos / "github.com"}/"]\n\tinsteadOf = https://github.com/\n'
        gitconfig.write_text(text)
    home = root / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GOPATH": str(root / "gopath"),
        "GOMODCACHE": str(root / "gopath" / "pkg" / "mod"),
        "GOCACHE": str(shared_gocache()),
        "GOENV": "off",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
        "GOSUMDB": "off",
        "GONOSUMDB": "*",
        "GOPRIVATE": "",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "CGO_ENABLED": "0",
    }
    for key in ("SSL_CERT_FILE", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def run_go(args: list[str], cwd: Path, env: Mapping[str, str], check: bool = True,
           timeout: float = 240) -> subprocess.CompletedProcess[str]:
    assert GO is not None, "go not on PATH"
    proc = subprocess.run([GO, *args], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"go {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout[-3000:]}")
    return proc


def build_go_program(target: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``go build -o out`` of a main package that imports only the standard library (a directory
    with its go.mod, or one .go file), offline and with the shared build cache."""
    assert GO is not None, "go not on PATH"
    cwd, arg = (target, ".") if target.is_dir() else (target.parent, target.name)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "", "GOWORK": "off", "GOPROXY": "off",
           "GO111MODULE": "on", "GOCACHE": str(shared_gocache())}
    return subprocess.run([GO, "build", "-o", str(out), arg], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240, check=False)


def download_json(stdout: str) -> list[dict[str, object]]:
    """`go mod download -json` prints a stream of JSON objects."""
    dec = json.JSONDecoder()
    out: list[dict[str, object]] = []
    text = stdout.strip()
    i = 0
    while i < len(text):
        obj, j = dec.raw_decode(text, i)
        out.append(obj)
        i = j
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def make_writable(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                mode = p.lstat().st_mode
                if not stat.S_ISLNK(mode):
                    p.chmod(mode | stat.S_IWUSR)
            except OSError:
                pass
    if path.exists():
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def rmtree(path: Path) -> None:
    make_writable(path)
    shutil.rmtree(path, ignore_errors=True)


def export_proxy(gomodcache: Path, dest: Path) -> None:
    """Copy $GOMODCACHE/cache/download into a static GOPROXY tree: lists without pseudo-versions,
    no lock or ziphash files."""
    src = gomodcache / "cache" / "download"
    shutil.copytree(src, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.lock", "*.ziphash", "*.partial", "*.tmp"))
    make_writable(dest)
    for lst in dest.rglob("list"):
        if lst.parent.name != "@v":
            continue
        versions = [v for v in lst.read_text().split() if not _is_pseudo(v)]
        lst.write_text("".join(v + "\n" for v in versions))


def _is_pseudo(v: str) -> bool:
    parts = v.split("-")
    return len(parts) >= 3 and len(parts[-1]) == 12 and parts[-2][-14:].isdigit()
