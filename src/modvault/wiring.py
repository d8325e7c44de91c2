"""Build the object graph from Settings: store, sources, chains, checksum databases, service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from modvault.cache.coordination.state import Coordination, LocalChanges, local_coordination
from modvault.config import ConfigError, Settings, licence_list, parse_pairs, sumdb_settings
from modvault.gate import ModuleGate
from modvault.observability.health import on_transition
from modvault.ops.journal import AccessJournal
from modvault.ops.runtime import OpsRuntime
from modvault.policy import ModulePolicy
from modvault.service import Checksums, ModuleService
from modvault.sources.base import Source
from modvault.sources.chain import Chain
from modvault.sources.health import BreakerPolicy, HealthRegistry
from modvault.sources.lazyclient import lazy_client
from modvault.sources.published import PublishedSource
from modvault.sources.tracking import Prober, make_probe_client
from modvault.sources.upstream import (
    HTTPUpstream,
    UpstreamLimits,
    make_client,
    tls_context,
    upstream_from_url,
)
from modvault.sources.upstream_list import parse_upstream_list
from modvault.sources.vcs import GitSource, HostCredential
from modvault.storage.base import Store, VersionConflict
from modvault.storage.fs import FileStore
from modvault.storage.memory import MemoryStore
from modvault.storage.workdir import WorkDir, default_work_dir
from modvault.sumdb.client import ChecksumVerifier
from modvault.sumdb.config import parse_sumdb
from modvault.sumdb.private import PrivateSumdb, PrivateSumdbError, database_dir, list_databases
from modvault.sumdb.proxy import SumdbProxy
from modvault.supply.admission import SupplyChain
from modvault.supply.attestkey import load_key
from modvault.supply.osv import load_osv_dir

if TYPE_CHECKING:
    import httpx

LOG = logging.getLogger("modvault.wiring")


def upstream_limits(settings: Settings) -> UpstreamLimits:
    return UpstreamLimits(
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
        total_timeout=settings.upstream_total_timeout,
        retries=settings.upstream_retries,
        max_redirects=settings.upstream_max_redirects,
        max_zip_bytes=settings.max_zip_bytes,
        max_mod_bytes=settings.max_mod_bytes,
        max_info_bytes=settings.max_info_bytes,
        max_list_bytes=settings.max_list_bytes,
        ca_file=settings.upstream_ca_file,
        max_connections=settings.upstream_max_connections,
    )


def build_health(settings: Settings) -> HealthRegistry:
    policy = BreakerPolicy(
        failures=settings.breaker_failures, spike_factor=settings.breaker_spike_factor,
        spike_min=settings.breaker_spike_min, spike_samples=settings.breaker_spike_samples,
        backoff=settings.breaker_backoff, backoff_max=max(120.0, settings.breaker_backoff))
    return HealthRegistry(policy, unreachable_memory=settings.unreachable_memory,
                          listener=on_transition)


def build_chain(settings: Settings, client: httpx.AsyncClient, direct: Source,
                health: HealthRegistry | None = None, published: Source | None = None) -> Chain:
    limits = upstream_limits(settings)
    # Published (uploaded) private modules answer first; every other module falls through at once.
    entries: list[tuple[Source | None, bool]] = [(published, False)] if published else []
    for entry in parse_upstream_list(settings.upstream):
        source: Source | None
        if entry.url == "off":
            source = None
        elif entry.url == "direct":
            source = direct
        else:
            source = upstream_from_url(entry.url, client, limits, health)
        entries.append((source, entry.fallback_on_any_error))
    return Chain(entries, client, strategy=settings.upstream_strategy, health=health)


def build_prober(settings: Settings, health: HealthRegistry, chain: Chain,
                 checksums: Checksums, git: GitSource | None = None) -> Prober | None:
    """Probes for every HTTP upstream, proxied checksum database and git host in use (none when
    the interval is 0)."""
    if settings.upstream_probe_interval <= 0 or settings.offline:
        return None
    client = lazy_client(lambda: make_probe_client(
        tls_context(settings.upstream_ca_file), max(1.0, min(10.0, settings.upstream_connect_timeout))))
    prober = Prober(health, client, interval=settings.upstream_probe_interval,
                    idle=settings.upstream_probe_idle)
    for source, _ in chain.sources:
        if isinstance(source, HTTPUpstream) and source.record is not None:
            prober.add(source.record, source.probe_url)
    if checksums.proxy is not None:
        for name in checksums.proxy.names:
            fetcher = checksums.proxy.fetcher(name)
            if fetcher.record is not None:
                prober.add(fetcher.record, fetcher.config.url + "/latest")
    if git is not None and git.hosts is not None:
        git.hosts.on_new = prober.add_check  # git hosts become known as they are first used
    return prober


def private_sumdb_name(settings: Settings) -> str:
    """The private database to host: the one named, else the only one under data_dir, else none."""
    if settings.private_sumdb:
        return settings.private_sumdb
    found = list_databases(Path(settings.data_dir))
    if len(found) > 1:
        raise ConfigError(f"private_sumdb: several private databases under data_dir "
                          f"({', '.join(found)}): name the one to host")
    return found[0] if found else ""


def build_checksums(settings: Settings, store: Store, client: httpx.AsyncClient,
                    policy: ModulePolicy | None = None,
                    health: HealthRegistry | None = None) -> Checksums:
    data_dir = Path(settings.data_dir)
    configs = [parse_sumdb(item) for item in sumdb_settings(settings)]
    private: PrivateSumdb | None = None
    name = private_sumdb_name(settings)
    if name:
        try:
            private = PrivateSumdb.open(data_dir, name, store)
        except PrivateSumdbError as exc:
            raise PrivateSumdbError(
                f"private_sumdb: {exc} (create it with `modvault sumdb init {name}`, "
                f"expected under {database_dir(data_dir, name)})") from None
    # A database we host ourselves is not also proxied.
    configs = [c for c in configs if private is None or c.name != private.name]
    policy = policy or ModulePolicy(settings.private, settings.noproxy, settings.nosumdb)

    def withheld(module: str) -> bool:  # never named to a public database (issue: private leaks)
        return policy.is_nosumdb(module) or policy.is_private(module)

    proxy = SumdbProxy(configs, store, client, ttl=settings.mutable_ttl, offline=settings.offline,
                       limits=upstream_limits(settings), withheld=withheld,
                       health=health)
    verifier = None
    if settings.sumdb_verify and configs:
        verifier = ChecksumVerifier(proxy.fetcher(configs[0].name))
    return Checksums(proxy, verifier, private)


def build_git_source(settings: Settings, work: WorkDir,
                     health: HealthRegistry | None = None) -> GitSource:
    creds = {}
    for host, cred in parse_pairs(settings.vcs_credentials, "vcs_credentials").items():
        user, _, token = cred.partition(":")
        creds[host] = HostCredential(user, token)
    source = GitSource(
        work.vcs,
        max_git_procs=settings.vcs_max_procs,
        git_timeout=settings.vcs_timeout,
        url_rewrites=parse_pairs(settings.vcs_url_rewrites, "vcs_url_rewrites") or None,
        netrc=settings.netrc or None,
        credentials=creds or None,
        insecure=settings.insecure,
        upstream_limits=upstream_limits(settings),
        health=health,
    )
    if source.hosts is not None:
        source.hosts_idle = settings.upstream_probe_idle
        source.hosts.probe_timeout = max(1.0, min(10.0, settings.vcs_timeout))
    return source


def build_store(settings: Settings) -> Store:
    """The one place that chooses the Store implementation."""
    if settings.store == "memory":
        return MemoryStore()
    if settings.store == "s3":
        from modvault.storage.s3 import S3Store

        return S3Store(settings.s3_bucket, prefix=settings.s3_prefix, endpoint=settings.s3_endpoint,
                       region=settings.s3_region, conditional_writes=settings.s3_conditional_writes,
                       profile=settings.s3_profile)
    return FileStore(settings.data_dir)


def build_coordination(settings: Settings) -> Coordination:
    """What replicas share: nothing beyond this machine's workers (local), or Redis."""
    if settings.coordination == "local":
        return local_coordination(settings.data_dir)
    from modvault.cache.coordination.redis import RedisFlightLock, RedisLink
    from modvault.cache.coordination.redis_state import (
        RedisChanges,
        RedisFreshness,
        RedisNegative,
        RedisRateLimiter,
        RedisWriterLease,
    )

    link = RedisLink(settings.coordination)
    return Coordination(
        flight=RedisFlightLock(settings.coordination, ttl=settings.coordination_lease, link=link),
        negative=RedisNegative(link), freshness=RedisFreshness(link), rates=RedisRateLimiter(link),
        changes=RedisChanges(link, LocalChanges(settings.data_dir)), writer=RedisWriterLease(link))


