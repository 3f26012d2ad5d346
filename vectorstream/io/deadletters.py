"""Dead letters: to the dead-letter topic or a JSON-lines file, and reading them back
(show, replay)."""
from __future__ import annotations

import json
import os
from typing import Dict, Iterator, List, Optional

import apache_beam as beam

from vectorstream.io.kafka_admin import client_config, send


class AppendJsonLines(beam.DoFn):
    """Appends one JSON object a line to a local file, flushed at the end of each bundle
    (before the bundle's offsets are committed). For local runs: on a cluster each worker
    would write its own machine's file."""

    def __init__(self, path: str):
        self._path = path
        self._fh = None
        from apache_beam.metrics import Metrics
        self._written = Metrics.counter("vectorstream", "dead_letters")

    def setup(self):
        directory = os.path.dirname(os.path.abspath(self._path))
        os.makedirs(directory, exist_ok=True)
        self._fh = open(self._path, "a", encoding="utf-8")

    def process(self, record):
        self._written.inc()
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def finish_bundle(self):
        self._fh.flush()
        if os.path.isfile(self._path):  # not /dev/null, a pipe or the like
            os.fsync(self._fh.fileno())

    def teardown(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class WriteToKafkaTopic(beam.DoFn):
    """Produces (key, value) byte pairs to a topic; flushed at the end of each bundle so a
    bundle's dead letters are durable before its offsets are committed."""

    def __init__(self, bootstrap_servers: str, topic: str,
                 config: Optional[Dict[str, str]] = None):
        self._bootstrap_servers = bootstrap_servers
        self._extra = dict(config or {})
        self._topic = topic
        self._producer = None
        self._failed: list = []
        from apache_beam.metrics import Metrics
        self._written = Metrics.counter("vectorstream", "dead_letters")

    def setup(self):
        from confluent_kafka import Producer
        self._producer = Producer({**client_config(self._bootstrap_servers, self._extra),
                                   "linger.ms": 5,
                                   "message.max.bytes": 16_000_000})

    def _on_delivery(self, err, msg):
        if err is not None:
            self._failed.append(err)

    def process(self, element):
        key, value = element
        self._written.inc()
        send(self._producer, self._topic, value, key, self._on_delivery)

    def finish_bundle(self):
        remaining = self._producer.flush(60)
        if remaining or self._failed:
            errors, self._failed = self._failed, []
            raise RuntimeError(f"could not write {remaining + len(errors)} message(s) to "
                               f"Kafka topic {self._topic}: {errors[:3]}")

    def teardown(self):
        if self._producer is not None:
            self._producer.flush(10)


def read_file(path: str) -> Iterator[Dict]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_topic(bootstrap: str, topic: str, idle_seconds: float = 3.0,
               config: Optional[Dict[str, str]] = None) -> Iterator[Dict]:
    """Every record on the dead-letter topic, from the start, until it has been quiet."""
    import time
    import uuid
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **(config or {})})
    consumer.subscribe([topic])
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_seconds:
            batch: List = consumer.consume(500, timeout=0.5)
            for msg in batch:
                if msg.error():
                    continue
                quiet_since = time.monotonic()
                yield json.loads(msg.value())
    finally:
        consumer.close()
