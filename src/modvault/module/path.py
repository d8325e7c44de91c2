"""Module paths, import paths, file paths and their case-escaping (mirrors golang.org/x/mod/module).

Three kinds of path share one grammar (slash-separated, non-empty elements) and differ in the
characters they allow:

- module paths: ASCII letters and digits plus ``- . _ ~``; the first element is a lower-case
  domain-like name with a dot; a final ``/vN`` must be a valid major-version suffix;
- import paths: module-path characters plus ``+``;
- file paths (zip entry names): also Unicode letters, space and ``!#$%&()+,-.=@[]^_{}~``.

The escaped form (proxy URLs, the download cache) writes each upper-case letter as ``!`` followed by
its lower-case form, so a case-insensitive file system never needs two casings of one path.

Errors are :class:`InvalidPath` / :class:`InvalidVersion` with x/mod's one-line messages.
"""

from __future__ import annotations

import re
import unicodedata

from modvault.module import semver
from modvault.module.errors import InvalidPath, InvalidVersion

__all__ = [
    "canonical_version",
    "check",
    "check_file_path",
    "check_import_path",
    "check_path",
    "check_path_major",
    "escape_path",
    "escape_version",
    "go_quote",
    "is_canonical_version",
    "is_exact_request",
    "match_path_major",
    "split_path_version",
    "unescape_path",
    "unescape_version",
]

_MODULE, _IMPORT, _FILE = "module", "import", "file"

# x/mod module.badWindowsNames: reserved device names, refused whatever their case or extension.
_BAD_WINDOWS_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)

# x/mod module.fileNameOK: the ASCII punctuation allowed in file names.
_FILE_PUNCT = frozenset("!#$%&()+,-.=@[]^_{}~ ")


# --- Go-style quoting for messages ------------------------------------------------------------

_NAMED_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _escape_char(c: str, quote: str) -> str:
    # strconv.Quote / QuoteRune escaping of one character.
    if c == quote or c == "\\":
        return "\\" + c
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    if c.isprintable():  # strconv.IsPrint: letters, marks, numbers, punctuation, symbols, " "
        return c
    o = ord(c)
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def go_quote(s: str) -> str:
    """Quote ``s`` as Go's ``%q`` (strconv.Quote) does, for error messages."""
    return '"' + "".join(_escape_char(c, '"') for c in s) + '"'


def _quote_rune(c: str) -> str:
    return "'" + _escape_char(c, "'") + "'"


# --- character classes ------------------------------------------------------------------------


def _first_path_ok(c: str) -> bool:
    # x/mod module.firstPathOK: the first element is an LDH domain name, lower case only.
    return c in "-." or "0" <= c <= "9" or "a" <= c <= "z"


def _mod_path_ok(c: str) -> bool:
    # x/mod module.modPathOK: ASCII letters, digits and - . _ ~ (no "+": it means " " in URLs).
    return c in "-._~" or "0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z"


def _import_path_ok(c: str) -> bool:
    # x/mod module.importPathOK: module-path characters plus "+" (as in "c++").
    return _mod_path_ok(c) or c == "+"


def _file_name_ok(c: str) -> bool:
    # x/mod module.fileNameOK: ASCII letters/digits, limited punctuation and space, Unicode letters.
    if ord(c) < 0x80:
        return "0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z" or c in _FILE_PUNCT
    return unicodedata.category(c).startswith("L")


_CHAR_OK = {_MODULE: _mod_path_ok, _IMPORT: _import_path_ok, _FILE: _file_name_ok}

# The same ASCII classes as whole-string matches: an element made only of these is accepted in
# one C call; anything else (non-ASCII, a refused character) goes through the per-character test
# above, which decides and names the character. A zip check runs this on every entry name.
_FILE_CHARS = r"[-._~!#$%&()+,=@\[\]^{} 0-9A-Za-z]"
_ASCII_OK = {
    _MODULE: re.compile(r"[-._~0-9A-Za-z]+").fullmatch,
    _IMPORT: re.compile(r"[-._~+0-9A-Za-z]+").fullmatch,
    _FILE: re.compile(_FILE_CHARS + "+").fullmatch,
}


