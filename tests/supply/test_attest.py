"""DSSE envelopes and in-toto statements, checked with securesystemslib (not modvault's code)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from securesystemslib.exceptions import VerificationError

from modvault.supply.attestkey import AttestationKeyError, create_key, key_path, load_key
from modvault.supply.dsse import EnvelopeError, open_envelope, pae, public_pem, sign_envelope
from modvault.supply.provenance import Origin, ProvenanceRecord, Verification, statement
from tests.supply.independent import verify_dsse


def test_pae_matches_the_dsse_spec_example() -> None:
    # DSSE protocol.md test vector.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")
    assert pae("", b"") == b"DSSEv1 0  0 "


def _record() -> ProvenanceRecord:
    return ProvenanceRecord(
        module="github.com/Acme/Upper", version="v2.0.0+incompatible",
        admitted_at="2026-01-02T03:04:05Z",
        origin=Origin("vcs", url="https://github.com/Acme/Upper", vcs="git", hash="a" * 40,
                      ref="refs/tags/v2.0.0"),
        zip_h1="h1:" + "A" * 43 + "=", mod_h1="h1:" + "B" * 43 + "=",
        zip_sha256="c" * 64, mod_sha256="d" * 64, zip_size=1234,
        verification=Verification("sumdb", "sum.example", 42, base64.b64encode(b"r" * 32).decode(), 7),
        licence="MIT")


def test_record_round_trips_through_json() -> None:
    rec = _record()
    assert ProvenanceRecord.from_json(rec.to_json()) == rec


def test_envelope_verifies_with_securesystemslib_and_tampering_fails(tmp_path: Path) -> None:
    signer = create_key(tmp_path)
    st = statement(_record())
    env = sign_envelope(signer, json.dumps(st).encode())
    raw = json.dumps(env).encode()
    got = verify_dsse(raw, public_pem(signer.public))
    assert got["_type"] == "https://in-toto.io/Statement/v1"
    assert got["predicateType"] == "https://slsa.dev/provenance/v1"
    assert got["subject"][0] == {"name": "github.com/!acme/!upper/@v/v2.0.0+incompatible.zip",
                                 "digest": {"sha256": "c" * 64}}
    params = got["predicate"]["buildDefinition"]
    assert params["internalParameters"]["verification"]["treeSize"] == 42
    assert params["resolvedDependencies"][0]["digest"] == {"gitCommit": "a" * 40}
    assert open_envelope(env, signer.public)[1] == json.dumps(st).encode()

    # One byte of the payload changed: both verifiers refuse.
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[len(payload) // 2] ^= 0x01
    forged = dict(env, payload=base64.b64encode(bytes(payload)).decode())
    with pytest.raises(VerificationError):
        verify_dsse(json.dumps(forged).encode(), public_pem(signer.public))
    with pytest.raises(EnvelopeError):
        open_envelope(forged, signer.public)
    # Another key: refused.
    other = create_key(tmp_path / "other")
    with pytest.raises(VerificationError):
        verify_dsse(raw, public_pem(other.public))


def test_key_is_made_once_and_private(tmp_path: Path) -> None:
    assert load_key(tmp_path) is None
    signer = create_key(tmp_path)
    assert key_path(tmp_path).stat().st_mode & 0o077 == 0
    with pytest.raises(AttestationKeyError):
        create_key(tmp_path)
    loaded = load_key(tmp_path)
    assert loaded is not None and loaded.keyid == signer.keyid
