"""What the pipeline counts while it runs, where anyone in the process can read it.

Beam's metrics (the `vectorstream` namespace) are what runners report, but a Python
pipeline cannot read them back while it runs. So the DoFns also count here:
Prometheus counters (prometheus-client's default registry, served by `--metrics_port`),
the progress line's tally, and the store's health as the writes see it.

They count in the process they run in: with the DirectRunner, Prism, or Flink with
LOOPBACK, that is the process that runs `vectorstream run`. With Python workers in
processes of their own (Flink EXTERNAL, Dataflow), Beam's metrics reach Prometheus through
the runner's own reporter (Flink: `flink_taskmanager_job_task_operator_…_vectorstream_
events_read`, which the dashboard reads as well).

A leaf: it imports nothing of ours.
"""
from __future__ import annotations

import collections
import os
import threading
import time
from typing import Deque, Iterable, Optional, Tuple

from prometheus_client import Counter, Gauge, Histogram

class Tally:
    FIELDS = ("read", "invalid", "written", "dead", "retries")

    def __init__(self, window_seconds: float = 60.0):
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)
        self._latencies: Deque[Tuple[float, float]] = collections.deque()
        self._window = window_seconds
        self.listener = None  # called with (time, latencies): the benchmark keeps them all

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            self._counts[field] += n

    def latencies(self, values, now: Optional[float] = None) -> None:
        now = now or time.time()
        if self.listener is not None:
            self.listener(now, values)
        with self._lock:
            self._latencies.extend((now, v) for v in values)
            while self._latencies and self._latencies[0][0] < now - self._window:
                self._latencies.popleft()
            while len(self._latencies) > 100_000:  # bounded memory at any rate
                self._latencies.popleft()

    def snapshot(self, since: float):
        with self._lock:
            recent = sorted(v for t, v in self._latencies if t >= since)
            return dict(self._counts), recent


TALLY = Tally()


def percentile(ordered, q: float):
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q / 100 * (len(ordered) - 1) + 0.5))]


EVENTS_READ = Counter("vectorstream_events_read", "Kafka messages read.")
EVENTS_VALID = Counter("vectorstream_events_valid", "Messages that are valid events.")
EVENTS_INVALID = Counter("vectorstream_events_invalid",
                         "Messages refused by validation (dead letters of stage parse).")
POINTS_WRITTEN = Counter("vectorstream_points_written", "Points upserted into Qdrant.")
DEAD_LETTERS = Counter("vectorstream_dead_letters", "Dead letters, by the stage that refused "
                       "the message.", ["stage"])
for _stage in ("parse", "embed", "write"):  # exported from the start, at 0
    DEAD_LETTERS.labels(_stage)
POINTS_DELETED = Counter("vectorstream_points_deleted",
                         "Event points deleted by tombstones (a key with a null value).")
POINTS_EXPIRED = Counter("vectorstream_points_expired",
                         "Event points deleted for being older than --retention_days.")
WRITE_RETRIES = Counter("vectorstream_write_retries",
                        "Qdrant calls retried after a transient failure.")
EMBED_BATCH_SECONDS = Histogram(
    "vectorstream_embed_batch_seconds", "Time to embed one batch of events (cache misses "
    "through the model).", buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EVENT_TO_STORED_SECONDS = Histogram(
    "vectorstream_event_to_stored_seconds", "From the Kafka timestamp of an event to its "
    "point stored.", buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300))
EMBED_CACHE_HITS = Counter("vectorstream_embedding_cache_hits",
                           "Texts whose vector came from the embedding cache.")
EMBED_CACHE_MISSES = Counter("vectorstream_embedding_cache_misses",
                             "Texts embedded by the model.")
KAFKA_LAG = Gauge("vectorstream_kafka_consumer_lag", "Records not yet committed by the "
                  "consumer group: the partition's end offset less the committed one.",
                  ["topic", "partition"])
UP = Gauge("vectorstream_up", "1 while /healthz answers 200 (the pipeline runs and Kafka "
           "and Qdrant answer), else 0.")


# ---------------------------------------------------------------------------------------
# What the DoFns call: Prometheus and the progress line's tally together.

def events_parsed(read: int, valid: int, invalid: int) -> None:
    EVENTS_READ.inc(read)
    EVENTS_VALID.inc(valid)
    TALLY.add("read", read)
    if invalid:
        EVENTS_INVALID.inc(invalid)
        DEAD_LETTERS.labels("parse").inc(invalid)
        TALLY.add("invalid", invalid)


def points_written(count: int, latencies_s: Iterable[float]) -> None:
    POINTS_WRITTEN.inc(count)
    TALLY.add("written", count)
    latencies = list(latencies_s)
    for value in latencies:
        EVENT_TO_STORED_SECONDS.observe(value)
    TALLY.latencies(latencies)
    STATUS.store_answered()


def points_deleted(count: int) -> None:
    POINTS_DELETED.inc(count)


def points_expired(count: int) -> None:
    POINTS_EXPIRED.inc(count)


def dead_letter(stage: str, n: int = 1) -> None:
    DEAD_LETTERS.labels(stage).inc(n)
    if stage != "parse":
        TALLY.add("dead", n)


def write_retried(exc: BaseException) -> None:
    WRITE_RETRIES.inc()
    TALLY.add("retries")
    STATUS.store_failed(exc)


def embedded(hits: int, misses: int, seconds: Optional[float]) -> None:
    if hits:
        EMBED_CACHE_HITS.inc(hits)
    if misses:
        EMBED_CACHE_MISSES.inc(misses)
    if seconds is not None:
        EMBED_BATCH_SECONDS.observe(seconds)


# ---------------------------------------------------------------------------------------
# Health.

class Status:
    """What /healthz reports: the pipeline's state (set by `run`), Kafka's and Qdrant's."""

    def __init__(self):
        self._lock = threading.Lock()
        self.pipeline: Tuple[bool, str] = (False, "the pipeline has not started")
        self.store_error: Optional[str] = None

    def pipeline_running(self, running: bool, reason: str = "") -> None:
        with self._lock:
            self.pipeline = (running, reason)

    def store_failed(self, exc: BaseException) -> None:
        with self._lock:
            self.store_error = f"{exc}"[:300]

    def store_answered(self) -> None:
        if self.store_error is not None:
            with self._lock:
                self.store_error = None


STATUS = Status()


# ---------------------------------------------------------------------------------------
# The start-up timeline of this process (`vectorstream run --timeline`).

TIMELINE: dict = {}


def process_started() -> float:
    """When this process started (epoch seconds, to 10 ms), from /proc."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return TIMELINE.get("_start", time.time())


def mark(step: str) -> None:
    """The first time `step` happened in this process."""
    if step not in TIMELINE:
        TIMELINE[step] = time.time()


def timeline() -> dict:
    """{step: seconds since the process started}, in order."""
    start = process_started()
    return {k: round(v - start, 2) for k, v in sorted(TIMELINE.items(), key=lambda kv: kv[1])
            if not k.startswith("_")}
