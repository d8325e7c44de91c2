"""Turn a request path into a validated ArtifactRef, or a 4xx that says what is wrong.

go.dev/ref/mod#goproxy-protocol: ``$base/$module/@v/list``, ``$module/@v/$version.info|.mod|.zip``,
``$module/@latest``, with module and version case-encoded (``!x`` for ``X``). The server hands us the
path already percent-decoded. Malformed requests (bad escapes, traversal, empty elements, non-canonical
versions for .mod/.zip) are 400; well-formed requests for something that cannot exist are 404. For
.info, anything but a canonical version valid for the path is a query the sources answer.
"""

from __future__ import annotations

import functools
import re

from modvault.artifact import ArtifactRef, Kind
from modvault.errors import BadRequest, ModvaultError, NotFound
from modvault.module.errors import ModuleError
from modvault.module.path import (
    check,
    is_canonical_version,
    is_exact_request,
    unescape_path,
    unescape_version,
)

MAX_PATH = 2048
# The store keeps one file or directory per path element (the GOPROXY layout): an element longer than
# a file name may be (255 bytes on every common file system), or a path deeper than a directory tree
# reasonably holds, cannot exist here. Module paths in the wild have a handful of elements.
MAX_NAME = 255
MAX_ELEMENTS = 64
# Memoized parses: bounded in entries, and only short paths are kept (bounded in bytes).
_MEMO_ENTRIES = 8192
_MEMO_MAX_PATH = 256

# Characters that may appear in an escaped module path (x/mod module.CheckPath's set, lower-case
# only, plus '!' for case-encoding).
_ESCAPED_PATH = re.compile(r"[a-z0-9.\-_~/!+]+")
_BAD_BANG = re.compile(r"!(?![a-z])")
# Escaped versions: semver characters, case-encoded; queries may also hold other tag/branch chars.
_ESCAPED_VERSION = re.compile(r"[A-Za-z0-9.\-_~+!]+")


class URITooLong(ModvaultError):
    status = 414


def parse_module_path(escaped: str) -> tuple[str, str]:
    """Return (module, escaped) or raise BadRequest / NotFound."""
    elems = escaped.split("/")
    if any(e in ("", ".", "..") for e in elems):
        raise BadRequest(f"invalid module path {escaped[:200]!r}: empty or dot path element")
    if len(elems) > MAX_ELEMENTS:
        raise NotFound(f"not found: module path with more than {MAX_ELEMENTS} elements")
    if any(len(e) > MAX_NAME for e in elems):
        raise NotFound(f"not found: module path element longer than {MAX_NAME} bytes")
    if not _ESCAPED_PATH.fullmatch(escaped):
        raise BadRequest(f"invalid escaped module path {escaped[:200]!r}: bad character or upper case")
    if _BAD_BANG.search(escaped):
        raise BadRequest(f"invalid escaped module path {escaped[:200]!r}: '!' must precede a "
                         "lower-case letter")
    try:
        module = unescape_path(escaped)
    except ModuleError as exc:
        raise NotFound(f"invalid module path: {exc}") from None
    return module, escaped


def parse_version(escaped: str) -> str:
    if not escaped or not _ESCAPED_VERSION.fullmatch(escaped) or escaped in (".", ".."):
        raise BadRequest(f"invalid escaped version {escaped[:200]!r}")
    if len(escaped) + len(".info") > MAX_NAME:
        raise NotFound(f"not found: version longer than {MAX_NAME - len('.info')} bytes")
    try:
        return unescape_version(escaped)
    except ModuleError as exc:
        raise BadRequest(f"invalid escaped version {escaped[:200]!r}: {exc}") from None


def parse_artifact_path(path: str) -> ArtifactRef:
    """Parse ``/<module>/@v/<file>`` or ``/<module>/@latest``.

    Memoized for short paths: the hot path asks for the same few thousand paths over and over, and
    validation is pure. Failures raise, and exceptions are not cached.
    """
    if len(path) <= _MEMO_MAX_PATH:
        return _parse_memo(path)
    return _parse(path)


def _parse(path: str) -> ArtifactRef:
    if len(path) > MAX_PATH:
        raise URITooLong(f"request path longer than {MAX_PATH} bytes")
    if not path.startswith("/"):
        raise BadRequest("request path must start with '/'")
    body = path[1:]
    if body.endswith("/@latest"):
        module, emod = parse_module_path(body[: -len("/@latest")])
        return ArtifactRef(module, emod, Kind.LATEST)
    head, sep, file = body.partition("/@v/")
    if not sep:
        raise NotFound("not found: not a module proxy path")
    if "/" in file:
        raise BadRequest(f"invalid path: unexpected '/' after @v/ in {file!r}")
    module, emod = parse_module_path(head)
    if file == "list":
        return ArtifactRef(module, emod, Kind.LIST)
    stem, dot, ext = file.rpartition(".")
    if not dot or ext not in ("info", "mod", "zip"):
        raise NotFound(f"not found: unknown file {file!r} (want list, .info, .mod or .zip)")
    kind = Kind(ext)
    version = parse_version(stem)
    canonical = is_canonical_version(version)
    if kind is not Kind.INFO and not canonical:
        raise BadRequest(f"version {version!r} is not canonical (for .{ext} the version must be "
                         "a canonical semantic version)")
    if kind is Kind.INFO and canonical and not is_exact_request(module, version):
        # A canonical version wrong for this path (v2.0.0 without /v2) is a query for .info: the
        # answer may be v2.0.0+incompatible (go.dev/ref/mod#goproxy-protocol).
        canonical = False
    if canonical:
        try:
            check(module, version)
        except ModuleError as exc:
            raise NotFound(f"not found: {exc}") from None
    return ArtifactRef(module, emod, kind, version, stem, canonical)


_parse_memo = functools.lru_cache(maxsize=_MEMO_ENTRIES)(_parse)
