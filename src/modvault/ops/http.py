"""HTTP answers of the operations room (no server details: status, media type, body)."""

from __future__ import annotations

from urllib.parse import parse_qs

from modvault.errors import BadRequest, ModvaultError
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


class TooManyRequests(ModvaultError):
    status = 429


async def refresh_body(runtime: OpsRuntime, module_text: str) -> bytes:
    """``POST /api/v1/refresh/{module}``: fetch the module's ``list`` now (a webhook after a tag
    push), so new versions are listed at once. Counts against ``refresh_budget``."""
    import json

    from modvault.artifact import ArtifactRef, Kind
    from modvault.module.errors import ModuleError
    from modvault.module.path import check_path, escape_path

    module = module_text.strip("/")
    try:
        check_path(module)
    except ModuleError as exc:
        raise BadRequest(f"invalid module path {module[:200]!r}: {exc}") from None
    if runtime.service is None or runtime.settings.offline:
        raise BadRequest("refresh: modvault is offline")
    if runtime.settings.refresh_budget <= 0 or not runtime.budget.take():
        raise TooManyRequests("refresh budget exhausted (refresh_budget per minute); try later")
    ref = ArtifactRef(module, escape_path(module), Kind.LIST)
    art = await runtime.service.revalidate(ref)
    versions = (art.body or b"").decode("utf-8", "replace").split()
    return (json.dumps({"Path": module, "Versions": versions}) + "\n").encode()