def build_service(settings: Settings) -> ModuleService:
    from modvault.observability.workers import WORKER_DEATHS

    WORKER_DEATHS.data_dir = settings.data_dir  # this worker's /metrics reads the count
    store = build_store(settings)
    work = WorkDir(default_work_dir(settings.data_dir, settings.work_dir))
    # Made on the first upstream request: a worker serving only stored artifacts never imports
    # the HTTP client stack (sources/lazyclient.py).
    limits = upstream_limits(settings)
    client = lazy_client(lambda: make_client(limits))
    health = build_health(settings)
    git = build_git_source(settings, work, health)
    direct: Source = git
    published = PublishedSource(store)
    chain = build_chain(settings, client, direct, health, published)
    direct_chain = Chain([(published, False), (direct, False)])
    policy = ModulePolicy(settings.private, settings.noproxy, settings.nosumdb)
    checksums = build_checksums(settings, store, client, policy, health)
    coordination = build_coordination(settings)
    if checksums.private is not None:
        checksums.private.writer = coordination.writer
    gate = ModuleGate(store, allow=settings.allow_modules, deny=settings.deny_modules)
    return ModuleService(settings, store, chain, work=work, policy=policy, direct_chain=direct_chain,
                         checksums=checksums, access=AccessJournal(settings.data_dir),
                         supply=build_supply(settings, store), gate=gate,
                         health=health, prober=build_prober(settings, health, chain, checksums, git),
                         coordination=coordination)


