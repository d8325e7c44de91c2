"""S3 store specifics on a real SeaweedFS: zip hits reuse the object's HEAD for a while (one ranged
GET per hit, not HEAD + GET), an announced removal forgets it, an out-of-band deletion is a clear
503 rather than a broken answer; credentials from an AWS profile (shared credentials file)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from modvault.artifact import ArtifactRef, Kind
from modvault.cache.coordination.state import Change
from modvault.config import Settings
from modvault.errors import StorageError
from modvault.storage.s3 import S3Store
from modvault.wiring import build_service
from tests.support.seaweed import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3, s3_credentials_env
from tests.support.upstream_server import TestUpstreamServer

MOD = "github.com/acme/hello"
ZIP_KEY = f"{MOD}/@v/v1.0.0.zip"


class CountingS3Store(S3Store):
    """The real store, counting its HEADs (what this test is about)."""

    heads = 0

    async def stat(self, key: str):  # type: ignore[no-untyped-def]
        if key.endswith(".zip"):
            type(self).heads += 1
        return await super().stat(key)


def test_zip_hits_reuse_the_head_until_a_removal(seaweed: SeaweedS3, upstream_a: TestUpstreamServer,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3_credentials_env().items():
        monkeypatch.setenv(k, v)
    prefix = f"zipstat-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=str(tmp_path / "data"), upstream=upstream_a.url, store="s3",
                        s3_bucket=seaweed.bucket, s3_prefix=prefix, s3_endpoint=seaweed.endpoint,
                        s3_region=REGION, sumdb_verify=False, upstream_probe_interval=0.0)
    ref = ArtifactRef(MOD, MOD, Kind.ZIP, "v1.0.0", "v1.0.0", True)

    async def main() -> None:
        service = build_service(settings)
        store = CountingS3Store(seaweed.bucket, prefix=prefix, endpoint=seaweed.endpoint, region=REGION)
        service.store = store
        try:
            first = await service.get(ref)  # fetched from upstream and stored
            assert first.blob is not None
            want = await first.blob.read()
            heads = CountingS3Store.heads
            for _ in range(5):
                art = await service.get(ref)
                assert art.blob is not None and await art.blob.read() == want
            assert CountingS3Store.heads - heads <= 1  # at most the first hit's HEAD
            # Deleted behind modvault's back: the cached HEAD is pinned by ETag, so the read fails
            # with a clear 503 instead of sending other bytes.
            await store.delete(ZIP_KEY)
            art = await service.get(ref)
            with pytest.raises(StorageError, match="removed or replaced"):
                assert art.blob is not None
                await art.blob.read()
            # An announced removal forgets the cached HEAD: the next request fetches it again.
            service.forget(Change("remove", MOD, "v1.0.0"))
            again = await service.get(ref)
            assert again.blob is not None and await again.blob.read() == want
        finally:
            await service.aclose()

    asyncio.run(main())
    assert upstream_a.count("/" + ZIP_KEY) == 2


def test_credentials_from_an_aws_profile(seaweed: SeaweedS3, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    creds, config = tmp_path / "credentials", tmp_path / "config"
    creds.write_text(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n"
                     f"[ci]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    config.write_text(f"[profile ci]\nregion = {REGION}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    prefix = f"profile-{uuid.uuid4().hex[:8]}"

    async def put_and_get(store: S3Store) -> bytes | None:
        await store.put_if_absent("example.com/m/@v/list", b"v1.0.0\n")
        got = await store.get("example.com/m/@v/list")
        return None if got is None else got[0]

    monkeypatch.setenv("AWS_PROFILE", "ci")
    store = S3Store(seaweed.bucket, prefix=prefix, endpoint=seaweed.endpoint)  # region from config
    assert asyncio.run(put_and_get(store)) == b"v1.0.0\n"
    # The default profile's wrong keys are refused by the server: a 503-class StorageError.
    monkeypatch.delenv("AWS_PROFILE")
    wrong = S3Store(seaweed.bucket, prefix=prefix, endpoint=seaweed.endpoint, region=REGION)
    with pytest.raises(StorageError):
        asyncio.run(put_and_get(wrong))
    # A named profile that does not exist is a configuration error, said at start-up.
    with pytest.raises(StorageError, match="no-such"):
        S3Store(seaweed.bucket, prefix=prefix, endpoint=seaweed.endpoint, region=REGION,
                profile="no-such")
