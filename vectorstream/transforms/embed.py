"""Embedding with RunInference: a ModelHandler around a sentence-transformers model
(`vectorstream.transforms.model` chooses and loads it), with an LRU cache of vectors.

Vectors are L2-normalised so cosine distance in Qdrant is a dot product. Nothing heavy
happens at import or at construction: the model loads in `load_model`, once per worker.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence

from vectorstream.transforms.model import load_model, loaded, resolve_device, warm_up


def _import_runinference_base():
    """Beam's RunInference base, without its optional model manager: the base imports it
    inside `try: ... except ImportError` (Beam uses it only for `use_model_manager=True`,
    which we do not), and it imports torch and scipy at once, 2.8 s of a run's start-up
    before the first record (docs/performance.md, lever 23). It is marked absent while
    the base imports, then unmarked, so an import of it later still works."""
    import importlib
    import sys
    name = "apache_beam.ml.inference.model_manager"
    blocked = name not in sys.modules
    if blocked:
        sys.modules[name] = None  # `import` raises ImportError, as when torch is missing
    try:
        return importlib.import_module("apache_beam.ml.inference.base")
    finally:
        if blocked and sys.modules.get(name, 0) is None:
            del sys.modules[name]


_base = _import_runinference_base()
KeyedModelHandler, ModelHandler, PredictionResult, RunInference = \
    _base.KeyedModelHandler, _base.ModelHandler, _base.PredictionResult, _base.RunInference

_LOG = logging.getLogger(__name__)


class CachedEncoder:
    """The model with an LRU cache of vectors keyed by text: a product seen again (shops
    see the same products all day) is not embedded again. One per loaded model, so the
    key is the text alone; shared by the threads that share the model."""

    def __init__(self, model, max_entries: int, batch_size: int = 64):
        self.model = model
        self.max_entries = max_entries
        self.batch_size = batch_size
        self._cache: "collections.OrderedDict[str, Any]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, texts: Sequence[str]):
        found: Dict[str, Any] = {}
        if self.max_entries:
            with self._lock:
                for text in texts:
                    vector = self._cache.get(text)
                    if vector is not None:
                        self._cache.move_to_end(text)
                        found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))  # unique, in order
        seconds = None
        if missing:
            # encode sorts the texts by length and runs them batch_size at a time, so a
            # large batch of events is padded little.
            started = time.perf_counter()
            vectors = self.model.encode(missing, batch_size=self.batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)
            seconds = time.perf_counter() - started
            found.update(zip(missing, vectors))
            if self.max_entries:
                with self._lock:
                    for text, vector in zip(missing, vectors):
                        self._cache[text] = vector
                    while len(self._cache) > self.max_entries:
                        self._cache.popitem(last=False)
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        from vectorstream import telemetry
        telemetry.embedded(len(texts) - len(missing), len(missing), seconds)
        return [found[t] for t in texts]


class SentenceEmbeddingHandler(ModelHandler[List[str], PredictionResult, Any]):
    """RunInference handler over batches of events: each example is the list of texts of
    one batch; its inference is a list holding, per text, its normalised vector or (when
    the model fails on that text alone) the reason as a string. A failing call is split
    in halves until the texts that fail are isolated, so one bad text does not take the
    rest of its batch with it."""

    def __init__(self, model_path: str, device: str = "auto", batch_size: int = 64,
                 cache_size: int = 50_000):
        super().__init__()
        self._model_path = model_path
        self._device = device
        self._batch_size = batch_size
        self._cache_size = cache_size

    def load_model(self):
        device = resolve_device(self._device)
        _LOG.info("loading %s on %s (embedding cache: %d texts)", self._model_path, device,
                  self._cache_size)
        model = loaded(self._model_path, self._device, self._batch_size)  # the launcher's
        if model is None:
            model = load_model(self._model_path, device)
            warm_up(model, self._batch_size, device)
        from vectorstream import telemetry
        telemetry.mark("model loaded")
        return CachedEncoder(model, self._cache_size, self._batch_size)

    def encode(self, texts: Sequence[str], model) -> list:
        """Vectors for `texts`; the texts the model fails on alone get the reason instead."""
        try:
            return list(model.encode(list(texts)))
        except Exception as exc:  # pylint: disable=broad-except
            if len(texts) == 1:
                return [f"embedding failed: {exc!r}"]
            middle = len(texts) // 2
            return self.encode(texts[:middle], model) + self.encode(texts[middle:], model)

    def run_inference(self, batch: Sequence[List[str]], model,
                      inference_args: Optional[Dict] = None) -> Iterable[PredictionResult]:
        results = self.encode([text for texts in batch for text in texts], model)
        out, start = [], 0
        for texts in batch:
            out.append(PredictionResult(texts, results[start:start + len(texts)]))
            start += len(texts)
        return out

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}  # each example is a batch already

    def get_metrics_namespace(self) -> str:
        return "vectorstream.embed"

    def model_name(self) -> str:
        return os.path.basename(os.path.normpath(self._model_path))


class KeyedEmbeddingHandler(KeyedModelHandler):
    """Beam's KeyedModelHandler over (key, texts) pairs, counting a batch's bytes (the
    inference byte-count metric) as its texts' length. Beam's own count pickles the keys,
    here each batch's events, once a batch: 3 % of the pipeline's CPU in a profile of
    100,000 catalog events (docs/performance.md, lever 22)."""

    def get_num_bytes(self, batch) -> int:
        return sum(len(text) for _, texts in batch for text in texts)

