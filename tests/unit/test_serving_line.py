"""startup.when_listening: its thread must not import while granian forks the workers."""

from __future__ import annotations

import subprocess
import sys


def test_the_idna_codec_is_loaded_before_the_thread_starts() -> None:
    # A worker forked while the serving-line thread imported encodings.idna (its first connect by
    # name) inherited that module's import lock held, and hung at its first upstream connect.
    # With timeout=0 the thread connects never: only when_listening itself can load the codec.
    code = ("import sys, modvault.startup as s\n"
            "assert 'encodings.idna' not in sys.modules\n"
            "s.when_listening('127.0.0.1', 9, lambda: None, timeout=0)\n"
            "print('encodings.idna' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
