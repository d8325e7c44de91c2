"""One Settings object: embedded defaults < TOML file < MODVAULT_* environment < command-line flags.

Every setting has a default that works on a single machine. Bad configuration raises ConfigError naming
the setting, at start-up, before any socket is opened.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_UPSTREAM = "https://proxy.golang.org,direct"
DEFAULT_SUMDB = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


STORE_KINDS = ("fs", "memory", "s3")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the setting."""


def _default_data_dir() -> str:
    import platformdirs  # 0.3 MiB: only when no data_dir is set

    return str(Path(platformdirs.user_cache_dir("modvault")) / "data")


# The environment variable that carries the Settings (JSON) from `modvault serve` to its workers.
SETTINGS_ENV = "MODVAULT__SETTINGS_JSON"


@dataclass(frozen=True)
class Settings:
    """Everything modvault can be told. Field names are the TOML keys; MODVAULT_<NAME> the variables."""

    listen: str = "127.0.0.1:3000"
    data_dir: str = field(default_factory=_default_data_dir)
    # Where artifacts are kept: "fs" (data_dir, a valid file:// GOPROXY) or "memory" (nothing
    # survives a restart, one store per worker: for tests and throwaway instances).
    store: str = "fs"
    # store = "s3": an S3-compatible bucket (credentials from AWS_* variables). Keys go under
    # s3_prefix; s3_endpoint for servers other than AWS (http:// allowed for tests).
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint: str = ""
    s3_region: str = ""
    # AWS profile (shared credentials/config files) for the bucket's credentials; empty: AWS_PROFILE.
    s3_profile: str = ""
    # Conditional writes (If-None-Match/If-Match); false for servers without them (racy fallback,
    # and the private checksum database then refuses appends).
    s3_conditional_writes: bool = True
    # Answer zip requests with a redirect to a presigned URL valid this many seconds (S3 store only).
    redirect_zips: bool = False
    redirect_zips_expiry: int = 300
    # "local", or "redis://HOST:PORT/DB": single-flight across replicas (see "Running several replicas").
    coordination: str = "local"
    # Seconds a replica's fetch lease lives without renewal (it is renewed every third of it).
    coordination_lease: float = 30.0
    # Local scratch space (downloads in progress, git mirrors), never shared between replicas;
    # empty: <data_dir>/.modvault.
    work_dir: str = ""
    upstream: str = DEFAULT_UPSTREAM
    offline: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    workers: int = 1
    # "workers": modvault's supervisor (server/supervisor.py) starts `workers` processes and
    # respawns one that dies. "single": one process serves on its own event loop (granian
    # embedded, as each worker does): no supervisor, ~8.5 MiB less resident memory, no respawn
    # (leave that to systemd or the container runtime).
    process_model: str = "workers"
    # Refuse to start on a port another process listens on, unless this asks for SO_REUSEPORT sharing.
    allow_port_sharing: bool = False
    # On SIGTERM: stop accepting, give in-flight answers this many seconds, then stop.
    shutdown_timeout: float = 10.0
    # Mutable answers (list, @latest, query .info): fresh for this long, then revalidated.
    mutable_ttl: float = 300.0
    # Past mutable_ttl + this, a stale answer is revalidated before it is served (stale only on error).
    mutable_max_stale: float = 1500.0
    # Not-found answers are remembered this long.
    negative_ttl: float = 60.0
    # Memory tier per worker (list, .info, .mod): sized for a small host. An entry costs its body
    # plus ~0.5 KiB, so 16 MiB keeps ~10,000 small answers, a large build's whole working set.
    memory_cache_bytes: int = 16 * 1024 * 1024
    # Largest body kept in the memory tier: go.mod files and most lists are a few KiB; a bigger one is
    # read from the store (one stat and one read) rather than crowd out hundreds of small ones.
    memory_item_max_bytes: int = 256 * 1024
    # Small zips (up to memory_item_max_bytes) held in memory per worker once they are answered:
    # sent as bytes, a 64 KiB zip went at ~1.8 times the rate of a file send here. Many modules'
    # zips are a few tens of KiB, so 8 MiB holds a build's hot ones; 0 sends every zip from its file.
    hot_zip_bytes: int = 8 * 1024 * 1024
    # A hung upstream fails within ~30 s: 3 tries (retries=2) of at most 10 s without a byte.
    upstream_connect_timeout: float = 5.0
    # Seconds without a byte from an upstream, the first byte of the answer included.
    upstream_read_timeout: float = 10.0
    # Deadline for one artifact fetch across all retries (and the wait for a pooled connection).
    upstream_total_timeout: float = 300.0
    upstream_retries: int = 2
    # Connections to upstreams at once (the pool); fetches beyond it queue for one.
    upstream_max_connections: int = 64
    # Client connections: per worker at most max_connections (more wait in the listen queue); one
    # that sends nothing is cut after client_first_byte_timeout, one idle between requests after
    # client_idle_timeout (after 1 s while the worker is at 90% of max_connections).
    max_connections: int = 1024
    client_first_byte_timeout: float = 10.0
    client_idle_timeout: float = 60.0
    upstream_max_redirects: int = 5
    # PEM file of extra CA certificates trusted for upstreams and checksum databases.
    upstream_ca_file: str = ""
    # Upstream health (sources/health.py): "order" tries a `|` group in list order, "fastest" by
    # measured health and latency.
    upstream_strategy: str = "order"
    # Active probes of upstreams and checksum databases used within upstream_probe_idle seconds
    # (0 turns probing off; readiness still asks on demand).
    upstream_probe_interval: float = 10.0
    upstream_probe_idle: float = 600.0
    # Circuit breaker: opens after this many consecutive failures, or after breaker_spike_samples
    # answers slower than breaker_spike_factor x the moving baseline and at least breaker_spike_min s.
    breaker_failures: int = 5
    breaker_spike_factor: float = 2.5
    breaker_spike_min: float = 0.8
    breaker_spike_samples: int = 3
    # Seconds open before the first half-open trial (doubles on each failed trial, up to 120 s).
    breaker_backoff: float = 5.0
    # An upstream or checksum database that could not be reached is not asked again for this long.
    unreachable_memory: float = 5.0
    # A refused (tampered or rule-breaking) artifact is answered from memory this long, then
    # fetched and checked again.
    refusal_ttl: float = 120.0
    max_zip_bytes: int = 500 * 1024 * 1024
    max_mod_bytes: int = 16 * 1024 * 1024
    max_info_bytes: int = 64 * 1024
    max_list_bytes: int = 16 * 1024 * 1024
    log_level: str = "info"
    access_log: bool = True
    # Front-end mode: answer stored zips with X-Accel-Redirect to this internal nginx location
    # (serving the data directory), so nginx sends the bytes. Empty: off. See deploy/nginx/.
    accel_redirect: str = ""
    # Private modules (go.dev/ref/mod#private-modules): GOPRIVATE / GONOPROXY / GONOSUMDB patterns.
    private: str = ""
    noproxy: str = ""
    nosumdb: str = ""
    # Direct mode (the `direct` upstream keyword, and every noproxy module): git.
    vcs_max_procs: int = 4
    vcs_timeout: float = 300.0
    # Extra URL rewrites on top of the user's git config, like url.<NEW>.insteadOf <OLD>: "NEW=OLD,...".
    vcs_url_rewrites: str = ""
    # A .netrc file with credentials for private hosts, and/or "host=user:token,..." credentials.
    netrc: str = ""
    vcs_credentials: str = ""
    # GOINSECURE-style patterns: plain-http discovery and insecure git schemes allowed.
    insecure: str = ""
    # Checksum databases to proxy and verify against, "NAME+HASH+KEY [URL]", separated by ";".
    # The first one vouches for public modules.
    sumdb: str = DEFAULT_SUMDB
    sumdb_verify: bool = True
    # The private checksum database (made by `modvault sumdb init NAME`) that records every module
    # exempt from the public one (nosumdb); empty: the only one under data_dir, if there is one.
    private_sumdb: str = ""
    # Operations: background gc (off unless one limit is set), and how often the access journal is
    # appended to (requests only touch memory in between).
    gc_max_bytes: str = ""
    gc_unused_for: str = ""
    gc_interval: float = 3600.0
    access_flush_interval: float = 5.0
    # Hot mutable answers (list, @latest, queries) revalidated before they expire, and push refreshes
    # (POST /api/v1/refresh/{module}): upstream requests per minute for both (0: off), and the
    # half-life of a request's weight in the hotness score.
    refresh_budget: int = 60
    hot_half_life: float = 3600.0
    # Access control (README "Access control"). Addresses/CIDR blocks of reverse proxies whose
    # X-Forwarded-For is believed.
    trusted_proxies: str = ""
    # Supply chain: SPDX licence ids (comma-separated) whose new versions are refused (403).
    licence_denylist: str = ""
    # A directory of OSV advisories (JSON, Go ecosystem): shown in SBOMs; with osv_block, affected
    # new versions are refused (403).
    osv_dir: str = ""
    osv_block: bool = False
    # "off" (anyone who reaches the port may read) or "on" (identities, roles, rate limits).
    auth: str = "off"
    # The role of requests without credentials when auth is on; empty: none (401).
    anonymous_role: str = ""
    # Only clients in these CIDR blocks are answered (empty: everyone).
    allow_cidrs: str = ""
    # JWT from an identity provider: a JWKS URL and/or key files (PEM public keys, JWKS JSON, or a
    # shared HS256 secret), the expected iss and aud, and the claim holding the roles.
    jwt_jwks_url: str = ""
    jwt_key_files: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_roles_claim: str = "roles"
    # Roles and their rate limits: a TOML table in the config file ([roles.NAME]), JSON elsewhere.
    roles: str = ""
    # Whether /metrics needs an identity with the metrics permission when auth is on.
    metrics_auth: bool = True
    # Module patterns (GOPRIVATE syntax) that are refused (deny) or the only ones served (allow).
    deny_modules: str = ""
    allow_modules: str = ""
    # The audit log (JSON lines); empty: <data_dir>/.modvault/audit/audit.log. Rotated by size.
    audit_log: str = ""
    audit_log_max_bytes: int = 10 * 1024 * 1024
    audit_log_keep: int = 5

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# Settings that may hold credentials (URL userinfo, tokens): their values are never quoted in errors.
SECRET_SETTINGS = frozenset({"upstream", "sumdb", "vcs_credentials", "vcs_url_rewrites", "netrc"})


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type, or fail naming the setting."""
    f = _FIELDS[name]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if name == "roles" and isinstance(value, dict):
            return json.dumps(value)  # the [roles.NAME] tables of the config file
        if name == "sumdb" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ";".join(value)  # TOML may give a list; flags may repeat
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        shown = f"a {type(value).__name__}" if name in SECRET_SETTINGS else repr(value)
        raise ConfigError(f"{name}: expected {kind}, got {shown}") from None


def env_name(name: str) -> str:
    return "MODVAULT_" + name.upper()


def load_settings(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers in order of precedence and validate the result."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get("MODVAULT_CONFIG") or None
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config: cannot read {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {config_file} is not valid TOML: {exc}") from None
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"config: unknown setting {key!r} in {config_file}")
            values[name] = _coerce(name, value)
    for name in _FIELDS:
        if env_name(name) in environ:
            values[name] = _coerce(name, environ[env_name(name)])
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    settings = Settings(**values)
    validate(settings)
    return settings


# Numeric settings with a lower bound: (names, least allowed value, the rule an error states).
_RANGE_CHECKS: tuple[tuple[tuple[str, ...], int, str], ...] = (
    (("upstream_max_connections", "breaker_failures", "breaker_spike_samples"), 1, "must be at least 1"),
    (("upstream_max_redirects", "memory_cache_bytes", "max_zip_bytes", "max_mod_bytes", "max_info_bytes",
      "max_list_bytes", "memory_item_max_bytes", "hot_zip_bytes", "mutable_ttl", "mutable_max_stale",
      "negative_ttl", "upstream_connect_timeout", "upstream_read_timeout", "upstream_total_timeout",
      "upstream_probe_interval", "upstream_probe_idle", "breaker_backoff", "unreachable_memory",
      "refusal_ttl", "breaker_spike_min"), 0, "must not be negative"),
)


def validate(settings: Settings) -> None:
    """Reject values that cannot work, naming the setting."""
    from modvault.sources.redact import redact_text
    from modvault.sources.upstream_list import parse_upstream_list

    split_listen(settings.listen)
    try:
        parse_upstream_list(settings.upstream)
    except ValueError as exc:
        raise ConfigError(f"upstream: {redact_text(str(exc))}") from None
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("tls_cert/tls_key: give both or neither")
    for name in ("tls_cert", "tls_key", "upstream_ca_file"):
        value = getattr(settings, name)
        if value and not os.path.isfile(value):
            raise ConfigError(f"{name}: no such file {value!r}")
    if settings.max_connections < 1 or settings.client_first_byte_timeout <= 0 \
            or settings.client_idle_timeout <= 0:
        raise ConfigError("max_connections/client_first_byte_timeout/client_idle_timeout: must be "
                          "positive")
    if settings.accel_redirect and not (settings.accel_redirect.startswith("/")
                                        and settings.accel_redirect.endswith("/")):
        raise ConfigError(f"accel_redirect: an nginx location prefix such as /_modvault_store/ "
                          f"(starting and ending with '/'), got {settings.accel_redirect!r}")
    if settings.workers < 1:
        raise ConfigError(f"workers: at least 1 worker process is needed, got {settings.workers} "
                          f"(1 suits most sites; about one per CPU core for heavy traffic)")
    if settings.shutdown_timeout <= 0:
        raise ConfigError("shutdown_timeout: must be positive")
    if settings.process_model not in ("workers", "single"):
        raise ConfigError(f"process_model: 'workers' or 'single', got {settings.process_model!r}")
    if settings.process_model == "single" and settings.workers != 1:
        raise ConfigError(f"process_model: 'single' serves with one process; workers is "
                          f"{settings.workers}")
    if settings.workers > 1 and settings.port == 0:
        raise ConfigError(f"listen: port 0 lets the system pick a port for each process, so "
                          f"{settings.workers} workers would listen on {settings.workers} "
                          f"different ports: name a port")
    for bounded, least, rule in _RANGE_CHECKS:
        for name in bounded:
            if getattr(settings, name) < least:
                raise ConfigError(f"{name}: {rule}, got {getattr(settings, name)}")
    if settings.upstream_strategy not in ("order", "fastest"):
        raise ConfigError(f"upstream_strategy: expected order|fastest, got {settings.upstream_strategy!r}")
    if settings.breaker_spike_factor <= 1:
        raise ConfigError("breaker_spike_factor: must be above 1")
    if settings.upstream_retries < 0:
        raise ConfigError("upstream_retries: must not be negative")
    from modvault.sumdb.config import parse_sumdb

    names = set()
    for item in sumdb_settings(settings):
        try:
            cfg = parse_sumdb(item)
        except ValueError as exc:
            raise ConfigError(f"sumdb: {redact_text(str(exc))}") from None
        if cfg.name in names:
            raise ConfigError(f"sumdb: database {cfg.name} given twice")
        names.add(cfg.name)
    if settings.sumdb_verify and not names:
        raise ConfigError("sumdb: verification is on but no checksum database is configured "
                          "(set sumdb, or sumdb_verify=false for air-gapped sites)")
    parse_pairs(settings.vcs_url_rewrites, "vcs_url_rewrites")
    for cred in parse_pairs(settings.vcs_credentials, "vcs_credentials").values():
        if ":" not in cred:
            raise ConfigError("vcs_credentials: expected host=user:token entries")
    if settings.netrc and not os.path.isfile(settings.netrc):
        raise ConfigError(f"netrc: no such file {settings.netrc!r}")
    if settings.vcs_max_procs < 1 or settings.vcs_timeout <= 0:
        raise ConfigError("vcs_max_procs/vcs_timeout: must be positive")
    from modvault.ops.units import parse_duration, parse_size

    try:
        if settings.gc_max_bytes:
            parse_size(settings.gc_max_bytes)
    except ValueError as exc:
        raise ConfigError(f"gc_max_bytes: {exc}") from None
    try:
        if settings.gc_unused_for:
            parse_duration(settings.gc_unused_for)
    except ValueError as exc:
        raise ConfigError(f"gc_unused_for: {exc}") from None
    if settings.refresh_budget < 0 or settings.hot_half_life <= 0:
        raise ConfigError("refresh_budget/hot_half_life: must not be negative / must be positive")
    if settings.gc_interval <= 0 or settings.access_flush_interval <= 0:
        raise ConfigError("gc_interval/access_flush_interval: must be positive")
    from modvault.server.clientaddr import parse_cidrs

    try:
        parse_cidrs(settings.trusted_proxies, "trusted_proxies")
        parse_cidrs(settings.allow_cidrs, "allow_cidrs")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.osv_dir and not os.path.isdir(settings.osv_dir):
        raise ConfigError(f"osv_dir: no such directory {settings.osv_dir!r}")
    for lic in licence_list(settings.licence_denylist):
        if not all(c.isalnum() or c in ".-+" for c in lic):
            raise ConfigError(f"licence_denylist: not an SPDX licence id: {lic!r}")
    from modvault.auth.settings import validate_auth

    validate_auth(settings)
    if settings.coordination != "local" and not settings.coordination.startswith(
            ("redis://", "rediss://", "unix://")):
        raise ConfigError(f"coordination: expected local or redis://HOST:PORT/DB, got "
                          f"{settings.coordination.split('@')[-1]!r}")
    if settings.coordination_lease < 1:
        raise ConfigError("coordination_lease: must be at least 1 second")
    if settings.store not in STORE_KINDS:
        raise ConfigError(f"store: expected one of {'|'.join(STORE_KINDS)}, got {settings.store!r}")
    if settings.redirect_zips and settings.store != "s3":
        raise ConfigError("redirect_zips: needs store = \"s3\" (only an object store can presign URLs)")
    if not 10 <= settings.redirect_zips_expiry <= 7 * 24 * 3600:
        raise ConfigError(f"redirect_zips_expiry: expected 10 to 604800 seconds, got "
                          f"{settings.redirect_zips_expiry}")
    if settings.store == "s3" and not settings.s3_bucket:
        raise ConfigError("s3_bucket: required with store = \"s3\"")
    if settings.s3_endpoint and not settings.s3_endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"s3_endpoint: expected an http(s):// URL, got {settings.s3_endpoint!r}")
    if settings.log_level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(f"log_level: expected debug|info|warning|error, got {settings.log_level!r}")


def licence_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def sumdb_settings(settings: Settings) -> list[str]:
    return [item.strip() for item in settings.sumdb.split(";") if item.strip()]


def parse_pairs(text: str, setting: str) -> dict[str, str]:
    """``"a=b,c=d"`` -> {"a": "b", "c": "d"}; ConfigError naming the setting otherwise."""
    out: dict[str, str] = {}
    for n, item in enumerate(text.split(","), 1):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            # The entry itself is not quoted: it may hold a token (vcs_credentials).
            raise ConfigError(f"{setting}: expected KEY=VALUE entries separated by ',' "
                              f"(entry {n} is not)")
        out[key.strip()] = value.strip()
    return out
