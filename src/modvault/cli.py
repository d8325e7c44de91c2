"""The `modvault` command: `modvault serve` starts the proxy on granian, in-process."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modvault import __version__
from modvault.config import ConfigError, Settings, load_settings
from modvault.sources.chain import redact_upstream_list


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the proxy")
    p.add_argument("--config", metavar="FILE", help="TOML settings file (MODVAULT_CONFIG)")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (MODVAULT_LISTEN)")
    p.add_argument("--data-dir", metavar="DIR", help="where artifacts are kept (MODVAULT_DATA_DIR)")
    p.add_argument("--upstream", metavar="LIST",
                   help="upstream list in GOPROXY syntax (MODVAULT_UPSTREAM)")
    p.add_argument("--offline", action="store_const", const=True, default=None,
                   help="serve only what is stored (MODVAULT_OFFLINE)")
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate: serve HTTPS + h2")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key (PKCS#8)")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (MODVAULT_WORKERS)")
    p.add_argument("--log-level", metavar="LEVEL", help="debug|info|warning|error")


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        "listen": args.listen,
        "data_dir": args.data_dir,
        "upstream": args.upstream,
        "offline": args.offline,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "workers": args.workers,
        "log_level": args.log_level,
    }


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    from modvault.server.app import SETTINGS_ENV

    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"data_dir: cannot create {settings.data_dir}: {exc.strerror}") from None
    os.environ[SETTINGS_ENV] = settings.to_json()
    scheme = "https" if settings.tls_cert else "http"
    print(f"modvault {__version__} serving {scheme}://{settings.listen} "
          f"data={settings.data_dir} upstream={redact_upstream_list(settings.upstream)}"
          + (" (offline)" if settings.offline else ""), file=sys.stderr, flush=True)
    kwargs: dict[str, object] = {}
    if settings.tls_cert:
        kwargs["ssl_cert"] = Path(settings.tls_cert)
        kwargs["ssl_key"] = Path(settings.tls_key)
    server = Granian(
        "modvault.server.app:create_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        http=HTTPModes.auto,
        workers=settings.workers,
        log_enabled=True,
        log_level=settings.log_level,  # type: ignore[arg-type]
        log_access=False,
        websockets=False,
        **kwargs,  # type: ignore[arg-type]
    )
    server.serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modvault", description="A caching Go module proxy.")
    parser.add_argument("--version", action="version", version=f"modvault {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(config_file=args.config, flags=_flags(args))
        if args.command == "serve":
            serve(settings)
    except ConfigError as exc:
        print(f"modvault: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
