"""Git host health: which git failures count against a host, and record names (hosts, never paths)."""

from __future__ import annotations

import pytest

from modvault.sources.vcs.git import GitError, GitTimeout, OutputTooLarge
from modvault.sources.vcs.hosts import host_of, verdict


@pytest.mark.parametrize(("stderr", "want"), [
    ("fatal: unable to access 'https://h/x/': Failed to connect to h port 443 after 2 ms: "
     "Couldn't connect to server", "down"),
    ("fatal: unable to access 'https://h/x/': Could not resolve host: h", "down"),
    ("ssh: connect to host h port 22: Connection refused\nfatal: Could not read from remote "
     "repository.", "down"),
    ("fatal: unable to access 'https://h/x/': The requested URL returned error: 503", "broken"),
    ("error: RPC failed; curl 18 transfer closed\nfatal: early EOF", "broken"),
    ("fatal: repository 'https://h/x/' not found", "answered"),
    ("fatal: could not read Username for 'https://h': terminal prompts disabled", "answered"),
    ("remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://h/x/'",
     "answered"),
    ("error: unable to create temporary file: No space left on device", "local"),
])
def test_verdict(stderr: str, want: str) -> None:
    assert verdict(GitError("ls-remote", 128, stderr)) == want


def test_verdict_of_timeouts_and_oversized_output() -> None:
    assert verdict(GitTimeout("ls-remote", 3)) == "down"
    assert verdict(OutputTooLarge("ls-remote", 10)) == "answered"


@pytest.mark.parametrize(("url", "name"), [
    ("https://github.com/acme/x", "github.com"),
    ("https://user:tok@Git.Corp.example:8443/team/repo.git", "git.corp.example:8443"),
    ("ssh://git@host/x", "host"),
    ("not a url", "other"),
])
def test_host_of(url: str, name: str) -> None:
    assert host_of(url) == name
