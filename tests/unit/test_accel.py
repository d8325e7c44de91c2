"""Front-end mode's redirect targets (server/accel.py) and its setting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.config import ConfigError, Settings, validate
from modvault.server.accel import AccelRedirect

ROOT = "/srv/modvault/data"


def test_stored_keys_map_to_the_internal_location() -> None:
    a = AccelRedirect("/_modvault_store/", ROOT)
    assert a.target(f"{ROOT}/github.com/!acme/!upper/@v/v1.0.0.zip") == \
        "/_modvault_store/github.com/!acme/!upper/@v/v1.0.0.zip"
    assert a.target(f"{ROOT}/example.com/m/@v/v2.0.0+incompatible.zip") == \
        "/_modvault_store/example.com/m/@v/v2.0.0+incompatible.zip"
    assert a.headers("/x/y.zip", [("content-type", "application/zip"), ("content-length", "9"),
                                  ("etag", '"e"')]) == \
        [("x-accel-redirect", "/x/y.zip"), ("content-type", "application/zip"), ("etag", '"e"')]


@pytest.mark.parametrize("path", [
    "/elsewhere/example.com/m/@v/v1.0.0.zip",  # not under the data directory
    f"{ROOT}x/example.com/m/@v/v1.0.0.zip",  # a sibling directory sharing the prefix
    f"{ROOT}/example.com/../../etc/passwd",
    f"{ROOT}/example.com/m/@v/v1.0.0.zip?x=1",
    f"{ROOT}/Example.com/m/@v/v1.0.0.zip",  # keys are escaped: never upper case
    f"{ROOT}/example.com/m/@v/v1 0.zip",
])
def test_anything_else_is_answered_by_modvault(path: str) -> None:
    assert AccelRedirect("/_modvault_store/", ROOT).target(path) is None


@given(st.text(max_size=80))
def test_targets_stay_inside_the_location(rest: str) -> None:
    target = AccelRedirect("/_modvault_store/", ROOT).target(f"{ROOT}/{rest}")
    if target is not None:
        assert target.startswith("/_modvault_store/")
        parts = target.split("/")
        assert ".." not in parts and "." not in parts and "" not in parts[2:]
        assert all(c.isascii() and (c.isalnum() or c in "._~!+-/@") for c in target)


def test_setting_must_be_a_location_prefix() -> None:
    validate(Settings(accel_redirect="/_modvault_store/"))
    for bad in ("_modvault_store/", "/_modvault_store"):
        with pytest.raises(ConfigError, match="accel_redirect"):
            validate(Settings(accel_redirect=bad))
