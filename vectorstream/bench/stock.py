"""Stock Beam in the benchmark: what a Beam user writes with Beam's own pieces."""
from __future__ import annotations

import json
import os
import time
from typing import Dict

import apache_beam as beam

from vectorstream.bench.source import BenchSource, Clock
from vectorstream.bench.stores import collection_of


def build_stock(pipeline, spec: Dict) -> None:
    from apache_beam.ml.inference.base import (KeyedModelHandler, ModelHandler,
                                               PredictionResult, RunInference)
    from apache_beam.ml.rag.ingestion import qdrant as beam_qdrant
    from apache_beam.ml.rag.types import Content, EmbeddableItem, Embedding
    from vectorstream.transforms.events import point_id

    class EncodeHandler(ModelHandler):
        """The plain ModelHandler a Beam user writes around SentenceTransformer.encode."""

        def __init__(self, path, device):
            super().__init__()
            self._path, self._device = path, device

        def load_model(self):
            from vectorstream.transforms.use_model import UseEncoder, is_use_model
            if is_use_model(self._path):  # no sentence-transformers directory: our port
                return UseEncoder(self._path, self._device)
            from sentence_transformers import SentenceTransformer
            return SentenceTransformer(self._path, device=self._device)

        def run_inference(self, batch, model, inference_args=None):
            vectors = model.encode(list(batch), normalize_embeddings=True)
            return [PredictionResult(t, v) for t, v in zip(batch, vectors)]

    class TimedQdrantWriteFn(beam_qdrant._QdrantWriteFn):  # pylint: disable=protected-access
        """Beam's own Qdrant write DoFn, unchanged, plus a note of when each batch landed."""

        def _flush(self):
            batch = list(self._batch)
            super()._flush()
            now = time.time()
            Clock.on_stored(now, [now - p.payload["kafka_ms"] / 1000 for p in batch])

    def to_text(message):
        event = json.loads(message.value)
        event["kafka_ms"] = message.timestamp_ms
        product = event["product"]
        return event, f"{product['name']}. {product['description'].strip()}"

    def to_item(event, result):
        return EmbeddableItem(content=Content(text=result.example),
                              id=point_id(event["event_id"]), metadata=event,
                              embedding=Embedding(dense_embedding=result.inference.tolist()))

    config = beam_qdrant.QdrantWriteConfig(
        connection_params=(beam_qdrant.QdrantConnectionParameters(url=spec["qdrant_url"])
                           if spec.get("qdrant_url") else
                           beam_qdrant.QdrantConnectionParameters.local(
                               os.path.join(spec["dir"], "stock-store"))),
        collection_name=collection_of(spec, "stock"))
    (pipeline
     # One record an element, as Beam's ReadFromKafka gives them.
     | "Events" >> BenchSource(spec, batch=1)
     | "One message an element" >> beam.FlatMap(lambda batch: batch)
     | "Parse JSON" >> beam.Map(to_text)
     | "Embed" >> RunInference(KeyedModelHandler(EncodeHandler(spec["model_path"],
                                                               spec["device"])))
     | "To EmbeddableItem" >> beam.MapTuple(to_item)
     | "Convert to points" >> beam.Map(config.create_converter())
     | "Write to Qdrant" >> beam.ParDo(TimedQdrantWriteFn(config)))