# A file path that is accepted without looking further: ASCII elements of file-name characters,
# none empty (so no leading, trailing or double slash), and none of the element rules in doubt:
# a trailing dot (which all-dot elements have too) or a Windows device name before the first dot.
# Anything else goes through _check_path, which decides and says why.
_FILE_PATH_PLAIN = re.compile(rf"{_FILE_CHARS}+(?:/{_FILE_CHARS}+)*").fullmatch
_FILE_PATH_DOUBT = re.compile(
    r"\.(?:/|$)|(?:^|/)(?:con|prn|aux|nul|com[1-9]|lpt[1-9])(?:[./]|$)", re.IGNORECASE).search


# --- shared grammar ---------------------------------------------------------------------------


def _check_elem(elem: str, kind: str) -> str | None:
    """x/mod module.checkElem: why ``elem`` is not a valid element of a ``kind`` path, or None."""
    if elem == "":
        return "empty path element"
    if elem.count(".") == len(elem):
        return f"invalid path element {go_quote(elem)}"
    if elem[0] == "." and kind == _MODULE:
        return "leading dot in path element"
    if elem[-1] == ".":
        return "trailing dot in path element"
    if _ASCII_OK[kind](elem) is None:
        ok = _CHAR_OK[kind]
        for c in elem:
            if not ok(c):
                return f"invalid char {_quote_rune(c)}"
    # Windows reserves device names, whatever follows the first dot.
    short = elem.split(".", 1)[0]
    # strings.EqualFold: no non-ASCII letter folds onto a letter of these names (only K and S have
    # such partners), so an ASCII upper() comparison is the same test.
    if short.isascii() and short.upper() in _BAD_WINDOWS_NAMES:
        return f"{go_quote(short)} disallowed as path element component on Windows"
    if kind == _FILE:
        return None
    # Windows short names ("PROGRA~1") end in a tilde and digits; refuse look-alikes.
    tilde = short.rfind("~")
    if 0 <= tilde < len(short) - 1 and all("0" <= c <= "9" for c in short[tilde + 1 :]):
        return "trailing tilde and digits in path element"
    return None


def _has_surrogate(s: str) -> bool:
    return not s.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def _check_path(path: str, kind: str) -> str | None:
    """x/mod module.checkPath: why ``path`` is not a valid ``kind`` path, or None."""
    if _has_surrogate(path):
        return "invalid UTF-8"
    if path == "":
        return "empty string"
    if path[0] == "-" and kind != _FILE:
        return "leading dash"
    if "//" in path:
        return "double slash"
    if path[-1] == "/":
        return "trailing slash"
    for elem in path.split("/"):
        reason = _check_elem(elem, kind)
        if reason is not None:
            return reason
    return None


def _module_path_error(path: str) -> str | None:
    """x/mod module.CheckPath without the message prefix."""
    reason = _check_path(path, _MODULE)
    if reason is not None:
        return reason
    first = path.split("/", 1)[0]
    if first == "":
        return "leading slash"
    if "." not in first:
        return "missing dot in first path element"
    if path[0] == "-":
        return "leading dash in first path element"
    for c in first:
        if not _first_path_ok(c):
            return f"invalid char {_quote_rune(c)} in first path element"
    if not split_path_version(path)[2]:
        return "invalid version"
    return None


def check_path(path: str) -> None:
    """module.CheckPath: raise :class:`InvalidPath` unless ``path`` is a valid module path."""
    reason = _module_path_error(path)
    if reason is not None:
        raise InvalidPath(f"malformed module path {go_quote(path)}: {reason}")


def check_import_path(path: str) -> None:
    """module.CheckImportPath: raise :class:`InvalidPath` unless ``path`` is a valid import path."""
    reason = _check_path(path, _IMPORT)
    if reason is not None:
        raise InvalidPath(f"malformed import path {go_quote(path)}: {reason}")


def check_file_path(path: str) -> None:
    """module.CheckFilePath: raise :class:`InvalidPath` unless ``path`` is a valid file path.

    This is the rule for the names of files inside a module zip (after the ``module@version/``
    prefix).
    """
    if _FILE_PATH_PLAIN(path) is not None and _FILE_PATH_DOUBT(path) is None:
        return  # the common case, settled in two C calls (what a zip check does per entry)
    reason = _check_path(path, _FILE)
    if reason is not None:
        raise InvalidPath(f"malformed file path {go_quote(path)}: {reason}")


# --- major-version suffixes -------------------------------------------------------------------


