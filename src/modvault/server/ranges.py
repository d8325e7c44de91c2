"""HTTP Range and conditional-request rules (RFC 9110 §13 and §14), as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

MAX_RANGES = 32


class Unsatisfiable(Exception):
    """Every range lies outside the representation: 416 with ``Content-Range: bytes */N``."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str, size: int) -> list[ByteRange] | None:
    """Parse a Range header against a representation of ``size`` bytes.

    Returns None when the header must be ignored (malformed, other unit, too many ranges: RFC 9110
    §14.2 lets a server ignore it and send 200), the satisfiable ranges otherwise, and raises
    Unsatisfiable when none is satisfiable. Overlapping and adjacent ranges are coalesced
    (:func:`coalesce`), so the ranges returned never add up to more than ``size`` bytes.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in spec.split(",")]
    if not parts or len(parts) > MAX_RANGES or any(not p for p in parts):
        return None
    out: list[ByteRange] = []
    for part in parts:
        first, dash, last = part.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
            return None
        if not first.isascii() or not last.isascii() or len(first) > 19 or len(last) > 19:
            return None
        if not first:
            if not last:
                return None
            n = int(last)  # suffix-range: the last n bytes
            if n == 0 or size == 0:
                continue
            out.append(ByteRange(max(0, size - n), size))
            continue
        start = int(first)
        if last:
            stop = int(last)
            if stop < start:
                return None  # invalid range-spec: the whole header is ignored
            if start >= size:
                continue
            out.append(ByteRange(start, min(stop, size - 1) + 1))
        else:
            if start >= size:
                continue
            out.append(ByteRange(start, size))
    if not out:
        raise Unsatisfiable()
    return coalesce(out)


def coalesce(spans: list[ByteRange]) -> list[ByteRange]:
    """Merge ranges that overlap or touch (RFC 9110 §14.2 allows it "regardless of the order" they
    were asked in): ``bytes=0-,0-,0-`` would otherwise send the representation once per range.
    Disjoint ranges keep the order they were asked in; once any merge happens they come sorted."""
    if len(spans) < 2:
        return spans
    ordered = sorted(spans, key=lambda r: r.start)
    merged = [ordered[0]]
    for span in ordered[1:]:
        last = merged[-1]
        if span.start <= last.end:
            merged[-1] = ByteRange(last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return spans if len(merged) == len(spans) else merged


def http_date(value: str) -> float | None:
    import email.utils  # with the email package (0.3 MiB): loaded by the first date asked about

    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    return dt.timestamp()


def etag_matches(header: str, etags: tuple[str, ...], *, weak: bool) -> bool:
    """If-None-Match (weak comparison) or If-Match/If-Range (strong) against our current ETags."""
    header = header.strip()
    if header == "*":
        return True
    for raw in header.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag in etags:
            return True
    return False


def not_modified(if_none_match: str | None, if_modified_since: str | None,
                 etags: tuple[str, ...], mtime: float) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since when both are present."""
    if if_none_match is not None:
        return etag_matches(if_none_match, etags, weak=True)
    if if_modified_since is not None:
        since = http_date(if_modified_since)
        return since is not None and int(mtime) <= since
    return False


def if_range_allows(if_range: str | None, etag: str, mtime: float) -> bool:
    """RFC 9110 §13.1.5: an ETag must match strongly, a date must equal Last-Modified exactly."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    when = http_date(value)
    return when is not None and int(when) == int(mtime)


def accepts_gzip(header: str | None) -> bool:
    if not header:
        return False
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, val = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False
