"""int8 dynamic quantisation on CPU: how far its vectors move from fp32's, and how fast.

    python docs/bench/int8_quality.py     (in the project's venv; ~1 minute here)

1,500 product texts of the `unique` workload; for each variant: cosine to the fp32
vectors (mean, 1st percentile, min), agreement of the ten nearest neighbours of 100
queries among the 1,500, and sentences/s (encode, batch 64, two runs). Not part of the
pipeline: docs/performance.md (lever 5) says why int8 is not used.
"""
import copy
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from torch.ao.quantization import (default_dynamic_qconfig, per_channel_dynamic_qconfig,
                                   quantize_dynamic)

from vectorstream.io.produce import catalog
from vectorstream.transforms.model import default_model_path

TEXTS = [f"{p['name']}. {p['description'].strip()}" for p in catalog(1500, seed=3)]


def speed(model, n=600):
    started = time.time()
    model.encode(TEXTS[:n], batch_size=64, normalize_embeddings=True)
    return round(n / (time.time() - started), 1)


def main():
    model = SentenceTransformer(default_model_path(), device="cpu")
    lengths = [len(ids) for ids in model.tokenizer(TEXTS)["input_ids"]]
    print(f"tokens a text: mean {np.mean(lengths):.1f}, max {max(lengths)}")
    reference = model.encode(TEXTS, batch_size=64, normalize_embeddings=True)
    print("fp32 sentences/s", speed(model), speed(model))

    def variant(name, qconfig, keep_ffn_output=False):
        copied = copy.deepcopy(model)
        spec = {n: qconfig for n, m in copied.named_modules()
                if isinstance(m, torch.nn.Linear) and not (
                    keep_ffn_output and n.endswith("output.dense") and "attention" not in n)}
        quantised = quantize_dynamic(copied, spec, dtype=torch.qint8)
        vectors = quantised.encode(TEXTS, batch_size=64, normalize_embeddings=True)
        cosine = (vectors * reference).sum(1)
        exact, approx = reference[:100] @ reference.T, vectors[:100] @ vectors.T
        agree = np.mean([len(set(np.argsort(-exact[i])[:10])
                             & set(np.argsort(-approx[i])[:10])) / 10 for i in range(100)])
        print(f"{name}: cosine mean {cosine.mean():.4f} p1 {np.percentile(cosine, 1):.4f} "
              f"min {cosine.min():.4f}; top-10 agreement {agree:.3f}; sentences/s "
              f"{speed(quantised)} {speed(quantised)}", flush=True)

    variant("per-tensor", default_dynamic_qconfig)
    variant("per-channel", per_channel_dynamic_qconfig)
    variant("per-channel, FFN output fp32", per_channel_dynamic_qconfig, keep_ffn_output=True)


if __name__ == "__main__":
    main()
