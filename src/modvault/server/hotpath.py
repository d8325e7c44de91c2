"""Prebuilt answers for the hottest requests: a plain GET (or a single Range) of a cached artifact.

The profile of a cached ``.info`` under load (py-spy, perf) put about half of the worker's CPU in
Python, most of it in walking the general path once per request: the request object, connection
bookkeeping, the route table, path parsing, the service's tier lookups, the renderer's header checks,
the middleware list. For an artifact that was just answered the answer is known in full, so the app
asks this table first: path -> status line, headers and body (or file) built once.

What is kept is exactly what the general path sends (the same headers, ETag, Cache-Status), and what
the general path records is recorded here too (metrics, access-log line, access-journal touch for
gc and prewarm). An entry is used only while it is still true:

- small bodies (``.info``, ``.mod``) while the memory tier still holds the same Artifact object (an
  eviction or invalidation of the memory tier drops the entry too); the lookup also keeps the memory
  tier's recency right;
- zips while their file is still linked and still the file the entry was learned from (``fstat`` of
  a cached descriptor: ``rm`` and gc take effect at once, as in the general path, which looks the
  file up on every request);
- and news from sibling workers or replicas (published, blocked, removed) is handled first, the way
  the service does (``forget``), before any entry is used.

Small zips (many modules' zips are a few tens of KiB) are answered from memory once learned: their
bytes are read in a thread after the first answer, within a per-worker budget (``hot_zip_bytes``,
items up to ``memory_item_max_bytes``). In a bare granian app, a 64 KiB zip answered as bytes went
at 2.1 times the requests per second of granian's ``response_file`` (which opens the file and
reads it in a blocking-pool task for every answer), 0.77 of nginx's against 0.36; in modvault
1.8 times (bench_proxy's 64 KiB zip row).

Where a table sits depends on the middleware. With none that runs before handlers (auth off, no
client allowlist) the app asks one first, before any request object exists: on granian's own
thread, before the event loop sees the request (``serve_now``, server/scheduling.py), then on
the loop's thread (``serve``). An answer given on granian's thread reads what the loop's thread
owns and changes none of it; what it records waits in a bounded queue for the loop's. Otherwise
the middleware decides who may read what (client allowlist, authentication, authorization, rate
limit, the audit log): on granian's thread for what auth/quick.py can decide exactly as the
middleware would (then ``serve_now`` answers), else on the general path up to the handler, where
a GET the middleware lets through is answered from a table in place of the artifact handler
(``serve_request``), and the middleware's after hooks log and count it. There are two tables then,
one per renderer, so an answer always carries the cache policy its request gets from the general
path: ``App.hot_public`` for requests without credentials (all of them with auth off, the anonymous
role's with auth on), ``App.hot_private`` for authenticated ones (``Cache-Control: private``);
together they keep one table's bounds.

Either way, while blocks or an allow/deny list exist, an entry is used only if the gate lets its
module and version through (the service's own check; a refused one gets its 403 from the general
path), and not at all until changed blocks have been reread. Anything else (HEAD, conditional
requests, If-Range, multipart ranges, unlearned encodings) takes the general path, which learns
entries as it answers. Bounded in entries and in body bytes.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modvault.artifact import Artifact, ArtifactRef, Kind
from modvault.observability import metrics
from modvault.server import ranges
from modvault.server.compress import INLINE_BYTES
from modvault.server.render import PREAD_MAX, Renderer
from modvault.storage import keys

if TYPE_CHECKING:
    from modvault.observability.logs import AccessLog
    from modvault.server.request import Request
    from modvault.service import ModuleService

Headers = list[tuple[str, str]]

MAX_ENTRIES = 4096
MAX_BODY_BYTES = 4 << 20  # small bodies are shared with the memory tier; this bounds the rest
MAX_SMALL_BODY = INLINE_BYTES  # gzip encodings of these are kept on the Artifact
_MEMO = 1024  # Accept-Encoding values and Range headers remembered
# Per zip entry, the 206 answers of up to _PARTIALS Range headers of up to _PARTIAL_HEADER
# characters each (a client resuming a download asks the same few ranges again), and at most _MEMO
# of them in the whole table (about 1 KiB each).
_PARTIALS, _PARTIAL_HEADER = 8, 64
# Answers given on granian's thread whose records wait for the loop's (HotPath.serve_now): the
# loop adds them this long after the first one of a batch, and granian's thread answers no more
# until they are fewer than _QUEUED (the loop is starved: what it cannot record, it answers).
SETTLE_DELAY = 0.01
_QUEUED = 8192  # about 1 MiB of records
# Records settled between two moments the loop's thread lets go of the GIL, so that granian's
# thread is not held up for a whole batch (a run of 128 with the log on: about 0.3 ms). In one
# socket A/B (6 rounds, cached .info, log on) against no let-go: p99 5.22 against 5.62 ms, CPU per
# request 40.7 against 39.0 us; letting go every 32 gave 5.08 ms at 45.8 us.
_SETTLE_RUN = 128
_UNSET: Any = object()


@dataclass(slots=True)
class Counts:
    """An entry's cells of the per-request metrics (``HotCounter.cell``), added to in place: the
    four counter updates and the histogram's of a prebuilt answer without a lookup each."""

    lookup: list[float]  # modvault_cache_lookups (memory or store, hit)
    prebuilt: list[float]  # modvault_prebuilt_answers
    ok: list[float]  # modvault_requests with status 200
    sent: list[float]  # modvault_bytes_served
    latency: list[int]  # modvault_request_duration_seconds: count per bucket
    latency_sum: list[float]
    partial: list[float] | None = None  # modvault_requests with status 206, once answered


