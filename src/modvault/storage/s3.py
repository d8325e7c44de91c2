"""S3-compatible store (AWS S3, SeaweedFS, MinIO, Ceph RGW...) on obstore's async client.

Keys are the same GOPROXY URL space as the filesystem store, under ``s3_prefix`` in ``s3_bucket``.

- ETag: the object store's own ETag, which the server keeps with the object; it is never
  recomputed. Ranged and streamed reads carry ``If-Match`` with it, so a body can never be spliced
  from two versions of a key.
- ``put_if_absent``: ``PUT`` with ``If-None-Match: *``. Files larger than ``MULTIPART_MIN`` are
  uploaded in parts from the temp file (never read whole into memory) to
  ``.modvault/uploads/<random>``, then copied to the key with a conditional multipart copy (the
  complete request carries ``If-None-Match: *``), then the upload is deleted: first writer wins
  for large zips too. A lifecycle rule on ``<prefix>.modvault/uploads/`` (and on incomplete
  multipart uploads) removes what a crash leaves.
- ``put_if_version``: ``PUT`` with ``If-Match: <etag>`` (``If-None-Match: *`` for "absent").
- Without conditional writes (``s3_conditional_writes = false``, for servers that lack them) the
  same calls check with HEAD/GET first and then write: two writers can race, which the service
  tolerates for immutable artifacts (both hold verified content) and the private checksum database
  refuses (:attr:`atomic_cas` is False: it will not append rather than risk a fork).

Credentials come from the usual ``AWS_*`` environment variables, an AWS profile (``s3_profile`` or
``AWS_PROFILE``, see aws_profile.py), or instance/web-identity credentials, as obstore finds them.
Every failure to reach the store is StorageError (503).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import obstore
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.store import S3Store as _ObS3Store

from modvault.errors import StorageError
from modvault.storage.aws_profile import ProfileError, profile_credentials
from modvault.storage.base import (
    STREAM_CHUNK,
    ObjectInfo,
    StagedFile,
    VersionConflict,
    as_path,
    check_key,
)

T = TypeVar("T")
MULTIPART_MIN = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
UPLOADS = ".modvault/uploads/"


def _info(key: str, meta: Any) -> ObjectInfo:
    modified = meta["last_modified"]
    mtime = modified.timestamp() if isinstance(modified, datetime) else float(modified)
    return ObjectInfo(key, int(meta["size"]), str(meta["e_tag"]), mtime)


class S3Body:
    """An object in the bucket, read by ranged GETs pinned to its ETag."""

    __slots__ = ("_store", "info")

    def __init__(self, store: S3Store, info: ObjectInfo) -> None:
        self._store = store
        self.info = info

    def _range(self, start: int, end: int | None) -> tuple[int, int]:
        stop = self.info.size if end is None else min(end, self.info.size)
        return start, max(start, stop)

    async def read(self, start: int = 0, end: int | None = None) -> bytes:
        lo, hi = self._range(start, end)
        if lo >= hi:
            return b""
        result = await self._get_pinned(lo, hi)
        return bytes(await self._store._call(self.info.key, result.bytes_async()))

    async def _get_pinned(self, lo: int, hi: int) -> Any:
        try:
            return await self._store._call(self.info.key, obstore.get_async(
                self._store.client, self.info.key,
                options={"range": (lo, hi), "if_match": self.info.etag}))
        except (FileNotFoundError, PreconditionError):
            raise StorageError(f"store: {self.info.key} was removed or replaced since it was "
                               "looked up; retry") from None

    async def stream(self, start: int = 0, end: int | None = None,
                     chunk: int = STREAM_CHUNK) -> AsyncIterator[bytes]:
        lo, hi = self._range(start, end)
        if lo >= hi:
            return
        result = await self._get_pinned(lo, hi)
        try:
            async for block in result.stream(min_chunk_size=min(chunk, hi - lo)):
                data = bytes(block)
                for pos in range(0, len(data), chunk):
                    yield data[pos:pos + chunk]
        except Exception as exc:  # the store failed mid-body
            raise StorageError(f"store: reading {self.info.key}: {_short(exc)}") from None


class S3Store:
    # No local files: every stat is a request (the service keeps zip stats briefly, see service.py).
    remote = True

    def __init__(self, bucket: str, *, prefix: str = "", endpoint: str = "", region: str = "",
                 conditional_writes: bool = True, profile: str = "") -> None:
        config: dict[str, Any] = {"copy_if_not_exists": "multipart"}
        try:
            provider, profile_region = profile_credentials(profile)
        except ProfileError as exc:
            raise StorageError(f"store: s3 {bucket}: {exc}") from None
        region = region or (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                            or profile_region)
        if endpoint:
            config["endpoint"] = endpoint
        if region:
            config["region"] = region
        client_options: dict[str, Any] = {"timeout": "60s", "connect_timeout": "10s"}
        if endpoint.startswith("http://"):
            client_options["allow_http"] = True
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Bounded retries: a store that is down must become a quick 503, not a hung request.
        retry = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
        self.client = _ObS3Store(bucket, prefix=self.prefix or None, config=config,  # type: ignore[arg-type]
                                 client_options=client_options,  # type: ignore[arg-type]
                                 retry_config=retry,  # type: ignore[arg-type]
                                 credential_provider=provider)  # type: ignore[arg-type]
        self.conditional = conditional_writes
        # Compare-and-swap is atomic only with conditional writes; the private log needs it.
        self.atomic_cas = conditional_writes

    async def _call(self, key: str, op: Awaitable[T]) -> T:
        try:
            return await op
        except (FileNotFoundError, AlreadyExistsError, PreconditionError):
            raise
        except Exception as exc:
            raise StorageError(f"store: s3 {self.bucket}: {key}: {_short(exc)}") from None

    # -- reading -------------------------------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo | None:
        check_key(key)
        try:
            meta = await self._call(key, obstore.head_async(self.client, key))
        except FileNotFoundError:
            return None
        return _info(key, meta)

    async def open(self, key: str) -> S3Body | None:
        info = await self.stat(key)
        return None if info is None else S3Body(self, info)

    async def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        check_key(key)
        try:
            result = await self._call(key, obstore.get_async(self.client, key))
            data = bytes(await self._call(key, result.bytes_async()))
        except FileNotFoundError:
            return None
        return data, _info(key, result.meta)

    # -- writing -------------------------------------------------------------------------------

    async def put_if_absent(self, key: str, data: bytes | Path | StagedFile
                            ) -> tuple[ObjectInfo, bool]:
        check_key(key)
        data = as_path(data)
        if not self.conditional:
            existing = await self.stat(key)
            if existing is not None:
                return existing, False
            if isinstance(data, Path) and os.path.getsize(data) >= MULTIPART_MIN:
                await self._call(key, obstore.put_async(self.client, key, data, chunk_size=PART_SIZE))
            else:
                body = data.read_bytes() if isinstance(data, Path) else data
                await self._call(key, obstore.put_async(self.client, key, body, use_multipart=False))
            return await self._must_stat(key), True
        try:
            if isinstance(data, Path) and os.path.getsize(data) >= MULTIPART_MIN:
                await self._put_large_if_absent(key, data)
            else:
                body = data.read_bytes() if isinstance(data, Path) else data
                await self._call(key, obstore.put_async(self.client, key, body, mode="create"))
            written = True
        except AlreadyExistsError:
            written = False
        except PreconditionError:  # some servers answer 412 rather than 409 to If-None-Match
            written = False
        return await self._must_stat(key), written

    async def _put_large_if_absent(self, key: str, path: Path) -> None:
        if await self.stat(key) is not None:
            raise AlreadyExistsError(key)
        staging = f"{UPLOADS}{uuid.uuid4().hex}"
        try:
            await self._call(key, obstore.put_async(self.client, staging, path, chunk_size=PART_SIZE))
            await self._call(key, obstore.copy_async(self.client, staging, key, overwrite=False))
        finally:
            with contextlib.suppress(Exception):
                await obstore.delete_async(self.client, staging)

    async def _must_stat(self, key: str) -> ObjectInfo:
        info = await self.stat(key)
        if info is None:
            raise StorageError(f"store: s3 {self.bucket}: {key} vanished right after it was written")
        return info

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        check_key(key)
        await self._call(key, obstore.put_async(self.client, key, data, use_multipart=False))
        return await self._must_stat(key)

    async def put_if_version(self, key: str, data: bytes, version: str | None) -> ObjectInfo:
        check_key(key)
        if not self.conditional:
            current = await self.stat(key)
            if (None if current is None else current.etag) != version:
                raise VersionConflict(f"{key}: not at version {version}")
            return await self.put(key, data)
        mode: Any = "create" if version is None else {"e_tag": version}
        try:
            await self._call(key, obstore.put_async(self.client, key, data, mode=mode))
        except (AlreadyExistsError, PreconditionError, FileNotFoundError):
            raise VersionConflict(f"{key}: not at version {version}") from None
        return await self._must_stat(key)

    async def delete(self, key: str) -> None:
        check_key(key)
        with contextlib.suppress(FileNotFoundError):
            await self._call(key, obstore.delete_async(self.client, key))

    async def list(self, prefix: str) -> builtins.list[str]:
        base = prefix.rstrip("/") + "/"
        check_key(base.rstrip("/"))
        try:
            result = await self._call(prefix, obstore.list_with_delimiter_async(self.client, base))
        except FileNotFoundError:
            return []
        return sorted(str(o["path"]) for o in result["objects"])

    async def walk(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Every object under *prefix*, at any depth (for inventory and removal commands)."""
        out: builtins.list[ObjectInfo] = []
        try:
            stream = obstore.list(self.client, prefix.rstrip("/") or None, chunk_size=1000)
            async for batch in stream:
                out.extend(_info(str(m["path"]), m) for m in batch)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise StorageError(f"store: s3 {self.bucket}: listing {prefix or '/'}: {_short(exc)}") from None
        return out

    async def writable(self) -> bool:
        probe = f".modvault/probe/{os.getpid()}-{uuid.uuid4().hex}"
        try:
            await self._call(probe, obstore.put_async(self.client, probe, b"ok"))
            await self._call(probe, obstore.delete_async(self.client, probe))
        except Exception:
            return False
        return True

    async def presign_get(self, key: str, expires_seconds: int) -> str:
        """A short-lived URL a client can GET the object from directly."""
        url = await self._call(key, obstore.sign_async(self.client, "GET", key,
                                                       timedelta(seconds=expires_seconds)))
        return str(url)

    async def aclose(self) -> None:
        return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (type(exc).__name__ + ": " + text)[:300]


__all__ = ["S3Body", "S3Store"]
