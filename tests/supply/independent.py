"""Verification of modvault's attestations with independent implementations only:
securesystemslib (DSSE), spdx-tools (SPDX 2.3) and cyclonedx-python-lib (CycloneDX 1.6 schema)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def verify_dsse(envelope_json: bytes, public_pem: bytes) -> dict[str, Any]:
    """Verify with securesystemslib; return the in-toto statement. Raises on any failure."""
    key = SSlibKey.from_crypto(load_pem_public_key(public_pem))  # type: ignore[arg-type]
    env = Envelope.from_dict(json.loads(envelope_json))
    env.verify([key], 1)
    statement: dict[str, Any] = json.loads(env.payload)
    return statement


def spdx_errors(doc: dict[str, Any], tmp_dir: Any) -> list[str]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_dir / "sbom.spdx.json"
    path.write_text(json.dumps(doc))
    parsed = parse_file(str(path))
    return [m.validation_message for m in validate_full_spdx_document(parsed)]


def cyclonedx_errors(doc: dict[str, Any]) -> list[str]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    return [] if err is None else [str(err)]
