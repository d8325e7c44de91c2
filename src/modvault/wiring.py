"""Build the object graph from Settings: store, sources, chain, service. No I/O beyond setup."""

from __future__ import annotations

from modvault.config import Settings
from modvault.service import ModuleService
from modvault.sources.base import Source
from modvault.sources.chain import Chain, parse_upstream_list
from modvault.sources.direct import DirectDisabled
from modvault.sources.upstream import UpstreamLimits, make_client, upstream_from_url
from modvault.storage.fs import FileStore


def upstream_limits(settings: Settings) -> UpstreamLimits:
    return UpstreamLimits(
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        total_timeout=settings.upstream_total_timeout,
        retries=settings.upstream_retries,
        max_redirects=settings.upstream_max_redirects,
        max_zip_bytes=settings.max_zip_bytes,
        max_mod_bytes=settings.max_mod_bytes,
        max_info_bytes=settings.max_info_bytes,
        max_list_bytes=settings.max_list_bytes,
    )


def build_chain(settings: Settings) -> Chain:
    limits = upstream_limits(settings)
    client = make_client(limits)
    entries: list[tuple[Source | None, bool]] = []
    for entry in parse_upstream_list(settings.upstream):
        source: Source | None
        if entry.url == "off":
            source = None
        elif entry.url == "direct":
            source = DirectDisabled()
        else:
            source = upstream_from_url(entry.url, client, limits)
        entries.append((source, entry.fallback_on_any_error))
    return Chain(entries, client)


def build_service(settings: Settings) -> ModuleService:
    store = FileStore(settings.data_dir)
    return ModuleService(settings, store, build_chain(settings))