def _split_gopkg_in(path: str) -> tuple[str, str, bool]:
    # x/mod module.splitGopkgIn: gopkg.in paths end in ".vN" (any N, even 0), maybe "-unstable".
    if not path.startswith("gopkg.in/"):
        return path, "", False
    i = len(path)
    if path.endswith("-unstable"):
        i -= len("-unstable")
    while i > 0 and "0" <= path[i - 1] <= "9":
        i -= 1
    if i <= 1 or path[i - 1] != "v" or path[i - 2] != ".":
        return path, "", False
    prefix, path_major = path[: i - 2], path[i - 2 :]
    if len(path_major) <= 2 or (path_major[2] == "0" and path_major != ".v0"):
        return path, "", False
    return prefix, path_major, True


def split_path_version(path: str) -> tuple[str, str, bool]:
    """module.SplitPathVersion: ``(prefix, path_major, ok)`` with ``prefix + path_major == path``.

    ``path_major`` is "" or ``/vN`` with N >= 2 and no leading zero; for gopkg.in paths it is
    ``.vN`` (any N, optionally followed by ``-unstable``). ``ok`` is False for a final element that
    looks like a bad major suffix (``/v0``, ``/v1``, ``/v2.0``, ``/v02``) or a gopkg.in path without
    ``.vN``.
    """
    if path.startswith("gopkg.in/"):
        return _split_gopkg_in(path)
    i = len(path)
    dot = False
    while i > 0 and ("0" <= path[i - 1] <= "9" or path[i - 1] == "."):
        if path[i - 1] == ".":
            dot = True
        i -= 1
    if i <= 1 or i == len(path) or path[i - 1] != "v" or path[i - 2] != "/":
        return path, "", True
    prefix, path_major = path[: i - 2], path[i - 2 :]
    if dot or len(path_major) <= 2 or path_major[2] == "0" or path_major == "/v1":
        return path, "", False
    return prefix, path_major, True


def _path_major_error(version: str, path_major: str) -> str | None:
    # x/mod module.CheckPathMajor.
    if path_major.startswith(".v") and path_major.endswith("-unstable"):
        path_major = path_major[: -len("-unstable")]
    if version.startswith("v0.0.0-") and path_major == ".v1":
        # Early pseudo-versions of gopkg.in .v1 modules were v0.0.0-...; they stay acceptable.
        return None
    m = semver.major(version)
    if path_major == "":
        if m in ("v0", "v1") or semver.build(version) == "+incompatible":
            return None
        want = "v0 or v1"
    elif path_major[0] in "/.":
        if m == path_major[1:]:
            return None
        want = path_major[1:]
    else:
        want = path_major
    return f"should be {want}, not {m}"


def check_path_major(version: str, path_major: str) -> None:
    """module.CheckPathMajor: raise :class:`InvalidVersion` unless ``version`` fits ``path_major``.

    ``path_major`` is the second result of :func:`split_path_version`. With no suffix, v0, v1 and
    any ``+incompatible`` version fit.
    """
    reason = _path_major_error(version, path_major)
    if reason is not None:
        raise InvalidVersion(f"version {go_quote(version)} invalid: {reason}")


def match_path_major(version: str, path_major: str) -> bool:
    """module.MatchPathMajor: whether :func:`check_path_major` would accept."""
    return _path_major_error(version, path_major) is None


def canonical_version(v: str) -> str:
    """module.CanonicalVersion: :func:`semver.canonical` but keeping a ``+incompatible`` suffix."""
    cv = semver.canonical(v)
    if semver.build(v) == "+incompatible":
        cv += "+incompatible"
    return cv


def is_canonical_version(v: str) -> bool:
    """True for versions the proxy protocol accepts for .mod/.zip: canonical, build suffix only
    ``+incompatible``."""
    return bool(v) and canonical_version(v) == v


def is_exact_request(path: str, version: str) -> bool:
    """Whether a proxy must answer ``path@version`` (.info) with exactly ``version``.

    True for a canonical version that module.Check accepts for the path (its major agrees with the
    path's suffix, ``+incompatible`` standing in for any major without one). Anything else (a
    branch, ``v1.2``, or ``v2.0.0`` for a path without ``/v2``) is a query whose answer may name
    another version: go.dev/ref/mod#goproxy-protocol says ``$version`` in a ``.info`` request "does
    not need to be the same version or even a valid version"; cmd/go/internal/modfetch/proxy.go
    (proxyRepo.Stat) accepts a different Version exactly when this is false. ``path`` must be valid.
    """
    return is_canonical_version(version) and match_path_major(version, split_path_version(path)[1])