_LATENCY_BUCKETS = metrics.REQUEST_LATENCY.buckets


@dataclass(slots=True)
class HotEntry:
    key: str  # the store key: memory tier and access journal
    module: str  # what the gate checks (blocks, allow/deny lists)
    version: str
    art: Artifact
    kind: str  # metrics label
    headers: Headers  # a plain 200
    size: int
    url: str = ""  # the path it answers (its key in HotPath.entries)
    body: bytes | None = None  # small bodies
    path: str | None = None  # zips on local disk
    gzip: tuple[Headers, bytes] | None = None  # the answer to gzip-accepting clients, once learned
    # (status, bytes) -> the fixed parts of its access-log line
    log: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)
    # Range header -> its span and 206 headers (a few short headers per entry: _PARTIALS)
    partials: dict[str, tuple[ranges.ByteRange, Headers]] = field(default_factory=dict)
    base: Headers = field(default_factory=list)  # headers of every answer (for 206)
    accel: Headers | None = None  # front-end mode: the X-Accel-Redirect answer (server/accel.py)
    inode: tuple[int, int] = (0, 0)  # zips: (st_dev, st_ino) of the file learned
    data: bytes | None = None  # small zips: the file's bytes, once read (HotPath._load_zip)
    counts: Counts | None = None  # its metrics' cells, once answered (HotPath._count)


