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
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.retry import FuzzedExponentialIntervals
from apache_beam.utils.windowed_value import WindowedValue

from vectorstream.io.qdrant import Point, Store, open_store
from vectorstream.pipeline.progress import TALLY
from vectorstream.transforms.events import format_time
from vectorstream.transforms.parse import event_dead_letter

_LOG = logging.getLogger(__name__)

_STORES: Dict[Tuple, List] = {}  # key -> [store, users]
_STORES_LOCK = threading.Lock()

TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}
TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}


def acquire_store(url: Optional[str], path: Optional[str],
                  opener: Callable[..., Store] = open_store) -> Store:
    with _STORES_LOCK:
        entry = _STORES.get((url, path, opener))
        if entry is None:
            entry = _STORES[(url, path, opener)] = [opener(url=url, path=path), 0]
        entry[1] += 1
        return entry[0]


def release_store(url: Optional[str], path: Optional[str],
                  opener: Callable[..., Store] = open_store) -> None:
    with _STORES_LOCK:
        entry = _STORES.get((url, path, opener))
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _STORES[(url, path, opener)]
            entry[0].close()


def close_all_stores() -> None:
    """Closes every store this process opened for sinks. For after a run has finished:
    portable runners (Prism, Flink LOOPBACK) tear the DoFns down later, or not at all,
    and an embedded store stays locked until closed."""
    with _STORES_LOCK:
        entries = list(_STORES.values())
        _STORES.clear()
    for store, _users in entries:
        store.close()


def retry_after_seconds(exc: BaseException) -> Optional[float]:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by themselves (the service is down or busy)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_HTTP
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            return getattr(code(), "name", "") in TRANSIENT_GRPC
        except Exception:  # pylint: disable=broad-except
            return False
    try:
        from qdrant_client.http.exceptions import ResponseHandlingException
        if isinstance(exc, ResponseHandlingException):  # transport errors, timeouts
            return True
    except ImportError:
        pass
    try:
        import httpx
        if isinstance(exc, httpx.TransportError):
            return True
    except ImportError:
        pass
    text = str(exc)
    return "WouldBlock" in text or "Connection refused" in text or "timed out" in text


class WriteFailed(RuntimeError):
    """Qdrant kept failing with transient errors for longer than the retry budget."""


def make_point(event, vector, model_name: str, window=None) -> Point:
    """The point stored for a parsed event: its id, vector, and payload with the model."""
    payload = dict(event.payload)
    payload["model"] = model_name
    return Point(event.point_id, vector, payload, window)


def _point_bytes(point: Point, payload_size: int = 0) -> int:
    # What the request carries: the payload as JSON (measured by ParseEvents, which
    # serialises it anyway, plus 256 bytes for the fields added since) and the vector
    # (~12 bytes a float in JSON, 4 over gRPC); an estimate on the safe side.
    if not payload_size:
        payload_size = len(json.dumps(point.payload, ensure_ascii=False))
    return payload_size + 12 * len(point.vector) + 64


