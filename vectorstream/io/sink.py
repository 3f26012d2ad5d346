"""WriteToQdrant: the sink DoFn.

Owns its lifecycle (store in `setup`, buffer in `start_bundle`, flush in `finish_bundle`,
close in `teardown`) and flushes whenever the buffer reaches `batch_size` points,
`batch_bytes` bytes (well under Qdrant's 32 MB request limit) or `flush_seconds` of age.

Failures are classified:
- transient (connection refused or reset, timeouts, HTTP 429/5xx, gRPC UNAVAILABLE or
  DEADLINE_EXCEEDED, a locked embedded store): retried with exponential backoff and jitter
  (Beam's `FuzzedExponentialIntervals`) for up to `retry_seconds`, honouring Retry-After,
  then the bundle fails loudly; its offsets are not committed, so nothing is lost and the
  runner retries it. While it retries, the DoFn blocks, so the reader (fused with it)
  stops reading: memory stays bounded during an outage.
- permanent (a rejected point: wrong vector size, NaN, invalid payload): the batch is
  split in halves until the bad points are isolated; they become dead letters (the DoFn's
  output), the rest is written.

Stores opened in one process are shared by every instance of the DoFn there: an embedded
shard may be opened once only.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from vectorstream.io.qdrant import Point, Store, open_store
from vectorstream.io.store import Where, is_transient
from vectorstream.io.writes import (WriteFailed, acquire_store, close_all_stores,
                                    release_store, with_retries)
from vectorstream import telemetry
from vectorstream.transforms.events import format_time
from vectorstream.transforms.parse import FINGERPRINT_PREFIX, event_dead_letter

__all__ = ["WriteToQdrantFn", "WriteFailed", "close_all_stores", "is_transient",
           "make_point"]

_LOG = logging.getLogger(__name__)

def make_point(event, vector, model_name: str, window=None) -> Point:
    """The point stored for a parsed event: its id, vector, and payload with the model."""
    payload = dict(event.payload)
    payload["model"] = model_name
    return Point(event.point_id, vector, payload, window, event.raw)


def _point_bytes(point: Point, payload_size: int = 0) -> int:
    # What the request carries: the payload as JSON (the message's own size, plus 256
    # bytes for the fields added since) and the vector (~12 bytes a float in JSON, 4 over
    # gRPC); an estimate on the safe side.
    if not payload_size:
        payload_size = len(json.dumps(point.payload, ensure_ascii=False))
    return payload_size + 12 * len(point.vector) + 64


def _windowed(dead: List[tuple]):
    """Dead letters as elements of the window their point came from (a write in flight
    may hold points of an earlier element's window)."""
    for record, window in dead:
        window = window if window is not None else GlobalWindow()
        yield WindowedValue(record, window.max_timestamp(), [window])


class _Written(NamedTuple):
    """What one write of a batch came to (made in a writer thread; Beam's metrics are
    counted from it in the DoFn's own thread)."""
    written: int
    latencies_s: List[float]
    dead: List[tuple]  # (dead-letter record, window)
    retries: int
    deleted: int = 0  # points of tombstones
    expired: int = 0  # points past --retention_days


class WriteToQdrantFn(beam.DoFn):
    """(events, vectors) batches in; points upserted in batches of its own (count, bytes,
    age); dead letters out.

    Up to `in_flight` batches are written at once, each by a writer thread (a Qdrant
    server takes concurrent requests; the network and the server's work overlap with the
    pipeline's). A batch that holds a point id of a batch still in flight waits for it, so
    writes of one point id keep their order. Every batch of a bundle is acknowledged
    before the bundle ends: its offsets are committed only then.
    """

    def __init__(self, collection: str, dim: int, model_name: str,
                 url: Optional[str] = None, path: Optional[str] = None,
                 batch_size: int = 256, batch_bytes: int = 8_000_000,
                 flush_seconds: float = 1.0, retry_seconds: float = 300.0,
                 opener: Callable[..., Store] = open_store, in_flight: int = 1,
                 grpc: bool = True, grpc_port: Optional[int] = None,
                 retention_days: Optional[float] = None, expire_every: float = 60.0):
        if not collection:
            raise ValueError("collection must be given (--collection)")
        if not url and not path:
            raise ValueError("one of --qdrant_url or --qdrant_path must be given")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 < batch_bytes <= 30_000_000:
            raise ValueError(f"batch_bytes must be in (0, 30 MB], got {batch_bytes}: Qdrant "
                             f"refuses requests over 32 MB")
        if flush_seconds <= 0 or retry_seconds < 0:
            raise ValueError("flush_seconds must be positive and retry_seconds not negative")
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        self._alias = self._collection = collection
        self._dim = dim
        self._model_name = model_name
        self._url = url
        self._path = path
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._opener = opener
        self._in_flight = in_flight
        self._grpc = grpc
        self._grpc_port = grpc_port
        self._retention_days = retention_days
        self._expire_every = expire_every
        self._next_expiry = 0.0
        self._store: Optional[Store] = None
        self._pool = None
        self._pending: List[Tuple[Any, set]] = []  # (future, point ids), oldest first
        self._buffer: List[Point] = []
        self._buffered_bytes = 0
        self._oldest = 0.0
        self.written = Metrics.counter("vectorstream", "points_written")
        self.deleted = Metrics.counter("vectorstream", "points_deleted")
        self.expired = Metrics.counter("vectorstream", "points_expired")
        self.retries = Metrics.counter("vectorstream", "write_retries")
        self.dead = Metrics.counter("vectorstream", "write_dead_letters")
        self.batch_sizes = Metrics.distribution("vectorstream", "write_batch_size")
        self.latency_ms = Metrics.distribution("vectorstream", "event_to_stored_ms")

    def setup(self):
        self._store = acquire_store(self._url, self._path, self._opener, self._grpc,
                                    self._grpc_port)
        # The alias's version for this model (io.versions): every write goes there.
        from vectorstream.io.versions import writable
        self._collection = with_retries(lambda: writable(
            self._store, self._alias, self._model_name, self._dim),
            self._store.description, self._retry_seconds)
        if self._in_flight > 1:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self._in_flight, thread_name_prefix="qdrant-write")

    def start_bundle(self):
        self._buffer, self._buffered_bytes = [], 0
        self._pending = []

    def process(self, element, window=beam.DoFn.WindowParam):
        events, vectors = element
        model_name, limit_bytes, limit_count = (self._model_name, self._batch_bytes,
                                                self._batch_size)
        vector_bytes = 12 * self._dim + 64
        if not self._buffer:
            self._oldest = time.monotonic()
        for event, vector in zip(events, vectors):
            if event.delete:  # a tombstone: in order with this id's upserts in the buffer
                self._buffer = [p for p in self._buffer if p.id != event.point_id]
                self._buffer.append(Point(event.point_id, None, None, window))
                continue
            payload = dict(event.payload)
            payload["model"] = model_name
            point = Point(event.point_id, vector, payload, window, event.raw)
            size = event.size + vector_bytes if event.size else _point_bytes(point)
            if self._buffer and self._buffered_bytes + size > limit_bytes:
                yield from _windowed(self._flush())
            self._buffer.append(point)
            self._buffered_bytes += size
            if len(self._buffer) >= limit_count:
                yield from _windowed(self._flush())
        if self._buffer and time.monotonic() - self._oldest >= self._flush_seconds:
            yield from _windowed(self._flush())

    def finish_bundle(self):
        yield from _windowed(self._flush() + self._collect(wait_all=True))

    def _flush(self) -> List[tuple]:
        """Sends the buffer to be written; returns (dead-letter record, window) of the
        writes done by now (the rest come with a later flush or the bundle's end)."""
        if not self._buffer:
            return []
        points, self._buffer, self._buffered_bytes = self._buffer, [], 0
        self._oldest = time.monotonic()
        if self._pool is None:
            return self._account(self._write_batch(points))
        ids = {p.id for p in points}
        done = []
        overlapping = [future for future, pending_ids in self._pending if pending_ids & ids]
        if overlapping:  # the same point id in flight: keep the writes of it in order
            done += self._collect(until=overlapping[-1])
        while len(self._pending) >= self._in_flight:
            done += self._collect(until=self._pending[0][0])
        self._pending.append((self._pool.submit(self._write_batch, points), ids))
        return done + self._collect()  # and any other write already done

    def _collect(self, until=None, wait_all: bool = False) -> List[tuple]:
        """Waits for the writes in flight up to `until` (or all); returns their dead
        letters as (record, window). A write that failed for good fails the bundle."""
        out = []
        while self._pending:
            future, _ids = self._pending[0]
            if not wait_all and until is None and not future.done():
                break
            self._pending.pop(0)
            out += self._account(future.result())
            if future is until:
                break
        return out

    def _account(self, result: "_Written") -> List[tuple]:
        """Beam's metrics and ours for one write (in the DoFn's thread)."""
        if result.written:
            self.written.inc(result.written)
            self.batch_sizes.update(result.written)
            for value in result.latencies_s:
                self.latency_ms.update(int(value * 1000))
            telemetry.points_written(result.written, result.latencies_s)
        if result.retries:
            self.retries.inc(result.retries)
        if result.deleted:
            self.deleted.inc(result.deleted)
            telemetry.points_deleted(result.deleted)
        if result.expired:
            self.expired.inc(result.expired)
            telemetry.points_expired(result.expired)
        if result.dead:
            self.dead.inc(len(result.dead))
            telemetry.dead_letter("write", len(result.dead))
        return result.dead

    # -- in a writer thread (or the DoFn's, with in_flight 1): no Beam metrics here
    def _write_batch(self, points: List[Point]) -> "_Written":
        retries = [0]
        deletes: Dict[str, bool] = {}
        upserts: List[Point] = []
        for point in points:  # in order: a tombstone removes what came before it of its id
            if point.payload is None:
                upserts = [p for p in upserts if p.id != point.id]
                deletes[point.id] = True
            else:
                deletes.pop(point.id, None)
                upserts.append(point)
        deletes = list(deletes)
        points, dead = self._without_conflicts(upserts, retries) if upserts else ([], [])
        written, latencies = 0, []
        if points:
            written, latencies, refused = self._write(points, retries)
            dead += refused
        if deletes:
            self._with_retries(lambda: self._store.delete(self._collection, deletes), retries,
                               len(deletes))
        expired = self._expire_if_due(retries)
        return _Written(written, latencies, dead, retries[0], len(deletes), expired)

    def _expire_if_due(self, retries: List[int]) -> int:
        """--retention_days: once a window, the events older than that by event time
        (a filter delete on the indexed timestamp)."""
        if not self._retention_days or time.monotonic() < self._next_expiry:
            return 0
        self._next_expiry = time.monotonic() + self._expire_every
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=self._retention_days)
        return self._with_retries(lambda: self._store.delete_where(
            self._collection, Where(before=("timestamp", format_time(cutoff)))), retries)

    def _without_conflicts(self, points: List[Point], retries: List[int]):
        """Drops points whose event_id is already stored (or earlier in the batch) with
        different content: those are dead letters. Same content is a replay: written again."""
        fresh: Dict[str, Point] = {}
        dead = []
        stored = self._with_retries(lambda: self._store.payload_field(
            self._collection, list({p.id for p in points}), "event_hash"), retries)
        for point in points:
            seen = fresh.get(point.id)
            known = seen.payload.get("event_hash") if seen else stored.get(point.id)
            if (known is not None and known != point.payload.get("event_hash")
                    and str(known).startswith(FINGERPRINT_PREFIX)):
                # (A fingerprint of an earlier version's form cannot be compared: the
                # point is written over, as a replay would be.)
                dead.append(self._dead_letter(point, (
                    f"duplicate event_id {point.payload.get('event_id')!r} with different "
                    f"content: the first event with this id is kept")))
                continue
            fresh[point.id] = point
        return list(fresh.values()), dead

    def _dead_letter(self, point: Point, reason: str) -> tuple:
        _LOG.warning("dead letter for point %s: %s", point.id, reason)
        return event_dead_letter("write", reason, point.payload, point.raw), point.window

    def _write(self, points: List[Point], retries: List[int]):
        """Writes `points`; returns (written, latencies, [(dead letter, window)]) with a
        dead letter for each point Qdrant refuses (found by halving the batch)."""
        now = time.time()
        stamp = format_time(dt.datetime.fromtimestamp(now, dt.timezone.utc))
        for point in points:
            point.payload["ingested_at"] = stamp
        try:
            self._with_retries(lambda: self._store.upsert(self._collection, points), retries,
                               len(points))
        except WriteFailed:
            raise
        except Exception as exc:  # permanent: isolate the bad points
            if len(points) == 1:
                return 0, [], [self._dead_letter(points[0], f"Qdrant refused the point: {exc}")]
            middle = len(points) // 2
            first, second = self._write(points[:middle], retries), self._write(
                points[middle:], retries)
            return first[0] + second[0], first[1] + second[1], first[2] + second[2]
        done = time.time()
        latencies = []
        for point in points:
            produced = point.payload["kafka"].get("timestamp_ms") if "kafka" in point.payload \
                else None
            if produced:
                latencies.append(done - produced / 1000.0)
        return len(points), latencies, []

    def _with_retries(self, call, retries: List[int], n_points: int = 0):
        return with_retries(call, self._store.description, self._retry_seconds, retries,
                            n_points)

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._store is not None:
            self._store = None
            release_store(self._url, self._path, self._opener, self._grpc, self._grpc_port)
