"""``modvault attest init`` and ``modvault sbom``: the supply-chain commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import httpx

from modvault.config import ConfigError
from modvault.supply.attestkey import AttestationKeyError, create_key, key_path
from modvault.supply.dsse import public_pem
from modvault.supply.sbom import FORMATS

__all__ = ["add_supply_commands", "run_supply_command"]


def add_supply_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("attest", help="the attestation key that signs provenance")
    sub = p.add_subparsers(dest="attest_command", metavar="{init}", required=True)
    q = sub.add_parser("init", help="create the Ed25519 attestation key; print its public key (PEM)")
    q.add_argument("--config", metavar="FILE", help="TOML settings file (MODVAULT_CONFIG)")
    q.add_argument("--data-dir", metavar="DIR", help="modvault's data directory (MODVAULT_DATA_DIR)")
    q.set_defaults(supply_handler=_cmd_attest_init)

    s = subparsers.add_parser("sbom", help="SBOM of a module graph (SPDX or CycloneDX JSON)")
    s.add_argument("target", metavar="GO.MOD|MODULE@VERSION",
                   help="a go.mod file, or a module version the server can fetch")
    s.add_argument("--format", choices=FORMATS, default="spdx-json")
    s.add_argument("--server", metavar="URL", required=True, help="modvault's URL")
    s.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS")
    s.set_defaults(supply_handler=_cmd_sbom)


def _cmd_attest_init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.config import load_settings

    data_dir = Path(load_settings(config_file=args.config,
                                  flags={"data_dir": args.data_dir}).data_dir)
    signer = create_key(data_dir)
    out.write(public_pem(signer.public).decode())
    print(f"created attestation key {signer.keyid} in {key_path(data_dir)}; restart `modvault "
          f"serve` to sign with it; verifiers use the public key above (also served at "
          f"/api/v1/attestation-key.pem)", file=err)
    return 0


def _cmd_sbom(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    target: str = args.target
    path = Path(target)
    if path.is_file():
        body = path.read_bytes()
    elif "@" in target and not path.exists():
        body = target.encode()
    else:
        print(f"modvault sbom: {target}: no such file (give a go.mod file or MODULE@VERSION)",
              file=err)
        return 2
    url = args.server.rstrip("/") + "/api/v1/sbom"
    try:
        resp = httpx.post(url, params={"format": args.format}, content=body, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"modvault sbom: {url}: {exc}", file=err)
        return 1
    if resp.status_code != 200:
        print(f"modvault sbom: {resp.status_code}: {resp.text.strip()[:1000]}", file=err)
        return 1
    out.write(resp.text)
    return 0


def run_supply_command(args: argparse.Namespace, out: TextIO = sys.stdout,
                       err: TextIO = sys.stderr) -> int:
    try:
        code: int = args.supply_handler(args, out, err)
    except (AttestationKeyError, ConfigError) as exc:
        print(f"modvault {args.command}: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"modvault {args.command}: {exc.filename or ''}: {exc.strerror}", file=err)
        return 1
    return code