def build_ops(settings: Settings, service: ModuleService) -> OpsRuntime:
    """The per-worker operations task (journal, store totals, index feed, background gc)."""
    from modvault.ops.metrics import STORE_COLLECTOR

    journal = service.access if isinstance(service.access, AccessJournal) else AccessJournal(
        settings.data_dir)
    runtime = OpsRuntime(settings, service.policy, journal, in_flight=service.flights)
    runtime.service = service
    STORE_COLLECTOR.runtime = runtime
    return runtime


def build_supply(settings: Settings, store: Store) -> SupplyChain:
    """Provenance records (always), attestations (with a key from `modvault attest init`),
    licence and advisory policy whose refusals become blocks (gate.py) and audit-log lines."""
    advisories = load_osv_dir(settings.osv_dir) if settings.osv_dir else None
    return SupplyChain(store, signer=load_key(settings.data_dir),
                       denied_licences=frozenset(licence_list(settings.licence_denylist)),
                       advisories=advisories, block_advisories=settings.osv_block,
                       on_refusal=policy_refusal_recorder(settings, store))


def policy_refusal_recorder(settings: Settings, store: Store) -> Callable[[str, str, str, str], None]:
    """What a supply-policy refusal leaves behind: a block with its reason (so every endpoint
    answers 403 and /api/v1/blocks lists it; `modvault unblock` lifts it) and an audit-log line.
    The block is written by compare-and-swap in its own event loop, off the server's, then
    announced as `modvault block` announces one: this machine's other workers and every replica
    reread the blocks at once, instead of within their next refresh (about a second)."""
    from modvault.cache.coordination.announce import announce_sync
    from modvault.cache.coordination.state import Change
    from modvault.errors import ModvaultError
    from modvault.gate import GateError, block_version
    from modvault.observability.audit import AuditLog, audit_path

    data_dir = Path(settings.data_dir)
    audit = AuditLog(audit_path(settings.audit_log, settings.data_dir), settings.audit_log_max_bytes,
                     settings.audit_log_keep)

    def write(event: str, module: str, version: str, reason: str) -> None:
        try:
            block_version(store, data_dir, module, version, reason, by="modvault supply policy")
        except (GateError, OSError, ModvaultError, VersionConflict) as exc:
            LOG.error("cannot record the block of %s@%s: %s", module, version, exc)
        else:
            try:
                announce_sync(settings, Change("block", module, version))
            except OSError as exc:  # the others still reread the blocks within a second
                LOG.warning("could not announce the block of %s@%s: %s", module, version, exc)
        audit.record(event, result="denied", identity="modvault", action="admit",
                     target=f"{module}@{version}", reason=reason)

    def refused(event: str, module: str, version: str, reason: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            write(event, module, version, reason)
            return
        loop.run_in_executor(None, write, event, module, version, reason)

    return refused
