"""Request paths to ArtifactRefs: 400 for malformed, 404 for impossible, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modvault.artifact import Kind
from modvault.errors import BadRequest, ModvaultError, NotFound
from modvault.module.errors import ModuleError
from modvault.module.path import check, is_exact_request
from modvault.server.routing import parse_artifact_path


@pytest.mark.parametrize(
    ("path", "module", "kind", "version", "canonical"),
    [
        ("/github.com/acme/hello/@v/list", "github.com/acme/hello", Kind.LIST, "", False),
        ("/github.com/acme/hello/@latest", "github.com/acme/hello", Kind.LATEST, "", False),
        ("/github.com/!burnt!sushi/toml/@v/v1.4.0.zip", "github.com/BurntSushi/toml", Kind.ZIP,
         "v1.4.0", True),
        ("/github.com/acme/x/@v/v3.2.0+incompatible.mod", "github.com/acme/x", Kind.MOD,
         "v3.2.0+incompatible", True),
        ("/github.com/acme/x/@v/master.info", "github.com/acme/x", Kind.INFO, "master", False),
        ("/github.com/acme/x/@v/v1.2.info", "github.com/acme/x", Kind.INFO, "v1.2", False),
        ("/github.com/acme/x/v2/@v/v2.1.0.info", "github.com/acme/x/v2", Kind.INFO, "v2.1.0", True),
        ("/gopkg.in/yaml.v3/@v/v3.0.1.mod", "gopkg.in/yaml.v3", Kind.MOD, "v3.0.1", True),
        ("/github.com/acme/x/@v/v1.0.0-20231114221320-abcdefabcdef.zip", "github.com/acme/x",
         Kind.ZIP, "v1.0.0-20231114221320-abcdefabcdef", True),
        # .info of a canonical version wrong for the path is a query (the answer may be
        # v2.0.0+incompatible, a pseudo-version, or an error): go.dev/ref/mod#goproxy-protocol.
        ("/rsc.io/breaker/@v/v2.0.0.info", "rsc.io/breaker", Kind.INFO, "v2.0.0", False),
        ("/github.com/dgrijalva/jwt-go/@v/v3.2.0.info", "github.com/dgrijalva/jwt-go", Kind.INFO,
         "v3.2.0", False),
        ("/github.com/acme/x/v2/@v/v1.0.0.info", "github.com/acme/x/v2", Kind.INFO, "v1.0.0", False),
        ("/github.com/acme/x/v2/@v/v3.0.0.info", "github.com/acme/x/v2", Kind.INFO, "v3.0.0", False),
        ("/gopkg.in/yaml.v3/@v/v2.4.0.info", "gopkg.in/yaml.v3", Kind.INFO, "v2.4.0", False),
        ("/github.com/acme/x/@v/v2.0.0+incompatible.info", "github.com/acme/x", Kind.INFO,
         "v2.0.0+incompatible", True),
    ],
)
def test_valid_paths(path: str, module: str, kind: Kind, version: str, canonical: bool) -> None:
    ref = parse_artifact_path(path)
    assert (ref.module, ref.kind, ref.version, ref.canonical) == (module, kind, version, canonical)


@pytest.mark.parametrize(
    "path",
    [
        "/github.com/BurntSushi/toml/@v/list",  # upper case must be escaped
        "/github.com/!/toml/@v/list",
        "/github.com/!1/toml/@v/list",
        "/github.com/acme/../x/@v/list",
        "/github.com//x/@v/list",
        "/github.com/./x/@v/list",
        "/github.com/acme/x/@v/v1.0.zip",  # not canonical
        "/github.com/acme/x/@v/v1.0.0+build.zip",
        "/github.com/acme/x/@v/master.mod",
        "/github.com/acme/x/@v/V1.0.0.mod",
        "/github.com/acme/x/@v/sub/v1.0.0.info",
        "/github.com/acme/x/@v/.info",
        "/github.com/ac%zzme/x/@v/list",
        "/github.com/ac me/x/@v/list",
        "/github.com/ac\x00me/x/@v/list",
        "/github.com/acmé/x/@v/list",
    ],
)
def test_bad_requests(path: str) -> None:
    with pytest.raises(BadRequest):
        parse_artifact_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/github.com/acme/x/@v/v2.0.0.mod",  # v2 needs /v2 (or +incompatible)
        "/github.com/acme/x/@v/v2.0.0.zip",  # .mod and .zip stay strict
        "/github.com/acme/x/v2/@v/v1.0.0.zip",
        # module.Check accepts these, so the go command wants exactly them: no query, and our
        # stricter rules refuse them (+incompatible only for v2+ without a /vN suffix).
        "/github.com/acme/x/@v/v1.0.0+incompatible.info",
        "/github.com/acme/x/v2/@v/v2.0.0+incompatible.info",
        "/nodot/x/@v/list",  # first element must look like a host
        "/github.com/acme/x/@v/list.txt",
        "/github.com/acme/x",
        "/-foo.com/x/@v/list",
    ],
)
def test_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        parse_artifact_path(path)


def test_over_long_path() -> None:
    with pytest.raises(ModvaultError) as exc:
        parse_artifact_path("/example.com/" + "a/" * 2000 + "@v/list")
    assert exc.value.status == 414


@given(st.text(max_size=300))
def test_any_path_is_a_ref_or_a_4xx(tail: str) -> None:
    for path in ("/" + tail, "/example.com/" + tail + "/@v/list",
                 "/example.com/m/@v/" + tail + ".info", "/example.com/m/@v/" + tail + ".zip"):
        try:
            ref = parse_artifact_path(path)
        except ModvaultError as exc:
            assert 400 <= exc.status < 500
        else:
            assert ref.module and ref.escaped_module


_SEMVER = st.builds(lambda ma, mi, pa, inc: f"v{ma}.{mi}.{pa}" + ("+incompatible" if inc else ""),
                    st.integers(0, 12), st.integers(0, 3), st.integers(0, 3), st.booleans())
_PATHS = st.sampled_from(["example.com/m", "example.com/m/v2", "example.com/m/v3",
                          "gopkg.in/yaml.v2", "gopkg.in/yaml.v3", "example.com/m/sub"])


@given(_PATHS, _SEMVER, st.sampled_from(["info", "mod", "zip"]))
def test_wrong_major_is_a_query_for_info_only(module: str, version: str, ext: str) -> None:
    """The go command's rule (modfetch proxyRepo.Stat): a proxy must answer exactly the version
    asked for when module.Check accepts it; otherwise (.info only) the request is a query."""
    path = f"/{module}/@v/{version}.{ext}"
    try:
        check(module, version)
    except ModuleError:
        strict_ok = False
    else:
        strict_ok = True
    exact = is_exact_request(module, version)
    try:
        ref = parse_artifact_path(path)
    except NotFound:
        assert not strict_ok and (ext != "info" or exact), path
        return
    assert (ref.module, ref.version) == (module, version)
    if strict_ok:
        assert ref.canonical, path
    else:
        assert ext == "info" and not exact and not ref.canonical, path
