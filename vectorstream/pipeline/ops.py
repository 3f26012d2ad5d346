"""Operations: `/metrics` and `/healthz` of the process that runs the pipeline
(`--metrics_port`), and the Kafka consumer lag polled for them.

`/metrics` serves what the DoFns count in `vectorstream.telemetry` (prometheus-client's
default registry); with Python workers in processes of their own, Beam's metrics reach
Prometheus through the runner's reporter instead, while this process still serves the
consumer lag and `/healthz`.

`/healthz` answers 200 while the pipeline runs and Kafka and Qdrant answer, 503 with the
reason otherwise; the checks are made at most every HEALTH_TTL seconds.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Optional, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from vectorstream.config.options import UsageError
from vectorstream.io.kafka_admin import client_config, committed_offsets, partitions_of
from vectorstream.pipeline.plan import RunPlan, StorePlan
from vectorstream.telemetry import KAFKA_LAG, STATUS, UP

_LOG = logging.getLogger(__name__)


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


def store_check(store: StorePlan):
    """A Qdrant server's /readyz within 2 seconds; an embedded store has nothing to ask
    (its writes report their failures through STATUS)."""
    if not store.is_server:
        return lambda: None
    url = store.url
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


class Serving:
    """The metrics server and the lag monitor of a run, stopped together."""

    def __init__(self, server: MetricsServer, lag: LagMonitor):
        self.server, self.lag = server, lag

    def stop(self):
        self.lag.stop()
        self.server.stop()


def serve(plan: RunPlan) -> Serving:
    """/metrics and /healthz on --metrics_port, and the consumer lag polled for them."""
    vs = plan.vs
    health = HealthChecks(kafka_check(vs.bootstrap(), vs.topic, vs.kafka_extra()),
                          store_check(plan.store))
    lag = LagMonitor(vs.bootstrap(), vs.topic, vs.consumer_group, vs.kafka_extra())
    lag.start()
    try:
        server = MetricsServer(vs.metrics_port, health).start()
    except OSError as exc:
        lag.stop()
        raise UsageError(f"--metrics_port {vs.metrics_port} cannot be served ({exc.strerror}): "
                         f"pick a free port, or 0 for any") from None
    print(f"metrics: http://localhost:{server.port}/metrics, health: "
          f"http://localhost:{server.port}/healthz", file=sys.stderr)
    return Serving(server, lag)
