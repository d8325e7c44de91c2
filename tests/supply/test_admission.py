"""Provenance records over a store: written once, signed on request, uploads by publisher."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from modvault.errors import Forbidden, NotFound
from modvault.module.dirhash import hash_gomod, hash_zip
from modvault.storage.memory import MemoryStore
from modvault.supply.admission import SupplyChain, origin_from_info, record_key
from modvault.supply.attestkey import create_key
from modvault.supply.dsse import public_pem
from tests.supply.independent import verify_dsse
from tests.supply.licence_texts import licence_text

M, V = "corp.example/lib", "v1.2.3"
GOMOD = b"module corp.example/lib\n\ngo 1.21\n"


def _zip(tmp: Path, licence: str) -> Path:
    path = tmp / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{M}@{V}/go.mod", GOMOD)
        zf.writestr(f"{M}@{V}/LICENSE", licence_text(licence))
        zf.writestr(f"{M}@{V}/sub/LICENSE", "not the module's licence")
        zf.writestr(f"{M}@{V}/lib.go", "package lib\n")
    return path


def test_upload_provenance_names_the_publisher(tmp_path: Path) -> None:
    signer = create_key(tmp_path / "data")
    store = MemoryStore()
    supply = SupplyChain(store, signer=signer)
    zip_path = _zip(tmp_path, "ISC")
    rec = asyncio.run(supply.record_upload(M, V, publisher="alice@corp.example", zip_path=zip_path,
                                           mod=GOMOD, now=1_700_000_000))
    assert rec.licence == "ISC" and rec.zip_h1 == hash_zip(zip_path)
    assert rec.mod_h1 == hash_gomod(GOMOD)
    assert rec.zip_sha256 == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert rec.admitted_at == "2023-11-14T22:13:20Z"
    assert asyncio.run(store.stat(record_key(M, V))) is not None

    env = asyncio.run(supply.attestation(M, V))
    st = verify_dsse(json.dumps(env).encode(), public_pem(signer.public))
    build = st["predicate"]["buildDefinition"]
    assert build["externalParameters"]["origin"] == {"kind": "upload", "publisher": "alice@corp.example"}
    assert build["resolvedDependencies"][0]["uri"] == "publisher:alice@corp.example"

    # A record is never rewritten: the first one stays.
    asyncio.run(supply.record_upload(M, V, publisher="mallory", zip_path=zip_path, mod=GOMOD))
    again = asyncio.run(supply.load(M, V))
    assert again is not None and again.origin.publisher == "alice@corp.example"


def test_no_key_or_no_record_is_404(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="attest init"):
        asyncio.run(SupplyChain(MemoryStore()).attestation(M, V))
    supply = SupplyChain(MemoryStore(), signer=create_key(tmp_path))
    with pytest.raises(NotFound, match="no provenance record"):
        asyncio.run(supply.attestation(M, V))


def test_licence_denylist() -> None:
    supply = SupplyChain(MemoryStore(), denied_licences=frozenset({"MPL-2.0"}))
    supply.check_licence(M, V, "MIT")
    supply.check_licence(M, V, "NOASSERTION")
    with pytest.raises(Forbidden, match=r"MPL-2\.0 is on the denylist"):
        supply.check_licence(M, V, "MPL-2.0")
    with pytest.raises(Forbidden, match=r"Apache-2.0 AND MPL-2.0 is on the denylist \(MPL-2.0\)"):
        supply.check_licence(M, V, "Apache-2.0 AND MPL-2.0")


def test_origin_from_info() -> None:
    info = json.dumps({"Version": V, "Origin": {"VCS": "git", "URL": "https://corp.example/lib",
                                                "Hash": "ab" * 20, "Ref": "refs/tags/v1.2.3"}})
    o = origin_from_info("direct", info.encode())
    assert (o.kind, o.url, o.hash, o.ref) == ("vcs", "https://corp.example/lib", "ab" * 20,
                                              "refs/tags/v1.2.3")
    u = origin_from_info("https://proxy.example", b'{"Version": "v1.2.3"}')
    assert (u.kind, u.url, u.hash) == ("upstream", "https://proxy.example", "")
    assert origin_from_info("https://proxy.example", b"not json").kind == "upstream"
