"""The branches beside the events path: products and user profiles, per window, and the
catalog topic.

- Products: each batch's (event, vector) pairs → (product id, sighting) → the latest
  sighting of each product in each window (a CombinePerKey) → `WriteProductsFn`.
- Profiles: the users with events in a window (a count per key and window) →
  `WriteProfilesFn`, which rebuilds each one's profile from the events collection. The
  combine fires once the window's events are written (the sink runs upstream of it in the
  same bundles), and one key of one window is one element: one writer per user at a time.
- On the streaming DirectRunner there is no combine (the plan's `entity_writes`): that
  runner holds an unbounded read's output watermark at -inf until the read ends (Beam's
  sdf_direct_runner), so a window never closes and a combine never fires, processing-time
  triggers included. There the writers take the sightings with the bundle that stored the
  events; they run in one process, under one lock (io.entities), so still one at a time.
- Catalog (`--catalog_topic`): our Kafka reader over the topic → records (tombstones
  delete) → the same embedding handler → `WriteCatalogFn`.
"""
from __future__ import annotations

from typing import Callable

import apache_beam as beam
from apache_beam.metrics import Metrics

from vectorstream.io.entities import WriteCatalogFn, WriteProductsFn, WriteProfilesFn
from vectorstream.io.kafka_admin import topic_offsets
from vectorstream.io.kafka_source import KafkaSource, ReadEvents
from vectorstream.io.qdrant import Store, open_store
from vectorstream.pipeline.plan import RunPlan
from vectorstream.transforms.catalog import InvalidRecord, parse_record
from vectorstream.transforms.embed import (KeyedEmbeddingHandler, RunInference,
                                           SentenceEmbeddingHandler)
from vectorstream.transforms.entities import pick_latest
from vectorstream.transforms.model import ModelChoice
from vectorstream.transforms.parse import DEAD_LETTERS, dead_letter


def _sightings(pair):
    """The latest sighting of each product in one batch (time, event id, fields, text),
    without its vector: the writer reads that from the stored event. What a combine keeps
    per key and window stays small (on Flink the sightings wait in the GroupByKey's state
    until the window closes, and that state is in every checkpoint: with vectors, 10,000
    events made 8 MB, past Flink's 5 MB for state held in memory)."""
    events, _ = pair
    latest = {}
    for event in events:
        if event.delete:
            continue
        payload = event.payload
        sighting = (payload["timestamp"], payload["event_id"], payload["product"], None,
                    event.text)
        pid = payload["product"]["id"]
        # (the stored times share one format, format_time's: as text they sort as times)
        if pid not in latest or sighting[:2] > latest[pid][:2]:
            latest[pid] = sighting
    return list(latest.items())


def _users(pair):
    events, _ = pair  # each user once a batch
    return [(user, 1) for user in dict.fromkeys(event.payload["user_id"] for event in events
                                                 if not event.delete)]


def _writer_args(plan: RunPlan, model: ModelChoice, target: str, opener):
    store, vs = plan.store, plan.vs
    return dict(events=store.collection, target=target, dim=model.dim,
                model_name=model.name, url=store.url, path=store.path, grpc=store.grpc,
                grpc_port=store.grpc_port, retry_seconds=vs.write_retry_seconds,
                opener=opener)


class ProductsAndProfiles(beam.PTransform):
    """(events, vectors) batches, in their windows → the products and users collections."""

    def __init__(self, plan: RunPlan, model: ModelChoice,
                 opener: Callable[..., Store] = open_store):
        super().__init__()
        self._plan, self._model, self._opener = plan, model, opener

    def expand(self, pairs):
        plan = self._plan
        # "window": one element per key and window (a combine), so one writer per key at a
        # time on every runner; "bundle": written with the bundle that stored the events
        # (the streaming DirectRunner, one process, writers serialised by a lock there).
        by_window = plan.entity_writes == "window"
        if plan.products:
            sightings = pairs | "Product sightings" >> beam.FlatMap(_sightings)
            if by_window:
                sightings = sightings | "Latest sighting of each product" >> beam.CombinePerKey(
                    pick_latest)
            (sightings
             | "Write products" >> beam.ParDo(WriteProductsFn(
                 **_writer_args(plan, self._model, plan.products, self._opener))))
        if plan.users:
            users = pairs | "Users with events" >> beam.FlatMap(_users)
            if by_window:
                users = users | "Each user once a window" >> beam.CombinePerKey(sum)
            (users
             | "Write profiles" >> beam.ParDo(WriteProfilesFn(
                 **_writer_args(plan, self._model, plan.users, self._opener),
                 profile_events=plan.vs.profile_events)))
        return pairs.pipeline


class _ParseRecords(beam.DoFn):
    def __init__(self):
        self.invalid = Metrics.counter("vectorstream", "catalog_invalid")

    def process(self, messages):
        records = []
        for message in messages:
            try:
                records.append(parse_record(message.key, message.value, message.timestamp_ms))
            except InvalidRecord as exc:
                self.invalid.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(
                    "catalog", str(exc), message.value,
                    {"topic": message.topic, "partition": message.partition,
                     "offset": message.offset}))
        if records:
            yield records


def _with_vectors(element):
    records, result = element
    texts = iter(result.inference)
    for record in records:
        vector = next(texts) if record["op"] == "upsert" else None
        if not isinstance(vector, str):  # an embedding failure leaves the record out
            yield record, vector


class CatalogToProducts(beam.PTransform):
    """The catalog topic → the products collection. Returns its dead letters."""

    def __init__(self, plan: RunPlan, model: ModelChoice,
                 opener: Callable[..., Store] = open_store):
        super().__init__()
        self._plan, self._model, self._opener = plan, model, opener

    def expand(self, pbegin):
        plan, vs = self._plan, self._plan.vs
        ends = None
        if plan.bounded:  # a bounded run reads the catalog as it is at the start
            ends = topic_offsets(vs.bootstrap(), vs.catalog_topic, vs.consumer_group,
                                 "earliest", vs.kafka_extra()).end
        source = KafkaSource(vs.bootstrap(), vs.catalog_topic, group=vs.consumer_group,
                             start_from="earliest", config=vs.kafka_extra(),
                             batch_records=vs.batch_events, ending_offsets=ends)
        handler = KeyedEmbeddingHandler(SentenceEmbeddingHandler(
            self._model.path, device=vs.device, batch_size=vs.inference_batch_size,
            cache_size=vs.embedding_cache_size))
        parsed = (pbegin
                  | "Read the catalog topic" >> ReadEvents(source, vs.bundle_seconds)
                  | "Parse catalog records" >> beam.ParDo(_ParseRecords()).with_outputs(
                      DEAD_LETTERS, main="records"))
        (parsed.records
         | "Texts of each record batch" >> beam.Map(
             lambda records: (records, [r["text"] for r in records if r["op"] == "upsert"]))
         | "Embed catalog texts" >> RunInference(handler)
         | "Vectors with records" >> beam.FlatMap(_with_vectors)
         | "Write catalog products" >> beam.ParDo(WriteCatalogFn(
             **_writer_args(plan, self._model, plan.products, self._opener))))
        return parsed[DEAD_LETTERS]