class WriteToQdrantFn(beam.DoFn):
    """(events, vectors) batches in; points upserted in batches of its own (count, bytes,
    age); dead letters out."""

    def __init__(self, collection: str, dim: int, model_name: str,
                 url: Optional[str] = None, path: Optional[str] = None,
                 batch_size: int = 256, batch_bytes: int = 8_000_000,
                 flush_seconds: float = 1.0, retry_seconds: float = 300.0,
                 opener: Callable[..., Store] = open_store):
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
        self._collection = collection
        self._dim = dim
        self._model_name = model_name
        self._url = url
        self._path = path
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._opener = opener
        self._store: Optional[Store] = None
        self._buffer: List[Point] = []
        self._buffered_bytes = 0
        self._oldest = 0.0
        self.written = Metrics.counter("vectorstream", "points_written")
        self.retries = Metrics.counter("vectorstream", "write_retries")
        self.dead = Metrics.counter("vectorstream", "write_dead_letters")
        self.batch_sizes = Metrics.distribution("vectorstream", "write_batch_size")
        self.latency_ms = Metrics.distribution("vectorstream", "event_to_stored_ms")

    def setup(self):
        self._store = acquire_store(self._url, self._path, self._opener)
        self._store.ensure_collection(self._collection, self._dim)

    def start_bundle(self):
        self._buffer, self._buffered_bytes = [], 0

    def process(self, element, window=beam.DoFn.WindowParam):
        events, vectors = element
        for event, vector in zip(events, vectors):
            point = make_point(event, vector, self._model_name, window)
            size = _point_bytes(point, event.size)
            if self._buffer and self._buffered_bytes + size > self._batch_bytes:
                yield from (record for record, _ in self._flush())
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(point)
            self._buffered_bytes += size
            if (len(self._buffer) >= self._batch_size
                    or time.monotonic() - self._oldest >= self._flush_seconds):
                yield from (record for record, _ in self._flush())

    def finish_bundle(self):
        for record, window in self._flush():
            window = window if window is not None else GlobalWindow()
            yield WindowedValue(record, window.max_timestamp(), [window])

    def _flush(self):
        if not self._buffer:
            return []
        points, self._buffer, self._buffered_bytes = self._buffer, [], 0
        points, conflicts = self._without_conflicts(points)
        return conflicts + (self._write(points) if points else [])

    def _without_conflicts(self, points: List[Point]):
        """Drops points whose event_id is already stored (or earlier in the batch) with
        different content: those are dead letters. Same content is a replay: written again."""
        fresh: Dict[str, Point] = {}
        dead = []
        stored = self._with_retries(lambda: self._store.payload_field(
            self._collection, list({p.id for p in points}), "event_hash"))
        for point in points:
            seen = fresh.get(point.id)
            known = seen.payload.get("event_hash") if seen else stored.get(point.id)
            if known is not None and known != point.payload.get("event_hash"):
                dead.append(self._dead_letter(point, (
                    f"duplicate event_id {point.payload.get('event_id')!r} with different "
                    f"content: the first event with this id is kept")))
                continue
            fresh[point.id] = point
        return list(fresh.values()), dead

    def _dead_letter(self, point: Point, reason: str) -> tuple:
        self.dead.inc()
        TALLY.add("dead")
        _LOG.warning("dead letter for point %s: %s", point.id, reason)
        return event_dead_letter("write", reason, point.payload), point.window

    def _write(self, points: List[Point]) -> List[tuple]:
        """Writes `points`; returns (dead-letter record, window) for those Qdrant refuses."""
        now = time.time()
        stamp = format_time(dt.datetime.fromtimestamp(now, dt.timezone.utc))
        for point in points:
            point.payload["ingested_at"] = stamp
        try:
            self._upsert(points)
        except WriteFailed:
            raise
        except Exception as exc:  # permanent: isolate the bad points
            if len(points) == 1:
                return [self._dead_letter(points[0], f"Qdrant refused the point: {exc}")]
            middle = len(points) // 2
            return self._write(points[:middle]) + self._write(points[middle:])
        self.written.inc(len(points))
        TALLY.add("written", len(points))
        self.batch_sizes.update(len(points))
        done_ms = int(time.time() * 1000)
        latencies = []
        for point in points:
            produced = (point.payload.get("kafka") or {}).get("timestamp_ms")
            if produced:
                self.latency_ms.update(done_ms - produced)
                latencies.append((done_ms - produced) / 1000.0)
        TALLY.latencies(latencies)
        return []

    def _upsert(self, points: List[Point]) -> None:
        self._with_retries(lambda: self._store.upsert(self._collection, points), len(points))

    def _with_retries(self, call, n_points: int = 0):
        """One store call, retried while the failure is transient and the budget lasts."""
        delays = iter(FuzzedExponentialIntervals(0.2, 10000, max_delay_secs=10.0,
                                                 stop_after_secs=self._retry_seconds))
        started = time.monotonic()
        while True:
            try:
                return call()
            except Exception as exc:  # pylint: disable=broad-except
                if not is_transient(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise WriteFailed(
                        f"Qdrant ({self._store.description}) kept failing for "
                        f"{time.monotonic() - started:.0f}s (--write_retry_seconds "
                        f"{self._retry_seconds:g}): {exc}") from exc
                delay = max(delay, retry_after_seconds(exc) or 0.0)
                self.retries.inc()
                TALLY.add("retries")
                _LOG.warning("Qdrant call failed (%s), retrying (%d points) in %.1fs",
                             exc, n_points, delay)
                time.sleep(delay)

    def teardown(self):
        if self._store is not None:
            self._store = None
            release_store(self._url, self._path, self._opener)
