"""The attestation key: one Ed25519 key per data directory, made by ``modvault attest init``.

Kept as PKCS#8 PEM in ``<data_dir>/.modvault/attestation/key.pem`` (mode 0600, outside the
GOPROXY file names so the data directory stays a valid ``file://`` GOPROXY). The public half is
what verifiers need; it is printed by ``attest init`` and served at /api/v1/attestation-key.pem.
"""

from __future__ import annotations

import os
from pathlib import Path

from modvault.supply.dsse import Signer

__all__ = ["AttestationKeyError", "create_key", "key_path", "load_key"]

KEY_FILE = ".modvault/attestation/key.pem"


class AttestationKeyError(Exception):
    """The key is missing, already exists, or unreadable; the message says which and where."""


def key_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / KEY_FILE


def create_key(data_dir: Path | str) -> Signer:
    """Make a new key; refuses to replace an existing one (attestations already handed out
    would stop verifying)."""
    path = key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AttestationKeyError(f"an attestation key already exists at {path}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return Signer(key)


def load_key(data_dir: Path | str) -> Signer | None:
    """The key of data_dir, or None when `modvault attest init` was never run there."""
    path = key_path(data_dir)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AttestationKeyError(f"cannot read {path}: {exc.strerror}") from None
    # cryptography only once there is a key to load (a server without one never imports it).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise AttestationKeyError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AttestationKeyError(f"{path}: not an Ed25519 key")
    return Signer(key)
