"""GOPRIVATE-style prefix patterns (mirrors golang.org/x/mod/module.MatchPrefixPatterns).

``GOPRIVATE=corp.example.com/*,rsc.io/private`` names modules by glob patterns, each matched with
Go's ``path.Match`` against the leading path elements of a module path: a pattern of N elements
matches when it matches the first N elements of the target. So ``rsc.io/private`` matches
``rsc.io/private/x`` but not ``rsc.io/privateer``.

``path_match`` is Go's ``path.Match`` (pkg.go.dev/path#Match) on the UTF-8 bytes of its arguments:

- ``*`` matches any run of non-``/`` characters, ``?`` any single non-``/`` character;
- ``[...]`` a character class of single characters and ``lo-hi`` ranges, ``[^...]`` negated;
- ``\\c`` matches ``c`` literally, also inside classes.
"""

from __future__ import annotations

from modvault.module.errors import ModuleError

__all__ = ["match_prefix_patterns", "path_match"]

_RUNE_ERROR = 0xFFFD


class _BadPattern(Exception):
    """path.ErrBadPattern, internal: it never leaves this module."""


def _to_bytes(s: str) -> bytes:
    # Go strings are bytes; lone surrogates stand for bytes that are not valid UTF-8.
    return s.encode("utf-8", "surrogatepass")


def _decode_rune(b: bytes, i: int) -> tuple[int, int]:
    """utf8.DecodeRune of ``b[i:]``: ``(rune, size)``; ``(U+FFFD, 1)`` for an invalid encoding."""
    if i >= len(b):
        return _RUNE_ERROR, 0
    c = b[i]
    if c < 0x80:
        return c, 1
    if 0xC2 <= c <= 0xDF:
        n, lo, hi = 2, 0x80, 0xBF
    elif 0xE0 <= c <= 0xEF:
        n = 3
        lo, hi = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F)}.get(c, (0x80, 0xBF))
    elif 0xF0 <= c <= 0xF4:
        n = 4
        lo, hi = {0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(c, (0x80, 0xBF))
    else:
        return _RUNE_ERROR, 1
    if i + n > len(b) or not lo <= b[i + 1] <= hi:
        return _RUNE_ERROR, 1
    if any(not 0x80 <= x <= 0xBF for x in b[i + 2 : i + n]):
        return _RUNE_ERROR, 1
    return ord(b[i : i + n].decode("utf-8")), n


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    """Split off leading stars and the chunk up to the next unbracketed, unescaped ``*``."""
    star = False
    while pattern[:1] == b"*":
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == 0x5C:  # backslash: skip the escaped byte; a dangling one is diagnosed later
            if i + 1 < len(pattern):
                i += 1
        elif c == 0x5B:  # [
            in_range = True
        elif c == 0x5D:  # ]
            in_range = False
        elif c == 0x2A and not in_range:  # *
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: bytes) -> tuple[int, bytes]:
    """One (possibly escaped) character of a class, and the rest of the chunk."""
    if chunk[:1] in (b"", b"-", b"]"):
        raise _BadPattern
    if chunk[0] == 0x5C:
        chunk = chunk[1:]
        if chunk == b"":
            raise _BadPattern
    r, n = _decode_rune(chunk, 0)
    if r == _RUNE_ERROR and n == 1:
        raise _BadPattern
    rest = chunk[n:]
    if rest == b"":
        raise _BadPattern
    return r, rest


def _match_chunk(chunk: bytes, s: bytes) -> bytes | None:
    """Match ``chunk`` (no ``*``) at the start of ``s``: the rest of ``s``, or None.

    The whole chunk is always parsed, so a malformed one raises even when ``s`` already failed.
    """
    failed = False
    while chunk:
        if not failed and s == b"":
            failed = True
        c = chunk[0]
        if c == 0x5B:  # [ character class
            r = 0
            if not failed:
                r, n = _decode_rune(s, 0)
                s = s[n:]
            chunk = chunk[1:]
            negated = chunk[:1] == b"^"
            if negated:
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk[:1] == b"]" and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == 0x2D:  # -
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif c == 0x3F:  # ? any single character but /
            if not failed:
                if s[0] == 0x2F:
                    failed = True
                _, n = _decode_rune(s, 0)
                s = s[n:]
            chunk = chunk[1:]
        else:
            if c == 0x5C:  # backslash escapes the next byte
                chunk = chunk[1:]
                if chunk == b"":
                    raise _BadPattern
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def _match(pattern: bytes, name: bytes) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == b"":
            # A trailing * matches the rest of the name unless it holds a /.
            return b"/" not in name
        t = _match_chunk(chunk, name)
        # The last chunk must use up the name; an earlier one may leave the rest to later chunks.
        if t is not None and (t == b"" or pattern):
            name = t
            continue
        if star:
            # Let the star take 1, 2, ... more bytes, never a /.
            matched_later = False
            i = 0
            while i < len(name) and name[i] != 0x2F:
                t = _match_chunk(chunk, name[i + 1 :])
                if t is not None:
                    if not pattern and t:
                        i += 1
                        continue
                    name = t
                    matched_later = True
                    break
                i += 1
            if matched_later:
                continue
        # No match: still report a malformed remainder of the pattern.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, b"")
        return False
    return name == b""


def path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: whether ``name`` matches the shell pattern ``pattern`` as a whole.

    Raises :class:`ModuleError` ("syntax error in pattern") for a malformed pattern, as Go
    returns ``path.ErrBadPattern``.
    """
    try:
        return _match(_to_bytes(pattern), _to_bytes(name))
    except _BadPattern:
        raise ModuleError("syntax error in pattern") from None


def match_prefix_patterns(globs: str, target: str) -> bool:
    """module.MatchPrefixPatterns: whether a leading path prefix of ``target`` matches a glob.

    ``globs`` is comma-separated; empty entries are skipped, one trailing ``/`` of an entry is
    ignored, and a malformed entry never matches. A glob with N ``/`` is matched against ``target``
    cut just before its (N+1)th ``/``; a target with fewer elements is not matched.
    """
    for raw in globs.split(","):
        glob = raw[:-1] if raw.endswith("/") else raw
        if glob == "":
            continue
        n = glob.count("/")
        parts = target.split("/")
        if len(parts) <= n:
            continue  # not enough path elements
        prefix = "/".join(parts[: n + 1])
        try:
            if path_match(glob, prefix):
                return True
        except ModuleError:
            continue
    return False