class HotPath:
    """Path -> prebuilt answer; see the module docstring for when an entry is used."""

    def __init__(self, renderer: Renderer, service: ModuleService, access_log: AccessLog,
                 max_entries: int = MAX_ENTRIES, max_body_bytes: int = MAX_BODY_BYTES,
                 max_zip_bytes: int = 0, max_zip_item: int = 0) -> None:
        self.renderer = renderer
        self.service = service
        self.memory = service.memory
        self.gate = service.gate
        self.journal = service.access
        self.changes = service.coordination.changes
        self.access_log = access_log
        self.max_entries = max_entries
        self.max_body_bytes = max_body_bytes
        self.entries: dict[str, HotEntry] = {}
        self.body_bytes = 0
        self.max_zip_bytes = max_zip_bytes  # small zips' bytes held (0: zips are sent from files)
        self.max_zip_item = min(max_zip_item, max_zip_bytes)
        self.zip_bytes = 0
        self.partials_kept = 0  # 206 answers kept by the entries (HotEntry.partials), in all
        self._gzip_ok: dict[str, bool] = {}
        self._spans: dict[tuple[str, int], ranges.ByteRange | None] = {}
        # Answers given on granian's thread (serve_now), recorded on the loop's (settle):
        # (entry, status, body bytes, HTTP version, time answered, seconds taken)
        self._queued: deque[tuple[HotEntry, int, int, str, float, float]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by off_loop: serve_now answers
        self._settling = False  # a settle is scheduled

    # -- answering on granian's thread ------------------------------------------------------

    def off_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let :meth:`serve_now` answer from granian's thread, recording on ``loop``'s."""
        self._loop = loop
        metrics.settle_with(self.settle)

    def serve_now(self, scope: Any, proto: Any) -> bool:
        """:meth:`serve` for the thread granian calls its scheduler from, beside the loop's.

        It only reads what the loop's thread changes (entries, the memory tier, the change
        token, the gate, descriptors under their lock) and declines whatever would change it:
        an entry gone stale, a change to take in, a descriptor not open. Those go to the loop's
        thread, where :meth:`serve` forgets or drops first. What is recorded for an answer
        (metrics, access-log line, access journal, memory-tier recency) is queued for
        :meth:`settle` on the loop's thread, which runs at most ``SETTLE_DELAY`` later, and
        before the metrics are read."""
        loop = self._loop
        if loop is None or len(self._queued) >= _QUEUED:
            return False
        started = time.perf_counter()
        answered = self.answer(scope, proto, here=False)
        if answered is None:
            return False
        entry, status, size = answered
        self._queued.append((entry, status, size, str(scope.http_version), time.time(),
                             time.perf_counter() - started))
        if not self._settling:
            self._settling = True  # set after the append: a settle that has begun takes it
            loop.call_soon_threadsafe(loop.call_later, SETTLE_DELAY, self.settle)
        return True

    def settle(self) -> None:
        """Record the answers :meth:`serve_now` gave (on the loop's thread)."""
        self._settling = False  # before taking: an answer queued from now on schedules again
        queued = self._queued
        memory = self.memory
        # Those queued now: the ones queued meanwhile have scheduled the next settle.
        for n in range(1, len(queued) + 1):
            entry, status, size, http, ts, elapsed = queued.popleft()
            if entry.body is not None:
                memory.get(entry.key)  # its recency in the memory tier
            self._note(entry, status, size, http, ts, elapsed)
            if n % _SETTLE_RUN == 0:
                time.sleep(0)  # let go of the GIL: granian's thread answers meanwhile

    def close(self) -> None:
        """No more answers from granian's thread; record those given (a stopping worker)."""
        self._loop = None
        self.settle()

    # -- answering --------------------------------------------------------------------------

    def serve(self, scope: Any, proto: Any) -> bool:
        """Answer the request if a prebuilt answer fits it, recording it as the general path
        would (its middleware included); False leaves it to the general path."""
        started = time.perf_counter()
        answered = self.answer(scope, proto)
        if answered is None:
            return False
        entry, status, size = answered
        self._record(entry, scope, status, size, started)
        return True

    def serve_request(self, req: Request) -> bool:
        """Answer a request that the access middleware has let through (it runs the after
        hooks, which log and count it): what the artifact handler would do, prebuilt."""
        answered = self.answer(req.scope, req.proto)
        if answered is None:
            return False
        entry, req.status, req.size = answered
        req.kind, req.tier = entry.kind, entry.art.tier
        self._count(entry)
        return True

    def answer(self, scope: Any, proto: Any, here: bool = True) -> tuple[HotEntry, int, int] | None:
        """Send the prebuilt answer if one fits: (its entry, status, body bytes); None sends
        nothing. ``here`` False: on granian's thread, where nothing is changed (serve_now)."""
        entry = self.entries.get(scope.path)
        if entry is None or scope.method != "GET":
            return None
        changes = self.changes
        if changes is not None and (changes.changed() if here else changes.pending()):
            # A sibling worker published, blocked or removed something: what the service would
            # do first (drop its caches, reread blocks), then the general path answers.
            if here:
                self.service.forget(None)
            return None
        gate = self.gate
        if gate.active and (not gate.loaded or gate.refusal(entry.module, entry.version)):
            # Blocks or allow/deny lists: the service's check (ModuleService._gated) for this
            # module and version; the general path rereads the blocks or answers the 403.
            return None
        h = scope.headers
        if "if-none-match" in h or "if-modified-since" in h:
            return None
        if entry.body is not None:
            if "range" in h:
                return None
            if (self.memory.get(entry.key) if here else self.memory.peek(entry.key)) \
                    is not entry.art:  # evicted or replaced: forget it
                if here:
                    self.drop(scope.path)
                return None
            accept = h.get("accept-encoding")
            if accept is not None and self._accepts_gzip(accept):
                if entry.gzip is None:
                    return None  # learned by the general path on this request
                headers, body = entry.gzip
            else:
                headers, body = entry.headers, entry.body
            proto.response_bytes(200, headers, body)
            return entry, 200, len(body)
        if here:
            return self._answer_file(entry, scope, proto)
        with self.renderer.files.lock:  # the descriptor stays open while it is used
            return self._answer_file(entry, scope, proto, here=False)

    def _answer_file(self, entry: HotEntry, scope: Any, proto: Any, here: bool = True
                     ) -> tuple[HotEntry, int, int] | None:
        path = entry.path
        assert path is not None
        files = self.renderer.files
        h = scope.headers
        try:
            # fstat of a cached descriptor (no path walk): a removed file has no links left, and
            # a descriptor reopened after eviction from the cache may name another file.
            fd = files.fd(path) if here else files.held(path)
            if fd is None:  # not open: the loop's thread opens it
                return None
            st = os.fstat(fd)
            if st.st_nlink == 0 or (st.st_dev, st.st_ino) != entry.inode:
                raise FileNotFoundError(path)
        except OSError:  # removed (rm, gc) or replaced: the general path decides
            if here:
                files.forget(path)
                self.drop(scope.path)
            return None
        if entry.accel is not None and "if-range" not in h:
            proto.response_empty(200, entry.accel)  # nginx sends the bytes (and the range)
            return entry, 200, 0
        data = entry.data
        rng = h.get("range")
        if rng is None:
            if data is not None:
                proto.response_bytes(200, entry.headers, data)
            else:
                proto.response_file(200, entry.headers, path)
            return entry, 200, entry.size
        if "if-range" in h:
            return None
        partial = entry.partials.get(rng)
        if partial is None:
            span = self._span(rng, entry.size)
            if span is None:  # several ranges, none, or unsatisfiable: the general path
                return None
            partial = (span, [("content-type", "application/zip"), ("etag", entry.art.etag),
                              ("content-range", span.content_range(entry.size)),
                              ("content-length", str(span.length)), *entry.base])
            if here and len(entry.partials) < _PARTIALS and len(rng) <= _PARTIAL_HEADER \
                    and self.partials_kept < _MEMO:
                entry.partials[rng] = partial
                self.partials_kept += 1
        span, headers = partial
        if data is not None:
            proto.response_bytes(206, headers, data[span.start:span.end])  # end: exclusive
        elif span.length <= PREAD_MAX:
            proto.response_bytes(206, headers, os.pread(fd, span.length, span.start))
        else:
            proto.response_file_range(206, headers, path, span.start, span.end)
        return entry, 206, span.length

    def _count(self, entry: HotEntry) -> Counts:
        """What the general path's service and handler record (access journal, cache lookups),
        and the prebuilt answer; the entry's cells, for what the general path's middleware
        records (``_record``)."""
        if self.journal is not None:
            self.journal.touch(entry.key)
        counts = entry.counts
        if counts is None:
            kind = (entry.kind,)
            latency, latency_sum = metrics.REQUEST_LATENCY.cell(kind)
            tier = "memory" if entry.body is not None else "store"
            counts = entry.counts = Counts(
                metrics.CACHE_LOOKUPS.cell((tier, "hit")), metrics.PREBUILT_ANSWERS.cell(kind),
                metrics.REQUESTS.cell((entry.kind, "200")), metrics.BYTES_SERVED.cell(kind),
                latency, latency_sum)
        counts.lookup[0] += 1
        counts.prebuilt[0] += 1
        return counts

    def _record(self, entry: HotEntry, scope: Any, status: int, size: int, started: float) -> None:
        """What the general path records, its access-log middleware included."""
        self._note(entry, status, size, str(scope.http_version), time.time(),
                   time.perf_counter() - started)

    def _note(self, entry: HotEntry, status: int, size: int, http: str, ts: float,
              elapsed: float) -> None:
        counts = self._count(entry)
        if status == 200:
            counts.ok[0] += 1
        else:  # 206: the cell is made on the first, so no zero series for the others
            cell = counts.partial
            if cell is None:
                cell = counts.partial = metrics.REQUESTS.cell((entry.kind, str(status)))
            cell[0] += 1
        counts.latency[bisect_left(_LATENCY_BUCKETS, elapsed)] += 1
        counts.latency_sum[0] += elapsed
        counts.sent[0] += size
        log = self.access_log
        if log.enabled:
            parts = entry.log.get((status, size))
            if parts is None:
                parts = log.fixed_parts("GET", entry.url, status, size, entry.art.tier, "")
                if len(entry.log) < 8:
                    entry.log[(status, size)] = parts
            log.line_at(http, parts[0], parts[1], ts, elapsed)

    def _accepts_gzip(self, value: str) -> bool:
        ok = self._gzip_ok.get(value)
        if ok is None:
            ok = ranges.accepts_gzip(value)
            if len(self._gzip_ok) >= _MEMO:
                self._gzip_ok.clear()
            self._gzip_ok[value] = ok
        return ok

    def _span(self, header: str, size: int) -> ranges.ByteRange | None:
        memo = (header, size)
        known = self._spans.get(memo, _UNSET)  # one lookup: another thread may clear the memo
        if known is not _UNSET:
            return known  # type: ignore[no-any-return]
        try:
            spans = ranges.parse_range(header, size)
        except ranges.Unsatisfiable:
            spans = None
        span = spans[0] if spans is not None and len(spans) == 1 else None
        if len(self._spans) >= _MEMO:
            self._spans.clear()
        self._spans[memo] = span
        return span

    # -- learning ---------------------------------------------------------------------------

    def learn(self, path: str, ref: ArtifactRef, art: Artifact, gzip_asked: bool = False) -> None:
        """Remember the answer the general path just gave for ``path`` (an anonymous GET).

        Only immutable artifacts: small bodies once they come from the memory tier, zips that
        have a local file. When the client accepted gzip, the gzip answer is prebuilt too (the
        renderer's rule: gzip only when it is smaller)."""
        if not art.immutable or not ref.canonical:
            return
        entry = self.entries.get(path)
        if entry is not None and entry.art is art:
            if gzip_asked and entry.gzip is None and entry.body is not None:
                entry.gzip = self._gzip_answer(art, entry.headers)
            return
        key = keys.artifact_key(ref.escaped_module, ref.escaped_version, ref.kind.value)
        if art.kind is Kind.ZIP:
            if art.path is None or art.tier != "store":
                return
            try:
                st = os.fstat(self.renderer.files.fd(art.path))
            except OSError:
                return
            entry = HotEntry(key, ref.module, ref.version, art, art.kind.value,
                             self.renderer.plain_headers(art), art.size, path=art.path,
                             base=self.renderer._base_headers(art), inode=(st.st_dev, st.st_ino))
            accel = self.renderer.accel
            target = accel.target(art.path) if accel is not None else None
            if accel is not None and target is not None:
                entry.accel = accel.headers(target, entry.headers)
        else:
            if art.body is None or art.tier != "memory" or art.size > MAX_SMALL_BODY:
                return
            entry = HotEntry(key, ref.module, ref.version, art, art.kind.value,
                             self.renderer.plain_headers(art), art.size, body=art.body)
            if gzip_asked:
                entry.gzip = self._gzip_answer(art, entry.headers)
        old = self.entries.get(path)
        # The same file learned again (the general path answered an If-Range or multipart range):
        # its bytes stay, rather than be read once more.
        keep = old.data if old is not None and old.inode == entry.inode \
            and old.art.etag == art.etag and old.size == entry.size else None
        self.drop(path)
        while self.entries and (len(self.entries) >= self.max_entries
                                or self.body_bytes + entry.size * (entry.body is not None)
                                > self.max_body_bytes):
            self.drop(next(iter(self.entries)))  # oldest first
        entry.url = path
        self.entries[path] = entry
        if entry.body is not None:
            self.body_bytes += entry.size
        elif keep is not None:
            self._hold(entry, keep)
        elif entry.accel is None and 0 < entry.size <= self.max_zip_item:
            self._load_zip(path, entry)

    def _load_zip(self, path: str, entry: HotEntry) -> None:
        """Read a small zip's bytes in a thread; they serve its answers once there (if the entry
        is still the one learned and the bytes are its file's)."""
        assert entry.path is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        reading = loop.run_in_executor(None, _read_whole, entry.path, entry.size)
        reading.add_done_callback(lambda done: self._install_zip(path, entry, done))

    def _install_zip(self, path: str, entry: HotEntry,
                     done: asyncio.Future[tuple[tuple[int, int], bytes] | None]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        got = done.result()
        if got is None or got[0] != entry.inode or self.entries.get(path) is not entry \
                or entry.data is not None:
            return
        self._hold(entry, got[1])

    def _hold(self, entry: HotEntry, data: bytes) -> None:
        """Keep a zip's bytes for its answers, dropping older zips' bytes (oldest first, as
        entries are) until they fit in ``max_zip_bytes``."""
        for other in list(self.entries.values()):
            if self.zip_bytes + entry.size <= self.max_zip_bytes:
                break
            self._release(other)
        if self.zip_bytes + entry.size <= self.max_zip_bytes:
            entry.data = data
            self.zip_bytes += entry.size
            metrics.HOT_ZIP_BYTES.set(self.zip_bytes)

    def _release(self, entry: HotEntry) -> None:
        if entry.data is not None:
            entry.data = None
            self.zip_bytes -= entry.size
            metrics.HOT_ZIP_BYTES.set(self.zip_bytes)

    def _gzip_answer(self, art: Artifact, plain: Headers) -> tuple[Headers, bytes]:
        gz = art.gzipped()
        assert art.body is not None and gz is not None
        if len(gz) >= art.size:  # tiny bodies: gzip would only add bytes
            return plain, art.body
        return self.renderer.gzip_headers(art, gz), gz

    def drop(self, path: str) -> None:
        entry = self.entries.pop(path, None)
        if entry is None:
            return
        if entry.body is not None:
            self.body_bytes -= entry.size
        self.partials_kept -= len(entry.partials)
        self._release(entry)

    def clear(self) -> None:
        for entry in self.entries.values():
            entry.data = None
        self.entries.clear()
        self.body_bytes = 0
        self.zip_bytes = 0
        self.partials_kept = 0
        metrics.HOT_ZIP_BYTES.set(0)


def _read_whole(path: str, size: int) -> tuple[tuple[int, int], bytes] | None:
    """A stored zip's (st_dev, st_ino) and bytes, if it still has ``size`` bytes. Blocking."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size != size:
                return None
            data = fh.read(size + 1)
    except OSError:
        return None
    return ((st.st_dev, st.st_ino), data) if len(data) == size else None