def check(path: str, version: str) -> None:
    """Validate a module path and version pair, as the proxy protocol needs it.

    Like module.Check (valid module path, valid semver whose major agrees with the path's suffix),
    and in addition, as the go command requires of the versions it fetches:

    - ``version`` must be canonical (``module.CanonicalVersion(version) == version``);
    - ``+incompatible`` is allowed only for a path without a major suffix and major >= v2
      (cmd/go modfetch's rules; module.Check alone would accept ``v1.0.0+incompatible``).

    Raises :class:`InvalidPath` or :class:`InvalidVersion`.
    """
    check_path(path)

    def bad(reason: str) -> InvalidVersion:
        return InvalidVersion(f"{path}@{version}: invalid version: {reason}")

    if not semver.is_valid(version):
        raise bad("not a semantic version")
    cv = canonical_version(version)
    if cv != version:
        raise bad(f"not a canonical version (want {cv})")
    path_major = split_path_version(path)[1]
    if semver.build(version) == "+incompatible":
        if path_major != "":
            raise bad("+incompatible suffix not allowed: module path has a major version suffix")
        if semver.major(version) in ("v0", "v1"):
            raise bad(
                f"+incompatible suffix not allowed: major version {semver.major(version)}"
                " is compatible"
            )
    reason = _path_major_error(version, path_major)
    if reason is not None:
        raise bad(reason)


# --- case escaping ----------------------------------------------------------------------------


def _escape_string(s: str) -> str:
    # x/mod module.escapeString: "!" + lower case for each upper-case ASCII letter.
    for c in s:
        if c == "!" or ord(c) >= 0x80:
            # Callers' checks exclude both; escaping would be ambiguous otherwise.
            raise InvalidPath(f"internal error: inconsistency in escaping {go_quote(s)}")
    return "".join("!" + c.lower() if "A" <= c <= "Z" else c for c in s)


def _unescape_string(escaped: str) -> str | None:
    # x/mod module.unescapeString: refuse anything escaping never produces.
    out: list[str] = []
    bang = False
    for c in escaped:
        if ord(c) >= 0x80:
            return None
        if bang:
            bang = False
            if not "a" <= c <= "z":
                return None
            out.append(c.upper())
            continue
        if c == "!":
            bang = True
            continue
        if "A" <= c <= "Z":
            return None
        out.append(c)
    if bang:
        return None
    return "".join(out)


def escape_path(path: str) -> str:
    """module.EscapePath: the case-escaped form of a valid module path.

    ``github.com/Azure/x`` becomes ``github.com/!azure/x``. Raises :class:`InvalidPath`.
    """
    check_path(path)
    return _escape_string(path)


def unescape_path(escaped: str) -> str:
    """module.UnescapePath: the module path an escaped path stands for.

    Raises :class:`InvalidPath` for upper-case letters, a ``!`` not followed by a lower-case
    letter, non-ASCII, or a result that is not a valid module path.
    """
    path = _unescape_string(escaped)
    if path is None:
        raise InvalidPath(f"invalid escaped module path {go_quote(escaped)}")
    reason = _module_path_error(path)
    if reason is not None:
        raise InvalidPath(
            f"invalid escaped module path {go_quote(escaped)}: "
            f"malformed module path {go_quote(path)}: {reason}"
        )
    return path


def escape_version(v: str) -> str:
    """module.EscapeVersion: the case-escaped form of a version (or query) string.

    Versions need not be semver here but must be valid file-name elements without ``!``.
    Raises :class:`InvalidVersion`.
    """
    if _check_elem(v, _FILE) is not None or "!" in v:
        raise InvalidVersion(f"version {go_quote(v)} invalid: disallowed version string")
    try:
        return _escape_string(v)
    except InvalidPath as e:
        raise InvalidVersion(str(e)) from None


def unescape_version(escaped: str) -> str:
    """module.UnescapeVersion: the version an escaped version stands for.

    Raises :class:`InvalidVersion` for a malformed escape or a result that is not a valid
    file-name element.
    """
    v = _unescape_string(escaped)
    if v is None:
        raise InvalidVersion(f"invalid escaped version {go_quote(escaped)}")
    reason = _check_elem(v, _FILE)
    if reason is not None:
        raise InvalidVersion(f"invalid escaped version {go_quote(v)}: {reason}")
    return v
