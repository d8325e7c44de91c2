"""``modvault token create|list|revoke``, ``block``, ``unblock`` (on the data directory) and
``modvault publish`` (to a running server).

State-changing commands resolve the data directory exactly as ``serve`` does (flag, environment,
config file) and write the records in the store, where a running server sees them within seconds.
``publish`` builds the zip as the go command would (module/zipbuild), from a directory or a git ref,
and uploads it with a token from ``MODVAULT_TOKEN`` or the .netrc entry for the server's host.
"""

from __future__ import annotations

import argparse
import io
import netrc
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from modvault.config import ConfigError, Settings, load_settings
from modvault.storage.base import Store

__all__ = ["add_auth_commands", "run_auth_command"]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_file=getattr(args, "config", None),
                         flags={"data_dir": getattr(args, "data_dir", None)})


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML settings file (MODVAULT_CONFIG)")
    p.add_argument("--data-dir", metavar="DIR", help="modvault's data directory (MODVAULT_DATA_DIR)")


def add_auth_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("token", help="create, list and revoke API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    q = tsub.add_parser("create", help="create a token; it is printed once, as the last line")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--role", required=True, help="role name (admin, dev, ci, reader or your own)")
    q.add_argument("--modules", default="", metavar="PATTERNS",
                   help="restrict the token to these module patterns (GOPRIVATE syntax)")
    q.add_argument("--expires", metavar="DURATION", help="lifetime, e.g. 30d, 12h (default: none)")
    _store_args(q)
    q.set_defaults(auth_handler=_token_create)
    q = tsub.add_parser("list", help="list tokens (never the secrets)")
    _store_args(q)
    q.set_defaults(auth_handler=_token_list)
    q = tsub.add_parser("revoke", help="revoke a token")
    q.add_argument("name", metavar="NAME")
    _store_args(q)
    q.set_defaults(auth_handler=_token_revoke)

    p = sub.add_parser("block", help="block a module version (403 with the reason everywhere)")
    p.add_argument("target", metavar="MODULE@VERSION")
    p.add_argument("--reason", required=True, metavar="TEXT")
    _store_args(p)
    p.set_defaults(auth_handler=_block)
    p = sub.add_parser("unblock", help="lift a block")
    p.add_argument("target", metavar="MODULE@VERSION")
    _store_args(p)
    p.set_defaults(auth_handler=_unblock)

    p = sub.add_parser("publish", help="build a module zip and upload it to a running modvault")
    p.add_argument("dir", metavar="DIR", help="the module's directory (or the git repository)")
    p.add_argument("--module", required=True, metavar="M")
    p.add_argument("--version", required=True, metavar="V")
    p.add_argument("--server", default=os.environ.get("MODVAULT_SERVER"), metavar="URL",
                   help="modvault's URL (MODVAULT_SERVER)")
    p.add_argument("--git", metavar="REF", help="zip this git ref of DIR instead of the work tree")
    p.add_argument("--subdir", default="", help="with --git: the module's directory in the repo")
    p.set_defaults(auth_handler=_publish)


def run_auth_command(args: argparse.Namespace, out: TextIO = sys.stdout,
                     err: TextIO = sys.stderr) -> int:
    from modvault.auth.tokens import TokenError
    from modvault.gate import GateError

    try:
        code: int = args.auth_handler(args, out, err)
        return code
    except ConfigError as exc:
        print(f"modvault {args.command}: configuration error: {exc}", file=err)
        return 2
    except (TokenError, GateError) as exc:
        print(f"modvault {args.command}: {exc}", file=err)
        return 1


def _open(args: argparse.Namespace) -> tuple[Settings, Store, Path]:
    """The store `modvault serve` would use (tokens and blocks live there, S3 included)."""
    from modvault.wiring import build_store

    settings = _settings(args)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return settings, build_store(settings), data_dir


def _audit(settings: Settings, event: str, target: str, reason: str = "", **extra: object) -> None:
    from modvault.observability.audit import AuditLog, audit_path

    user = os.environ.get("USER") or str(os.getuid())
    log = AuditLog(audit_path(settings.audit_log, settings.data_dir), settings.audit_log_max_bytes,
                   settings.audit_log_keep)
    log.record(event, result="ok", identity=f"cli:{user}", action=f"modvault {event}",
               target=target, reason=reason, extra=extra)


