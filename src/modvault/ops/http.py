"""HTTP answers of the operations room (no server details: status, media type, body)."""

from __future__ import annotations

from urllib.parse import parse_qs

from modvault.errors import BadRequest
from modvault.ops.indexfeed import MAX_LIMIT, parse_time
from modvault.ops.runtime import OpsRuntime

NDJSON = "application/x-ndjson; charset=utf-8"


def parse_index_query(query: str) -> tuple[float, int]:
    """``since`` (RFC 3339, default the beginning) and ``limit`` (1..2000, default 2000)."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except ValueError:
        raise BadRequest("too many query parameters") from None
    since = 0.0
    limit = MAX_LIMIT
    if params.get("since"):
        raw = params["since"][0]
        try:
            since = parse_time(raw)
        except ValueError:
            raise BadRequest(f"since: expected an RFC 3339 time such as 2019-04-10T19:08:52.997264Z, "
                             f"got {raw[:64]!r}") from None
    if params.get("limit"):
        raw = params["limit"][0]
        if not raw.isdigit() or int(raw) < 1:
            raise BadRequest(f"limit: expected a positive integer, got {raw[:32]!r}")
        limit = min(int(raw[:9]), MAX_LIMIT)
    return since, limit


async def index_body(runtime: OpsRuntime, query: str) -> bytes:
    """``/index?since=&limit=``: newline-delimited JSON, oldest first. Raises BadRequest."""
    since, limit = parse_index_query(query)
    entries = await runtime.index_page(since, limit)
    return "".join(e.line() + "\n" for e in entries).encode()
