"""Class 9: no credential, from configuration or from a request, appears in any answer or log.

Before: a configuration error printed an upstream URL with its password (and a bad vcs_credentials
entry its token).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modvault.observability.audit import mask
from modvault.observability.logs import AccessLog, JSONFormatter
from modvault.sources.redact import redact_text
from tests.conftest import ModvaultFactory
from tests.support.upstream_server import Behaviour, TestUpstreamServer

SECRET = "hunter2-s3cret"
DEFAULT_SUMDB = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


def _serve(tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODVAULT_")}
    cmd = [sys.executable, "-m", "modvault", "serve", "--listen", "127.0.0.1:1",
           "--data-dir", str(tmp_path / "data"), *args]
    if config is not None:
        cfg = tmp_path / "modvault.toml"
        cfg.write_text(config)
        cmd += ["--config", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize(("args", "config", "setting"), [
    (("--upstream", f"https://alice:{SECRET}@proxy.corp.example,,direct"), None, "upstream"),
    (("--upstream", f"ftp://alice:{SECRET}@proxy.corp.example"), None, "upstream"),
    (("--upstream", f"https://alice:{SECRET}@proxy.corp.example|"), None, "upstream"),
    ((), f'upstream = ["https://alice:{SECRET}@proxy.corp.example"]\n', "upstream"),
    ((), f'vcs_credentials = "git.corp.example=alice:{SECRET},alice:{SECRET}"\n', "vcs_credentials"),
    ((), f'vcs_credentials = 12\nupstream = "https://a:{SECRET}@x.example"\n', "vcs_credentials"),
    (("--sumdb", f"{DEFAULT_SUMDB} https://alice:{SECRET}@sum.corp.example/?q=1"), None, "sumdb"),
    (("--sumdb", f"{DEFAULT_SUMDB} ftp://alice:{SECRET}@sum.corp.example"), None, "sumdb"),
])
def test_configuration_errors_never_print_credentials(
        tmp_path: Path, args: tuple[str, ...], config: str | None, setting: str) -> None:
    res = _serve(tmp_path, *args, config=config)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert setting in res.stderr, res.stderr  # still says which setting is wrong
    assert SECRET not in res.stderr + res.stdout, res.stderr


def test_logs_are_redacted() -> None:
    record = logging.LogRecord("modvault.test", logging.WARNING, __file__, 1,
                               "fetch from %s failed; sent Authorization: Bearer %s", (
                                   f"https://alice:{SECRET}@proxy.corp.example/x", SECRET), None)
    try:
        raise RuntimeError(f"boom https://bob:{SECRET}@h.example/ token {SECRET}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = JSONFormatter().format(record)
    assert SECRET not in line, line
    doc = json.loads(line)  # still one valid JSON document, trace included
    assert "proxy.corp.example" in doc["msg"] and "RuntimeError" in doc["exc"]


@pytest.mark.parametrize("text", [
    f"https://alice:{SECRET}@h.example/x",
    f"git+ssh://alice:{SECRET}@h.example/x",
    f"Authorization: Basic {SECRET}",
    f"authorization={SECRET}",
    f"proxy-authorization: Bearer {SECRET}",
    f"header Bearer {SECRET}",
])
def test_redact_text(text: str) -> None:
    assert SECRET not in redact_text(text)


@pytest.mark.e2e
@pytest.mark.parametrize("echo", [
    "upstream saw Authorization: Basic {b64}",
    '{{"error":"denied","headers":{{"Authorization":"Basic {b64}"}}}}',
    "bad credentials {user}:{password} for https://{user}:{password}@proxy",
    "token Basic {b64} rejected",
])
def test_upstream_echo_of_our_credentials_is_redacted(
        echo: str, upstream_a: TestUpstreamServer, modvault: ModvaultFactory) -> None:
    """The first line of an upstream's error body is quoted to the client: an upstream that echoes
    the request's Authorization header must not leak the configured credentials."""
    user, password = "alice", SECRET
    b64 = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = "/github.com/acme/hello/@v/v1.0.0.info"
    body = echo.format(b64=b64, user=user, password=password).encode()
    for status in (500, 403, 404):
        upstream_a.behaviours[path] = Behaviour(status=status, body=body + b"\n")
        url = upstream_a.url.replace("http://", f"http://{user}:{password}@")
        mv = modvault(url, env={"MODVAULT_UPSTREAM_RETRIES": "0", "MODVAULT_NEGATIVE_TTL": "0",
                                "MODVAULT_LOG_LEVEL": "debug"})
        r = httpx.get(mv.url + path, timeout=30)
        assert r.status_code >= 400
        mv.stop()
        for text in (r.text, mv.log_path.read_text(errors="replace")):
            assert password not in text and b64 not in text, text


# Credentials in the shapes the mask knows, and text around them as a request line may carry it.
_PLANTED = st.sampled_from([
    "mvt_PlantedToken0123456789", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQbGFudGVkIn0.PlantedSig0123",
    "https://alice:PlantedPassword77@h.example/", "Bearer PlantedBearer0123",
    "token=PlantedParam0123", "Authorization: Basic UGxhbnRlZEJhc2ljMDEy",
])
_AROUND = st.text(st.characters(codec="ascii"), max_size=20) | st.sampled_from(
    ["/sigs.k8s.io/yaml/@v/v1.4.0.info", "/golang.org/x/oauth2/@v/list", "/x/@v/", "é", ""])


def _secret_of(planted: str) -> str:
    return next(w for w in planted.replace("=", " ").replace(":", " ").replace("@", " ").split()
                if w.startswith(("mvt_", "eyJ", "Planted", "UGxh")))


@settings(max_examples=150, deadline=None)
@given(before=_AROUND, planted=_PLANTED, after=_AROUND, where=st.sampled_from(["path", "method",
                                                                             "upstream"]))
def test_access_lines_carry_each_value_masked(before: str, planted: str, after: str,
                                              where: str) -> None:
    """An access line is JSON whose method, path and upstream are those texts as mask() leaves
    them: a credential planted in any of them never reaches the log, and a text without one
    (a module path holding a suspect word such as "sig" or "auth") is logged as it came."""
    values = {"path": "/example.com/m/@v/list", "method": "GET", "upstream": ""}
    values[where] = f"{before} {planted} {after}"  # the mask wants a credential to stand apart
    read, write = os.pipe()
    try:
        log = AccessLog(True, fd=write)
        log(values["method"], values["path"], 200, 10, 0.0, "memory", values["upstream"])
        log.flush()
        raw = os.read(read, 1 << 16).decode()
    finally:
        os.close(read)
        os.close(write)
    doc = json.loads(raw)
    assert raw.endswith("\n") and raw.count("\n") == 1
    assert {k: doc[k] for k in values} == {k: mask(v) for k, v in values.items()}
    assert _secret_of(planted) not in raw
    for clean in ("/sigs.k8s.io/yaml/@v/v1.4.0.info", "/golang.org/x/oauth2/@v/list"):
        assert mask(clean) == clean


@given(st.text(st.characters(categories=["L"]), min_size=1, max_size=40))
def test_letters_alone_are_never_masked(text: str) -> None:
    """The access log passes an all-letters method without the mask (logs.AccessLog.fixed_parts):
    every pattern of the mask needs a character that is not a letter."""
    assert text.isalpha()
    assert mask(text) == text
