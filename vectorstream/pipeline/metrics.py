"""Prometheus metrics and health of the process that runs the pipeline (`--metrics_port`).

The DoFns count what they do here (prometheus-client's default registry) as well as in
Beam's metrics (the `vectorstream` namespace), because a Python pipeline cannot read Beam's
metrics back while it runs. They count in the process they run in: with the DirectRunner,
Prism, or Flink with LOOPBACK, that is this process, and `/metrics` shows everything. With
Python workers in processes of their own (Flink EXTERNAL, Dataflow), Beam's metrics reach
Prometheus through the runner's own reporter (Flink: `flink_taskmanager_job_task_operator_
…_vectorstream_events_read`, which the dashboard reads as well), while this process still
serves the Kafka consumer lag and `/healthz`.

`/healthz` answers 200 while the pipeline runs and Kafka and Qdrant answer, 503 with the
reason otherwise; the checks are made at most every HEALTH_TTL seconds.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Iterable, Optional, Tuple

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram,
                               generate_latest)

from vectorstream.pipeline.progress import TALLY

_LOG = logging.getLogger(__name__)

EVENTS_READ = Counter("vectorstream_events_read", "Kafka messages read.")
EVENTS_VALID = Counter("vectorstream_events_valid", "Messages that are valid events.")
EVENTS_INVALID = Counter("vectorstream_events_invalid",
                         "Messages refused by validation (dead letters of stage parse).")
POINTS_WRITTEN = Counter("vectorstream_points_written", "Points upserted into Qdrant.")
DEAD_LETTERS = Counter("vectorstream_dead_letters", "Dead letters, by the stage that refused "
                       "the message.", ["stage"])
for _stage in ("parse", "embed", "write"):  # exported from the start, at 0
    DEAD_LETTERS.labels(_stage)
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


class HealthChecks:
    """Kafka (cluster metadata within 2 s), Qdrant (a server's /readyz, or, for an
    embedded store, no write failing), the pipeline running: the first that fails is the
    reason. The results are kept HEALTH_TTL seconds."""

    HEALTH_TTL = 2.0

    def __init__(self, kafka_check: Callable[[], None], store_check: Callable[[], None]):
        self._kafka_check = kafka_check
        self._store_check = store_check
        self._lock = threading.Lock()
        self._cached: Optional[Tuple[float, Optional[str]]] = None

    def problem(self) -> Optional[str]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.HEALTH_TTL:
                return self._cached[1]
            problem = self._check()
            self._cached = (time.monotonic(), problem)
            UP.set(0 if problem else 1)
            return problem

    def _check(self) -> Optional[str]:
        running, reason = STATUS.pipeline
        if not running:
            return reason or "the pipeline is not running"
        for name, check in (("Kafka", self._kafka_check), ("Qdrant", self._store_check)):
            try:
                check()
            except Exception as exc:  # pylint: disable=broad-except
                return f"{name}: {exc}"
        if STATUS.store_error:
            return f"Qdrant: writes are failing ({STATUS.store_error})"
        return None


def kafka_check(bootstrap: str, topic: str, extra: Optional[Dict[str, str]]):
    """A check that Kafka answers with the topic's metadata within 2 seconds."""
    from confluent_kafka.admin import AdminClient
    from vectorstream.io.kafka import client_config
    admin = AdminClient({**client_config(bootstrap, extra), "log_level": 0})

    def check():
        try:
            metadata = admin.list_topics(topic, timeout=2)
        except Exception as exc:  # KafkaException
            raise RuntimeError(f"Kafka at {bootstrap} does not answer ({exc})") from None
        t = metadata.topics.get(topic)
        if t is None or t.error is not None:
            raise RuntimeError(f"topic {topic} is not available at {bootstrap}")
    return check


def store_check(url: Optional[str]):
    """A Qdrant server's /readyz within 2 seconds; an embedded store has nothing to ask
    (its writes report their failures through STATUS)."""
    if not url or url.startswith("local://"):
        return lambda: None
    import urllib.request
    ready = url.rstrip("/") + "/readyz"

    def check():
        try:
            with urllib.request.urlopen(ready, timeout=2) as response:
                if response.status != 200:
                    raise RuntimeError(f"{ready} answered {response.status}")
        except OSError as exc:
            raise RuntimeError(f"Qdrant at {url} does not answer ({exc})") from None
    return check


class LagMonitor(threading.Thread):
    """Every `interval` seconds: each partition's end offset less the group's committed
    offset, as the vectorstream_kafka_consumer_lag gauge."""

    def __init__(self, bootstrap: str, topic: str, group: str,
                 extra: Optional[Dict[str, str]] = None, interval: float = 5.0):
        super().__init__(name="vectorstream-lag", daemon=True)
        self._args = (bootstrap, topic, group, extra)
        self._interval = interval
        self._stop = threading.Event()

    def poll(self) -> Dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition
        from vectorstream.io.kafka import client_config, committed_offsets, partitions_of
        bootstrap, topic, group, extra = self._args
        consumer = Consumer({**client_config(bootstrap, extra), "group.id": group,
                             "enable.auto.commit": False, "log_level": 0})
        try:
            tps = [TopicPartition(topic, p) for p in partitions_of(bootstrap, topic, extra)]
            committed = committed_offsets(consumer, tps, attempts=2)
            lags = {}
            for tp in tps:
                low, high = consumer.get_watermark_offsets(tp, timeout=5)
                done = committed.get(tp.partition, -1)
                lags[tp.partition] = max(0, high - (done if done >= 0 else low))
                KAFKA_LAG.labels(topic, str(tp.partition)).set(lags[tp.partition])
            return lags
        finally:
            consumer.close()

    def run(self):
        while True:
            try:
                self.poll()
            except Exception as exc:  # pylint: disable=broad-except
                _LOG.debug("could not read the consumer lag: %s", exc)
            if self._stop.wait(self._interval):
                return

    def stop(self):
        self._stop.set()


class MetricsServer:
    """GET /metrics (Prometheus' text format) and /healthz on 0.0.0.0:`port` (or `host`)."""

    def __init__(self, port: int, health: HealthChecks, host: str = "0.0.0.0"):
        self._health = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    health.problem()  # keeps vectorstream_up current
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/health"):
                    problem = health.problem()
                    body = {"status": "ok"} if problem is None else {
                        "status": "unavailable", "reason": problem}
                    self._send(200 if problem is None else 503, json.dumps(body).encode(),
                               "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # no access log on stderr
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="vectorstream-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
