"""Writers of the products and users collections (the events collection's sink is
`vectorstream.io.sink`). Each owns its store like the sink (opened in `setup`, shared in
the process), writes what its bundle brought at the bundle's end, retries transient
failures as the sink does (--write_retry_seconds), and is replay-safe: what it writes is
recomputed from the events collection, whose points are the events themselves.

- `WriteProductsFn`: (product id, the window's latest sighting) → the product's point:
  its vector and fields (when the sighting is newer than the fields stored), its counts by
  event type (a facet of the events collection over these products, per type) and when
  it was last seen (the newer of stored and seen).
- `WriteProfilesFn`: (user id, anything) → the user's profile from their last N events in
  the events collection (`transforms.entities.profile`).
- `WriteCatalogFn`: (catalog record, vector) → a product's fields and vector (its counts
  kept); a tombstone deletes the product.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from vectorstream.io.qdrant import Point, Store, open_store
from vectorstream.io.writes import acquire_store, release_store, with_retries
from vectorstream.io.store import PRODUCT_FIELDS, USER_FIELDS, Where
from vectorstream.transforms.events import point_id as event_point_id
from vectorstream.transforms.entities import (EVENT_TYPES, newer, parse_time, pick_latest,
                                              product_payload, product_point_id, profile,
                                              user_point_id)

_LOG = logging.getLogger(__name__)


def user_events(store: Store, events: str, user_id: str, n: int) -> List[Dict]:
    """The user's events the profile is made from: their `n` newest by event time, ties by
    event id. The store's order among equal times is its own, so all the events at the
    n-th's time are read and the tie broken here: the same set of stored events always
    gives the same n."""
    return users_events(store, events, [user_id], n)[0]


def users_events(store: Store, events: str, user_ids: List[str], n: int) -> List[List[Dict]]:
    """`user_events` of each user, the first reads batched (`Store.latest_many`: a
    server answers many users in one request)."""
    first = store.latest_many(events, [Where(match={"user_id": u}) for u in user_ids],
                              "timestamp", n)
    out = []
    for user_id, hits in zip(user_ids, first):
        if len(hits) == n:
            boundary = hits[-1].payload.get("timestamp")
            hits = store.latest(events, Where(match={"user_id": user_id},
                                              since=("timestamp", boundary)),
                                "timestamp", 1_000_000)
        out.append([{"event_id": h.payload.get("event_id"),
                     "event_type": h.payload.get("event_type"),
                     "timestamp": h.payload.get("timestamp"), "vector": h.vector,
                     "product_id": (h.payload.get("product") or {}).get("id")}
                    for h in hits if h.vector is not None])
    return out


class _EntityWriter(beam.DoFn):
    """A store of its own (shared in the process), a buffer per bundle, retries."""

    def __init__(self, events: str, target: str, dim: int, model_name: str,
                 url: Optional[str], path: Optional[str], grpc: bool = True,
                 grpc_port: Optional[int] = None, retry_seconds: float = 300.0,
                 opener: Callable[..., Store] = open_store, indexes=None):
        self._events_alias, self._target_alias, self._dim = events, target, dim
        self._events, self._target = events, target
        self._model_name = model_name
        self._url, self._path, self._grpc, self._grpc_port = url, path, grpc, grpc_port
        self._retry_seconds = retry_seconds
        self._opener = opener
        self._indexes = indexes
        self._store: Optional[Store] = None
        self._buffer: List[Any] = []
        self.written = Metrics.counter("vectorstream", f"{self.KIND}_written")

    def setup(self):
        self._store = acquire_store(self._url, self._path, self._opener, self._grpc,
                                    self._grpc_port)
        from vectorstream.io.store import INDEXED_FIELDS
        from vectorstream.io.versions import writable
        # This model's versions of its collection and of the events it reads (io.versions)
        self._target = self._call(lambda: writable(self._store, self._target_alias,
                                                   self._model_name, self._dim, self._indexes))
        self._events = self._call(lambda: writable(self._store, self._events_alias,
                                                   self._model_name, self._dim, INDEXED_FIELDS))

    def _call(self, call):
        return with_retries(call, self._store.description, self._retry_seconds)

    def start_bundle(self):
        self._buffer = []

    def process(self, element):
        self._buffer.append(element)
        if len(self._buffer) >= 256:
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if self._buffer:
            batch, self._buffer = self._buffer, []
            with _ONE_WRITER:
                self.written.inc(self.write(batch))

    def write(self, batch) -> int:
        raise NotImplementedError

    def teardown(self):
        if self._store is not None:
            self._store = None
            release_store(self._url, self._path, self._opener, self._grpc, self._grpc_port)


# A profile or product is read, rebuilt and written by one writer of a process at a time
# (where the graph has no combine per key, the streaming DirectRunner's, this is what keeps
# it one writer per key; elsewhere each key reaches one writer anyway).
_ONE_WRITER = threading.Lock()


class WriteProductsFn(_EntityWriter):
    KIND = "products"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, indexes=PRODUCT_FIELDS, **kwargs)

    def write(self, batch: List[Tuple[str, Tuple]]) -> int:
        store = self._store
        seen: Dict[str, List[Tuple]] = {}
        for pid, sighting in batch:  # a product twice (no combine upstream): the latest
            seen.setdefault(pid, []).append(sighting)
        by_id = {product_point_id(pid): (pid, pick_latest(s)) for pid, s in seen.items()}
        stored = {h.id: h.payload for h in self._call(
            lambda: store.retrieve(self._target, list(by_id)))}
        product_ids = [pid for pid, _ in by_id.values()]
        counts: Dict[str, Dict[str, int]] = {pid: {} for pid in product_ids}
        for event_type in EVENT_TYPES:  # one facet a type, over this batch's products
            found = self._call(lambda: store.facet(
                self._events, "product.id", Where(match={"event_type": event_type},
                                                  any={"product.id": product_ids}),
                limit=len(product_ids)))
            for pid, n in found.items():
                if pid in counts:
                    counts[pid][event_type] = n
        # the vectors of the events whose fields are stored: the events collection has them
        wanted = {event_point_id(s[1]) for _, s in by_id.values() if s[3] is None}
        vectors = {h.id: h.vector for h in self._call(lambda: store.retrieve(
            self._events, list(wanted), with_vector=True))} if wanted else {}
        points, refresh = [], []
        for point_id, (pid, (seen, event_id, fields, vector, text)) in by_id.items():
            if vector is None:
                vector = vectors.get(event_point_id(event_id))
            old = stored.get(point_id) or {}
            last_seen = newer(old.get("last_seen"), seen)
            if old.get("fields_at") and parse_time(old["fields_at"]) > parse_time(seen):
                # newer fields are stored (a later event, or the catalog): counts only
                refresh.append((point_id, {"counts": {t: counts[pid].get(t, 0)
                                                      for t in EVENT_TYPES},
                                           "events": sum(counts[pid].values()),
                                           "last_seen": last_seen}))
                continue
            if vector is None:  # the event deleted since (a tombstone): its next sighting
                continue
            points.append(Point(point_id, vector, product_payload(
                fields, last_seen, counts[pid], seen, text, self._model_name)))
        if points:
            self._call(lambda: store.upsert(self._target, points))
        for point_id, payload in refresh:
            self._call(lambda: store.set_payload(self._target, [point_id], payload))
        return len(points) + len(refresh)


class WriteProfilesFn(_EntityWriter):
    KIND = "profiles"

    def __init__(self, *args, profile_events: int = 50, **kwargs):
        super().__init__(*args, indexes=USER_FIELDS, **kwargs)
        self._n = profile_events

    def write(self, batch: List[Tuple[str, Any]]) -> int:
        store, points, gone = self._store, [], []
        users = list(dict.fromkeys(user for user, _ in batch))
        read = self._call(lambda: users_events(store, self._events, users, self._n))
        for user_id, events in zip(users, read):
            made = profile(events, self._n)
            if made is None:  # nothing that weighs (only removals): no profile
                gone.append(user_point_id(user_id))
                continue
            vector, facts = made
            points.append(Point(user_point_id(user_id), vector, {
                "user_id": user_id, **facts, "model": self._model_name}))
        if points:
            self._call(lambda: store.upsert(self._target, points))
        if gone:
            self._call(lambda: store.delete(self._target, gone))
        return len(points)


class WriteCatalogFn(_EntityWriter):
    """(record, vector) pairs: record = {"op": "upsert"|"delete", "id", "product", "at"}."""
    KIND = "catalog"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, indexes=PRODUCT_FIELDS, **kwargs)

    def write(self, batch) -> int:
        store = self._store
        last: Dict[str, Tuple[Dict, Any]] = {}
        for record, vector in batch:  # a key's records in topic order: the last one stands
            last[product_point_id(record["id"])] = (record, vector)
        deletes = [pid for pid, (r, _) in last.items() if r["op"] == "delete"]
        upserts = {pid: (r, v) for pid, (r, v) in last.items() if r["op"] == "upsert"}
        stored = {h.id: h.payload for h in self._call(
            lambda: store.retrieve(self._target, list(upserts)))} if upserts else {}
        points = []
        for point_id, (record, vector) in upserts.items():
            old = stored.get(point_id) or {}
            if old.get("fields_at") and parse_time(old["fields_at"]) > parse_time(record["at"]):
                continue  # an event newer than this record set the fields
            counts = old.get("counts") or {}
            points.append(Point(point_id, vector, product_payload(
                record["product"], old.get("last_seen"), counts, record["at"],
                record["text"], self._model_name)))
        if points:
            self._call(lambda: store.upsert(self._target, points))
        if deletes:
            self._call(lambda: store.delete(self._target, deletes))
        return len(points) + len(deletes)
