"""``modvault prewarm``: commands that talk to a running modvault (``--server URL`` or
``MODVAULT_SERVER``; token from ``MODVAULT_TOKEN`` or .netrc)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TextIO

from modvault.ops.prewarm import Prewarmer, Progress, client_for, load_targets
from modvault.ops.targets import TargetError
from modvault.ops.units import format_bytes

DEFAULT_SERVER = "http://127.0.0.1:3000"


def add_server_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", metavar="URL",
                   help=f"modvault to talk to (MODVAULT_SERVER; default {DEFAULT_SERVER})")


def server_url(args: argparse.Namespace) -> str:
    return str(args.server or os.environ.get("MODVAULT_SERVER") or DEFAULT_SERVER)


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prewarm", help="fetch modules and their dependencies into a running modvault")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="module@version, go.mod, go.sum, go.work, a file of module@version lines, "
                        "or - for lines on stdin")
    add_server_argument(p)
    p.add_argument("--jobs", type=int, default=8, metavar="N", help="requests at a time (8)")
    p.add_argument("--no-deps", action="store_true", help="do not follow requirements")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(ops_handler=cmd_prewarm)


def cmd_prewarm(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        targets = load_targets(args.targets, sys.stdin)
    except TargetError as exc:
        print(f"modvault prewarm: {exc}", file=err)
        return 2
    if not targets:
        print("modvault prewarm: no module versions to prewarm", file=err)
        return 2
    mode = "none" if args.json else ("bar" if err.isatty() else "lines")
    progress = Progress(mode, err)

    async def main() -> object:
        async with client_for(server_url(args)) as client:
            return await Prewarmer(client, jobs=args.jobs, transitive=not args.no_deps,
                                   progress=progress).run(targets)

    report = asyncio.run(main())
    from modvault.ops.prewarm import PrewarmReport

    assert isinstance(report, PrewarmReport)
    doc = report.to_json()
    if args.json:
        json.dump(doc, out)
        out.write("\n")
    else:
        print(f"prewarmed {doc['Versions']} module versions in {report.seconds:.1f}s: "
              f"{doc['Fetched']} artifacts fetched, {doc['Cached']} already cached, "
              f"{format_bytes(int(str(doc['Bytes'])))}; {doc['Failed']} failed", file=out)
        for o in report.failed:
            print(f"  {o.target}: {o.error}", file=out)
    return 1 if report.failed else 0
