"""``modvault sumdb init|add-key|retire-key``: administer a private checksum database.

Wire into the main parser with::

    sub = parser.add_subparsers(dest="command")
    add_sumdb_commands(sub)
    ...
    args = parser.parse_args()
    if args.command == "sumdb":
        sys.exit(args.sumdb_handler(args))

The procedure for key rotation is in :mod:`modvault.sumdb.private`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from modvault.config import ConfigError
from modvault.sumdb.private import (
    PrivateSumdbError,
    add_signing_key,
    database_dir,
    init_database,
    retire_key,
)

__all__ = ["add_sumdb_commands", "run_sumdb_command"]


def _data_dir(args: argparse.Namespace) -> Path:
    """The data directory as `modvault serve` would resolve it: flag, environment, config file."""
    from modvault.config import load_settings

    return Path(load_settings(flags={"data_dir": args.data_dir}).data_dir)


def add_sumdb_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sumdb`` with its subcommands; each sets ``args.sumdb_handler``."""
    p = subparsers.add_parser("sumdb", help="administer a private checksum database")
    p.set_defaults(sumdb_handler=_usage(p))
    sub = p.add_subparsers(dest="sumdb_command", metavar="{init,add-key,retire-key}")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("name", metavar="NAME", help="database name, host[/path], e.g. sum.example.com")
        q.add_argument("--data-dir", metavar="DIR",
                       help="modvault's data directory (MODVAULT_DATA_DIR)")

    q = sub.add_parser("init", help="create a private checksum database and print its verifier line")
    common(q)
    q.set_defaults(sumdb_handler=_cmd_init)

    q = sub.add_parser("add-key", help="add a signing key that signs alongside the current ones")
    common(q)
    q.set_defaults(sumdb_handler=_cmd_add_key)

    q = sub.add_parser("retire-key", help="stop signing with a key and delete it")
    common(q)
    q.add_argument("key_hash", metavar="KEYHASH",
                   help="8 hex digits of the key to retire (second field of NAME+HASH+KEY)")
    q.set_defaults(sumdb_handler=_cmd_retire_key)


def _usage(p: argparse.ArgumentParser) -> object:
    def handler(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
        p.print_help(err)
        return 2

    return handler


def _cmd_init(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    root = _data_dir(args)
    vkey = init_database(root, args.name)
    print(vkey, file=out)
    print(f"created private checksum database {args.name} in {database_dir(root, args.name)}\n"
          f"users: GOSUMDB=\"{vkey}\" with modvault as GOPROXY; GONOSUMDB (default: GOPRIVATE) "
          f"must not match the modules to verify", file=err)
    return 0


def _cmd_add_key(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    vkey = add_signing_key(_data_dir(args), args.name)
    print(vkey, file=out)
    print("new key signs alongside the old one(s); hand this verifier line out, then retire the "
          "old key with: modvault sumdb retire-key "
          f"{args.name} OLDHASH", file=err)
    return 0


def _cmd_retire_key(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    remaining = retire_key(_data_dir(args), args.name, args.key_hash)
    for vkey in remaining:
        print(vkey, file=out)
    print(f"retired {args.key_hash}; tree heads are now signed by the key(s) above", file=err)
    return 0


def run_sumdb_command(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the parsed ``sumdb`` command; errors become a one-line message and exit status 1."""
    handler = args.sumdb_handler
    try:
        code: int = handler(args, out, err)
    except (PrivateSumdbError, ConfigError) as exc:
        print(f"modvault sumdb: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"modvault sumdb: {exc.filename or ''}: {exc.strerror}", file=err)
        return 1
    return code
