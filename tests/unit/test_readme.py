"""README.md keeps exactly the two set-up commands, and .ci/run runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", setup, re.S)
    assert len(blocks) == 2, blocks
    install_run, test_command = blocks
    assert "modvault serve" in install_run
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.strip() in ci.splitlines()
