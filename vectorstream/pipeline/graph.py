"""The pipeline graph, built from a run plan.

Kafka (batches of messages, one window each) → fixed event-time windows → ParseEvents
(dead letters) → RunInference → points → WriteToQdrant, and the dead letters to their
topic or file. `build` adds it to a pipeline (tests pass a TestPipeline and options;
`vectorstream.pipeline.launch` runs it).
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from vectorstream import telemetry
from vectorstream.io.deadletters import AppendJsonLines, WriteToKafkaTopic
from vectorstream.io.kafka_admin import topic_offsets
from vectorstream.io.kafka_source import KafkaSource, ReadEvents
from vectorstream.io.qdrant import Store, open_store
from vectorstream.io.sink import WriteToQdrantFn
from vectorstream.pipeline.plan import RunPlan, from_options
from vectorstream.transforms.batches import TextsOfBatch, VectorBatch
from vectorstream.transforms.embed import (KeyedEmbeddingHandler, RunInference,
                                           SentenceEmbeddingHandler)
from vectorstream.transforms.model import ModelChoice, choose_model
from vectorstream.transforms.parse import (DEAD_LETTERS, ParseEvents, encode_dead_letter,
                                           event_dead_letter)

_LOG = logging.getLogger(__name__)


def as_plan(plan: Union[RunPlan, PipelineOptions]) -> RunPlan:
    """A plan, from parsed options where a caller (a test) has only those."""
    return plan if isinstance(plan, RunPlan) else from_options(plan)


def embed_dead_letters(batch, error):
    """RunInference's failed call → one dead letter per event in it (stage "embed")."""
    reason = f"embedding failed: {error!r}" if not isinstance(error, str) else error
    for events, _texts in batch:
        events = [event for event in events if not event.delete]  # a tombstone needs no model
        telemetry.dead_letter("embed", len(events))
        for event in events:
            yield event_dead_letter("embed", reason, event.payload, event.raw)


class PairVectors(beam.DoFn):
    """(events, RunInference result) → (events, vectors) for the sink; an event whose text
    the model failed on is a dead letter (stage "embed")."""

    def __init__(self):
        self.embedded = Metrics.counter("vectorstream", "events_embedded")

    def process(self, element):
        events, result = element
        kept, vectors = [], []
        inference = iter(result.inference)  # a vector for each event but the tombstones
        for event in events:
            vector = None if event.delete else next(inference)
            if isinstance(vector, str):
                telemetry.dead_letter("embed")
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, event_dead_letter(
                    "embed", vector, event.payload, event.raw))
            else:
                kept.append(event)
                vectors.append(vector)
        if kept:
            self.embedded.inc(sum(1 for event in kept if not event.delete))
            yield VectorBatch((kept, vectors))


class EventsToQdrant(beam.PTransform):
    """Batches of KafkaMessage (lists, one window each, as ReadEvents gives them) →
    validated, windowed, embedded and written to Qdrant.

    The hot path carries batches, not single events: each batch is windowed, parsed,
    embedded and written as one element. Returns a dict of PCollections: `events`
    (batches of valid events, in their windows) and `dead_letters` (a record for every
    message that is not a valid, stored event).
    """

    def __init__(self, plan: Union[RunPlan, PipelineOptions], model: ModelChoice,
                 opener: Callable[..., Store] = open_store, handler_class=None):
        super().__init__()
        self._plan = as_plan(plan)
        self._vs = self._plan.vs
        self._model = model
        # Tests inject faults at the client and model boundaries here.
        self._opener = opener
        self._handler_class = handler_class or SentenceEmbeddingHandler

    def expand(self, batches):
        vs, model, store = self._vs, self._model, self._plan.store
        handler = KeyedEmbeddingHandler(self._handler_class(
            model.path, device=vs.device, batch_size=vs.inference_batch_size,
            cache_size=vs.embedding_cache_size))
        batches = batches | "Window into fixed intervals" >> beam.WindowInto(
            beam.window.FixedWindows(vs.window_seconds))
        parsed = batches | "Parse and validate events" >> ParseEvents()
        embedded, failed = (
            parsed.events
            | "Texts of each batch" >> beam.Map(lambda events: TextsOfBatch(
                (events, [event.text for event in events if not event.delete]))
            ).with_output_types(TextsOfBatch)
            | "Embed product text" >> RunInference(handler).with_exception_handling())
        paired = embedded | "Vectors with events" >> beam.ParDo(
            PairVectors()).with_output_types(VectorBatch).with_outputs(DEAD_LETTERS,
                                                                       main="pairs")
        embed_failures = (failed.failed_inferences
                          | "Failed calls to dead letters" >> beam.FlatMapTuple(
                              embed_dead_letters))
        write_failures = paired.pairs | "Write to Qdrant" >> beam.ParDo(WriteToQdrantFn(
            store.collection, model.dim, model.name, url=store.url, path=store.path,
            batch_size=vs.write_batch_size, batch_bytes=vs.write_batch_bytes,
            flush_seconds=vs.flush_seconds, retry_seconds=vs.write_retry_seconds,
            opener=self._opener, in_flight=store.in_flight, grpc=store.grpc,
            grpc_port=store.grpc_port, retention_days=vs.retention_days,
            expire_every=vs.window_seconds))
        # Each stage's dead letters, as that stage makes them: `build` writes each where it
        # is made (in the same bundle, before its offsets are committed); a Flatten of
        # them all would sit in a stage of its own, which a streaming DirectRunner never
        # ran for the parse stage's (its dead letters were not written at all).
        parts = {"parse": parsed[DEAD_LETTERS], "embed": paired[DEAD_LETTERS],
                 "embed call": embed_failures, "write": write_failures}
        dead_letters = (tuple(parts.values())
                        | "All dead letters" >> beam.Flatten()
                        | "Dead letters leave the windows" >> beam.WindowInto(
                            beam.window.GlobalWindows()))
        return {"events": parsed.events, "dead_letters": dead_letters,
                "dead_letter_parts": parts, "pairs": paired.pairs}


