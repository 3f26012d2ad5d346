"""The graph's middle on a TestPipeline: TestStream-fed Kafka messages through parsing,
event-time windows, the real model and a real embedded Qdrant store."""
import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from vectorstream.io.kafka_source import BatchMessages, KafkaMessage
from vectorstream.io.qdrant import open_store
from vectorstream.pipeline.graph import EventsToQdrant
from vectorstream.transforms.model import choose_model
from vectorstream.transforms.events import point_id

BASE = 1_705_314_600  # 2024-01-15T10:30:00Z


def message(offset, seconds, event_id=None, value=None):
    if value is None:
        event = {"event_id": event_id, "timestamp": f"2024-01-15T10:30:{seconds:02d}Z",
                 "user_id": "u1", "event_type": "view",
                 "product": {"id": f"p{offset}", "name": f"Ürün {offset}",
                             "description": "Pamuklu tişört", "category": "giyim",
                             "price": 10.0}}
        value = json.dumps(event, ensure_ascii=False).encode()
    return KafkaMessage("events", 0, offset, None, value, (BASE + seconds) * 1000)


def test_windows_dead_letters_and_stored_points(tmp_path):
    options = PipelineOptions(["--window_seconds", "10", "--qdrant_path",
                               str(tmp_path / "q")])
    options.view_as(StandardOptions).streaming = True
    stream = (TestStream()
              .advance_watermark_to(Timestamp(BASE))
              .add_elements([TimestampedValue(message(0, 1, "a"), BASE + 1),
                             TimestampedValue(message(1, 4, "b"), BASE + 4),
                             TimestampedValue(message(2, 5, value=b"{oops"), BASE + 5)])
              .advance_watermark_to(Timestamp(BASE + 12))
              .add_elements([TimestampedValue(message(3, 13, "c"), BASE + 13)])
              .advance_watermark_to_infinity())

    def windows_of(events, win=beam.DoFn.WindowParam):
        return [(event.payload["event_id"], int(win.start), int(win.end)) for event in events]

    with TestPipeline(options=options) as p:
        out = p | stream | BatchMessages(10) | EventsToQdrant(options, choose_model(None))
        assert_that(out["events"] | beam.FlatMap(windows_of), equal_to([
            ("a", BASE, BASE + 10), ("b", BASE, BASE + 10), ("c", BASE + 10, BASE + 20)]),
            label="events land in their event-time windows")
        assert_that(out["dead_letters"] | beam.Map(lambda r: (r["stage"], r["original"],
                                                              r["source"]["offset"])),
                    equal_to([("parse", "{oops", 2)]), label="the bad message is a dead letter")

    store = open_store(path=str(tmp_path / "q"))
    try:
        assert {h.id for h in store.scroll("ecommerce_events")} == {
            point_id(e) for e in ("a", "b", "c")}
    finally:
        store.close()


class FailingOnBombs:
    """Fault injected at the model boundary (a real model cannot be made to fail on
    demand): the packaged model, except that a model call holding "💥" raises."""

    def __new__(cls, *args, **kwargs):
        from vectorstream.transforms.embed import SentenceEmbeddingHandler

        class Bombs:
            def __init__(self, encoder):
                self.encoder = encoder

            def encode(self, texts):
                if any("💥" in text for text in texts):
                    raise RuntimeError("CUDA out of memory (injected)")
                return self.encoder.encode(texts)

        class Handler(SentenceEmbeddingHandler):
            def load_model(self):
                return Bombs(super().load_model())

        return Handler(*args, **kwargs)


def test_embedding_failures_become_dead_letters_and_spare_the_rest_of_the_batch(tmp_path):
    options = PipelineOptions(["--qdrant_path", str(tmp_path / "q")])
    bomb = json.loads(message(1, 2, "b").value)
    bomb["product"]["name"] = "💥 bomb"
    messages = [message(0, 1, "a"),
                message(1, 2, value=json.dumps(bomb, ensure_ascii=False).encode()),
                message(2, 3, "c")]
    with TestPipeline(options=options) as p:
        out = (p | beam.Create(messages) | BatchMessages(10)
               | EventsToQdrant(options, choose_model(None), handler_class=FailingOnBombs))
        assert_that(out["dead_letters"] | beam.Map(
            lambda r: (r["stage"], json.loads(r["original"])["event_id"],
                       "out of memory" in r["reason"])),
            equal_to([("embed", "b", True)]))
    store = open_store(path=str(tmp_path / "q"))
    try:
        assert {h.id for h in store.scroll("ecommerce_events")} == {point_id("a"),
                                                                   point_id("c")}
    finally:
        store.close()


def test_embedding_cache_returns_the_models_vectors_and_evicts_oldest():
    import numpy as np
    from vectorstream.transforms.embed import CachedEncoder
    from vectorstream.transforms.model import load_model as _load, default_model_path
    model = _load(default_model_path(), "cpu")
    encoder = CachedEncoder(model, max_entries=2)
    texts = ["Deri ceket, siyah", "Yoga matı 6 mm", "Deri ceket, siyah"]
    first = encoder.encode(texts)
    assert (encoder.hits, encoder.misses) == (1, 2)  # the repeat within the batch
    fresh = model.encode(texts, normalize_embeddings=True)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(first, fresh))
    encoder.encode(["Kahve makinesi"])  # evicts the oldest entry
    encoder.encode(["Deri ceket, siyah"])
    assert encoder.misses == 4
