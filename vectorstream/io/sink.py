"""WriteToQdrant: the sink DoFn.

Owns its lifecycle (store in `setup`, buffer in `start_bundle`, flush in `finish_bundle`,
close in `teardown`), flushes whenever `batch_size` points are buffered, and sets each
point's `ingested_at` as it is written. Stores opened in one process are shared by every
instance of the DoFn there: an embedded shard may be opened once only.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Dict, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from vectorstream.io.qdrant import Point, Store, open_store
from vectorstream.transforms.events import format_time

_LOG = logging.getLogger(__name__)

_STORES: Dict[Tuple, List] = {}  # key -> [store, users]
_STORES_LOCK = threading.Lock()


def acquire_store(url: Optional[str], path: Optional[str]) -> Store:
    with _STORES_LOCK:
        entry = _STORES.get((url, path))
        if entry is None:
            entry = _STORES[(url, path)] = [open_store(url=url, path=path), 0]
        entry[1] += 1
        return entry[0]


def release_store(url: Optional[str], path: Optional[str]) -> None:
    with _STORES_LOCK:
        entry = _STORES.get((url, path))
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _STORES[(url, path)]
            entry[0].close()


class WriteToQdrantFn(beam.DoFn):
    """(ParsedEvent, vector) elements in; points upserted in batches."""

    def __init__(self, collection: str, dim: int, model_name: str,
                 url: Optional[str] = None, path: Optional[str] = None,
                 batch_size: int = 256):
        if not collection:
            raise ValueError("collection must be given (--collection)")
        if not url and not path:
            raise ValueError("one of --qdrant_url or --qdrant_path must be given")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._collection = collection
        self._dim = dim
        self._model_name = model_name
        self._url = url
        self._path = path
        self._batch_size = batch_size
        self._store: Optional[Store] = None
        self._buffer: List[Point] = []
        self.written = Metrics.counter("vectorstream", "points_written")
        self.batch_sizes = Metrics.distribution("vectorstream", "write_batch_size")
        self.latency_ms = Metrics.distribution("vectorstream", "event_to_stored_ms")

    def setup(self):
        self._store = acquire_store(self._url, self._path)
        self._store.ensure_collection(self._collection, self._dim)

    def start_bundle(self):
        self._buffer = []

    def process(self, element):
        event, vector = element
        payload = dict(event.payload)
        payload["model"] = self._model_name
        self._buffer.append(Point(event.point_id, vector, payload))
        if len(self._buffer) >= self._batch_size:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if not self._buffer:
            return
        points, self._buffer = self._buffer, []
        now = time.time()
        stamp = format_time(dt.datetime.fromtimestamp(now, dt.timezone.utc))
        for point in points:
            point.payload["ingested_at"] = stamp
        self._store.upsert(self._collection, points)
        self.written.inc(len(points))
        self.batch_sizes.update(len(points))
        for point in points:
            produced = point.payload.get("kafka", {}).get("timestamp_ms")
            if produced:
                self.latency_ms.update(int(now * 1000 - produced))

    def teardown(self):
        if self._store is not None:
            self._store = None
            release_store(self._url, self._path)