def _token_create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.auth.policy import parse_roles
    from modvault.auth.tokens import TokenError, create_token
    from modvault.ops.units import parse_duration

    settings, store, data_dir = _open(args)
    roles = parse_roles(settings.roles)
    if args.role not in roles:
        raise TokenError(f"no role named {args.role!r} (known: {', '.join(sorted(roles))})")
    try:
        expires = parse_duration(args.expires) if args.expires else None
    except ValueError as exc:
        raise TokenError(f"--expires: {exc}") from None
    token, rec = create_token(store, data_dir, args.name, args.role,
                              modules=args.modules, expires_in=expires)
    _audit(settings, "token.create", rec.name, role=rec.role, modules=rec.modules,
           expires=rec.expires)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.expires)) if rec.expires else "never"
    print(f"created token {rec.name} (role {rec.role}, modules {rec.modules or 'any'}, "
          f"expires {when}); it is shown once:", file=out)
    print(token, file=out)
    return 0


def _token_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.auth.tokens import read_records

    _, store, _ = _open(args)
    now = time.time()
    for rec in read_records(store).values():
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.expires)) \
            if rec.expires else "never"
        state = " (expired)" if rec.expired(now) else ""
        print(f"{rec.name}\trole={rec.role}\tmodules={rec.modules or '*'}\texpires={when}{state}",
              file=out)
    return 0


