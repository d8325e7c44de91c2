"""The workers' change token file (/dev/shm/modvault-<hash>.changes) lives while a server runs on
the data directory and is removed when the last server on it stops; a command announcing a change
with no server running creates none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modvault.cache.coordination.state import changes_path
from tests.support.modvault_proc import ModvaultProcess


def test_token_file_lives_with_the_servers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = changes_path(data)
    assert not token.exists()
    one = ModvaultProcess(data, "off", "--offline")
    two = None
    try:
        assert token.exists()
        two = ModvaultProcess(data, "off", "--offline")  # a second group on the same directory
        one.stop()
        assert token.exists()  # still used by the second server
        two.stop()
        two = None
        assert not token.exists()
    finally:
        one.stop()
        if two is not None:
            two.stop()
    # A command that announces a change while no server runs: nobody to tell, no file made.
    proc = subprocess.run([sys.executable, "-m", "modvault", "block", "example.com/m@v1.0.0",
                           "--data-dir", str(data), "--reason", "test"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not token.exists()
