"""The upstream list with the go command's GOPROXY semantics (go.dev/ref/mod#goproxy-protocol).

Entries are separated by ``,`` (fall through to the next entry only on 404/410, i.e. NotFound/Gone) or
``|`` (fall through on any error, timeouts included). ``direct`` is the version-control source; ``off``
refuses. The list is parsed once; each fetch walks it in order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from modvault.errors import Gone, ModvaultError, NotFound, StorageError, Unavailable
from modvault.sources.base import Source
from modvault.sources.redact import redact_url

T = TypeVar("T")
LOG = logging.getLogger("modvault.sources")


def redact_upstream_list(text: str) -> str:
    return re.sub(r"[^,|]+", lambda m: redact_url(m.group(0).strip()), text)


@dataclass(frozen=True)
class ListEntry:
    """One element of the upstream list and how to treat its failure."""

    url: str  # a URL, "direct" or "off"
    fallback_on_any_error: bool  # True when followed by "|"


def parse_upstream_list(text: str) -> list[ListEntry]:
    """Parse ``https://a|https://b,direct``; ValueError on anything the go command would reject."""
    text = text.strip()
    if not text:
        raise ValueError("empty upstream list")
    tokens = re.split(r"([,|])", text)  # items at even indexes, separators at odd ones
    entries: list[ListEntry] = []
    for i in range(0, len(tokens), 2):
        item = tokens[i].strip()
        sep = tokens[i + 1] if i + 1 < len(tokens) else ""
        if not item:
            raise ValueError(f"empty entry in upstream list {redact_upstream_list(text)!r}")
        if item not in ("direct", "off"):
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https", "file") or (
                parts.scheme != "file" and not parts.hostname
            ):
                raise ValueError(f"invalid upstream URL {redact_url(item)!r} (want http(s)://, "
                                 "file://, direct or off)")
        entries.append(ListEntry(item, sep == "|"))
    return entries


class Chain:
    """Walks the sources in list order, falling through as the separators allow."""

    def __init__(self, sources: list[tuple[Source | None, bool]],
                 client: httpx.AsyncClient | None = None) -> None:
        # (source, fallback_on_any_error); None stands for "off".
        self.sources = sources
        self._client = client  # shared by the HTTP upstreams; closed with the chain

    @property
    def names(self) -> list[str]:
        return [s.name if s is not None else "off" for s, _ in self.sources]

    async def _walk(self, call: Callable[[Source], Awaitable[T]]) -> tuple[T, str]:
        err: ModvaultError | None = None
        for source, any_error in self.sources:
            if source is None:
                raise NotFound("module lookup disabled by upstream list entry 'off'")
            try:
                return await call(source), source.name
            except (NotFound, Gone) as exc:
                # Prefer reporting a real failure over a not-found from a later entry.
                if err is None or isinstance(err, (NotFound, Gone)):
                    err = exc
                continue
            except StorageError:
                raise  # our own disk failed: no other upstream can help, none is to blame
            except ModvaultError as exc:
                if any_error:
                    err = exc
                    continue
                raise
            except OSError as exc:
                # Network failures arrive as ModvaultErrors (retry.py); a bare OSError is local.
                raise StorageError(f"modvault store: local I/O error while fetching from "
                                   f"{source.name}: {exc.strerror or type(exc).__name__}") from None
            except Exception as exc:
                # Whatever else a source's answer made us trip on is classified as that upstream's
                # failure (502), never a 500; the trace goes to the log for us to fix.
                LOG.exception("unexpected error handling an answer from %s", source.name)
                failure = Unavailable(f"{source.name}: answer could not be processed "
                                      f"({type(exc).__name__})")
                if any_error:
                    err = failure
                    continue
                raise failure from None
        if err is None:
            raise NotFound("no upstream configured")
        raise err

    async def list(self, module: str) -> tuple[list[str], str]:
        return await self._walk(lambda s: s.list(module))

    async def latest(self, module: str) -> tuple[bytes, str]:
        return await self._walk(lambda s: s.latest(module))

    async def info(self, module: str, version: str) -> tuple[bytes, str]:
        return await self._walk(lambda s: s.info(module, version))

    async def mod(self, module: str, version: str) -> tuple[bytes, str]:
        return await self._walk(lambda s: s.mod(module, version))

    async def zip(self, module: str, version: str, dest: Path) -> tuple[None, str]:
        return await self._walk(lambda s: s.zip(module, version, dest))

    async def aclose(self) -> None:
        for source, _ in self.sources:
            if source is not None:
                await source.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def probe(self) -> tuple[bool, str]:
        """Is at least one source reachable (or recently reached)? For /readyz."""
        reasons = []
        for source, _ in self.sources:
            if source is None:
                continue
            ok, why = await source.probe()
            if ok:
                return True, f"{source.name}: {why}"
            reasons.append(f"{source.name}: {why}")
        if not reasons:
            return True, "no network sources configured"
        return False, "; ".join(reasons)