def event_source(plan: RunPlan, **bounds) -> KafkaSource:
    """Our Kafka source over the plan's topic, group and client settings; `bounds`: the
    run's (max_num_records, max_read_time, ending_offsets)."""
    vs = plan.vs
    return KafkaSource(vs.bootstrap(), vs.topic, group=vs.consumer_group,
                       start_from=vs.start_from, config=vs.kafka_extra(),
                       batch_records=vs.batch_events, window_seconds=vs.window_seconds,
                       **bounds)


def read_events(plan: RunPlan) -> beam.PTransform:
    """The transform that reads the input topic as batches of KafkaMessage: the plan's
    reader (ours, or Beam's KafkaIO) over the plan's topic, group and bounds. With
    --ending_offsets latest, the partitions' end offsets are read now, as the run starts."""
    vs = plan.vs
    offsets = (topic_offsets(vs.bootstrap(), vs.topic, vs.consumer_group, vs.start_from,
                             vs.kafka_extra()) if vs.ending_offsets else None)
    records, seconds = vs.max_num_records, vs.max_read_time
    if plan.java_bound == "launcher":  # the job streams; pipeline.launch ends it
        records = seconds = None
    elif plan.java_bound == "kafkaio":
        from vectorstream.runners.kafkaio import kafkaio_record_bound
        records = kafkaio_record_bound(offsets, records)
    source = event_source(
        plan, max_num_records=records, max_read_time=seconds,
        ending_offsets=offsets.end if offsets and plan.reader == "python" else None)
    if plan.reader == "java":
        from vectorstream.runners.kafkaio import ReadEventsWithKafkaIO
        return ReadEventsWithKafkaIO(source, plan.java_environment, plan.legacy_read)
    return ReadEvents(source, bundle_seconds=vs.bundle_seconds)


def build(pipeline: beam.Pipeline, plan: Union[RunPlan, PipelineOptions],
          model: Optional[ModelChoice] = None, opener: Callable[..., Store] = open_store,
          source: Optional[beam.PTransform] = None):
    """Adds the VectorStream graph to `pipeline`; returns its dict of PCollections.
    `opener` opens the Qdrant store (tests wrap it to inject faults); `source` replaces
    the Kafka reader (the benchmark feeds pre-encoded messages through it)."""
    plan = as_plan(plan)
    vs = plan.vs
    model = model or choose_model(vs.model)
    outputs = (pipeline
               | "Read events from Kafka" >> (source or read_events(plan))
               | "Events to Qdrant" >> EventsToQdrant(plan, model, opener))
    if plan.products or plan.users:
        from vectorstream.pipeline.entities import ProductsAndProfiles
        outputs["pairs"] | "Products and profiles" >> ProductsAndProfiles(plan, model, opener)
    if vs.catalog_topic:
        from vectorstream.pipeline.entities import CatalogToProducts
        outputs["dead_letter_parts"]["catalog"] = (
            pipeline | "Catalog to products" >> CatalogToProducts(plan, model, opener))
    for stage, part in outputs["dead_letter_parts"].items():
        if vs.dead_letter_path:
            (part | f"Write {stage} dead letters to a file" >> beam.ParDo(
                AppendJsonLines(vs.dead_letter_path)))
        else:
            (part
             | f"Encode {stage} dead letters" >> beam.Map(encode_dead_letter)
             | f"Write {stage} dead letters to Kafka" >> beam.ParDo(WriteToKafkaTopic(
                 vs.bootstrap(), vs.dead_letter_topic_name(), vs.kafka_extra())))
    return outputs