def _token_revoke(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.auth.tokens import revoke_token

    settings, store, data_dir = _open(args)
    rec = revoke_token(store, data_dir, args.name)
    _audit(settings, "token.revoke", rec.name, role=rec.role)
    print(f"revoked token {rec.name}", file=out)
    return 0


def _split_target(target: str) -> tuple[str, str]:
    from modvault.gate import GateError
    from modvault.module.errors import ModuleError
    from modvault.module.path import check

    module, sep, version = target.rpartition("@")
    if not sep or not module or not version:
        raise GateError(f"expected MODULE@VERSION, got {target!r}")
    try:
        check(module, version)
    except ModuleError as exc:
        raise GateError(f"{target}: {exc}") from None
    return module, version


def _block(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.cache.coordination.announce import announce_sync
    from modvault.cache.coordination.state import Change
    from modvault.gate import block_version

    module, version = _split_target(args.target)
    settings, store, data_dir = _open(args)
    user = os.environ.get("USER") or str(os.getuid())
    b = block_version(store, data_dir, module, version, args.reason,
                      f"cli:{user}")
    announce_sync(settings, Change("block", module, version))
    _audit(settings, "block", f"{module}@{version}", b.reason)
    print(f"blocked {module}@{version}: {b.reason}", file=out)
    return 0


def _unblock(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from modvault.cache.coordination.announce import announce_sync
    from modvault.cache.coordination.state import Change
    from modvault.gate import unblock_version

    module, version = _split_target(args.target)
    settings, store, data_dir = _open(args)
    unblock_version(store, data_dir, module, version)
    announce_sync(settings, Change("unblock", module, version))
    _audit(settings, "unblock", f"{module}@{version}")
    print(f"unblocked {module}@{version}", file=out)
    return 0


# -- publish ---------------------------------------------------------------------------------


def _token_for(server: str) -> str | None:
    token = os.environ.get("MODVAULT_TOKEN")
    if token:
        return token
    host = urlsplit(server).hostname or ""
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return auth[2] if auth else None


def build_zip(directory: Path, module: str, version: str, git_ref: str | None, subdir: str,
              dest: Path) -> None:
    """The module zip, built as the go command builds it (module/zipbuild)."""
    from modvault.module.zipbuild import create_zip, entries_from_archive, entries_from_dir
    from modvault.module.zipcheck import ZipReader

    with open(dest, "wb") as fh:
        if git_ref is None:
            create_zip(fh, module, version, entries_from_dir(directory), from_directory=True)
            return
        proc = subprocess.run(["git", "-C", str(directory), "archive", "--format=zip",
                               "--prefix=prefix/", "--end-of-options", git_ref],
                              capture_output=True, check=False, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"modvault publish: git archive {git_ref}: "
                             f"{proc.stderr.decode(errors='replace').strip()[:300]}")
        reader = ZipReader(io.BytesIO(proc.stdout))
        create_zip(fh, module, version, entries_from_archive(reader, subdir))


def _git_hash(directory: Path, ref: str) -> str:
    proc = subprocess.run(["git", "-C", str(directory), "rev-parse", f"{ref}^{{commit}}"],
                          capture_output=True, text=True, check=False, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _publish(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import httpx

    from modvault.module.errors import ModuleError
    from modvault.module.path import escape_path, escape_version

    if not args.server:
        print("modvault publish: --server URL (or MODVAULT_SERVER) is required", file=err)
        return 2
    server = args.server.rstrip("/")
    try:
        url = (f"{server}/api/v1/modules/{escape_path(args.module)}/@v/"
               f"{escape_version(args.version)}")
    except ModuleError as exc:
        print(f"modvault publish: {exc}", file=err)
        return 2
    headers = {"content-type": "application/zip"}
    token = _token_for(server)
    if token:
        headers["authorization"] = f"Bearer {token}"
    if args.git:
        commit = _git_hash(Path(args.dir), args.git)
        if commit:
            headers["x-modvault-origin-hash"] = commit
        headers["x-modvault-origin-ref"] = args.git
    with tempfile.TemporaryDirectory(prefix="modvault-publish-") as tmp:
        zpath = Path(tmp) / "module.zip"
        try:
            build_zip(Path(args.dir), args.module, args.version, args.git, args.subdir, zpath)
        except ModuleError as exc:
            print(f"modvault publish: cannot build the module zip: {exc}", file=err)
            return 1
        try:
            with open(zpath, "rb") as body:
                cafile = os.environ.get("SSL_CERT_FILE")
                resp = httpx.put(url, content=body, headers=headers, timeout=600.0,
                                 verify=ssl.create_default_context(cafile=cafile) if cafile
                                 else True)
        except httpx.HTTPError as exc:
            print(f"modvault publish: {server}: {type(exc).__name__}", file=err)
            return 1
    text = resp.text.strip()
    if resp.status_code in (200, 201):
        state = "published" if resp.status_code == 201 else "already published (identical)"
        print(f"{state} {args.module}@{args.version}", file=out)
        return 0
    print(f"modvault publish: {resp.status_code} {text[:500]}", file=err)
    return 1


# -- serve flags of this room ----------------------------------------------------------------

_SERVE_FLAGS = (
    ("auth", "on|off", "require identities (MODVAULT_AUTH)"),
    ("anonymous_role", "ROLE", "role of requests without credentials (MODVAULT_ANONYMOUS_ROLE)"),
    ("allow_cidrs", "CIDRS", "only answer these client networks (MODVAULT_ALLOW_CIDRS)"),
    ("trusted_proxies", "CIDRS", "proxies whose X-Forwarded-For is believed"),
    ("jwt_jwks_url", "URL", "identity provider's JWKS URL"),
    ("jwt_key_files", "FILES", "JWT verification keys: PEM, JWKS JSON or HS256 secret files"),
    ("jwt_issuer", "ISS", "required JWT iss"),
    ("jwt_audience", "AUD", "required JWT aud"),
    ("jwt_roles_claim", "CLAIM", "JWT claim holding the roles (roles, scope...)"),
    ("audit_log", "FILE", "audit log path (default under data_dir)"),
    ("deny_modules", "PATTERNS", "modules refused with 403"),
    ("allow_modules", "PATTERNS", "the only modules served"),
)


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    """``modvault serve`` flags for the access-control settings."""
    for name, metavar, text in _SERVE_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), metavar=metavar, help=text)


def serve_flags(args: argparse.Namespace) -> dict[str, object]:
    return {name: getattr(args, name, None) for name, _, _ in _SERVE_FLAGS}
