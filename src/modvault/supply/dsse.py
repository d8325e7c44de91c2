"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1.0) signed with Ed25519.

The signature covers PAE(payloadType, payload), the pre-authentication encoding
``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` (LEN: decimal byte count, no leading
zeros), never the JSON envelope itself, so re-serialising the envelope cannot change what is
signed. ``keyid`` is the hex SHA-256 of the canonical JSON of
``{"keytype": "ed25519", "keyval": {"public": <hex>}, "scheme": "ed25519"}``, the default key id
of securesystemslib/TUF, so standard verifiers find the key by id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # cryptography is imported where keys are used: a server without a key never is
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["INTOTO_PAYLOAD_TYPE", "EnvelopeError", "Signer", "key_id", "open_envelope", "pae",
           "public_pem", "sign_envelope"]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    """An envelope that is malformed or whose signature does not verify."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """securesystemslib's default key id of an Ed25519 key (canonical JSON, sorted, compact)."""
    doc = {"keytype": "ed25519", "keyval": {"public": _raw_public(key).hex()}, "scheme": "ed25519"}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def public_pem(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key and its id."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def keyid(self) -> str:
        return key_id(self.public)


def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode()


def sign_envelope(signer: Signer, payload: bytes,
                  payload_type: str = INTOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    """A DSSE envelope (JSON-ready dict) carrying payload, signed by signer."""
    sig = signer.private.sign(pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": _b64(payload),
            "signatures": [{"keyid": signer.keyid, "sig": _b64(sig)}]}


def open_envelope(envelope: Any, key: Ed25519PublicKey) -> tuple[str, bytes]:
    """Verify an envelope with key; return (payloadType, payload). Raises EnvelopeError."""
    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        sigs = envelope["signatures"]
        if not isinstance(payload_type, str) or not isinstance(sigs, list):
            raise TypeError
    except (KeyError, TypeError, binascii.Error):
        raise EnvelopeError("malformed DSSE envelope") from None
    from cryptography.exceptions import InvalidSignature

    message = pae(payload_type, payload)
    for s in sigs:
        try:
            key.verify(base64.b64decode(s["sig"], validate=True), message)
        except (KeyError, TypeError, binascii.Error, InvalidSignature):
            continue
        return payload_type, payload
    raise EnvelopeError("no signature verifies with the attestation key")
