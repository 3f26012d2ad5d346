"""Tokenising off the inference thread, on CPU: does it speed the model up?

    python docs/bench/tokenize_overlap.py     (in the project's venv; ~1 minute here)

1,500 product texts of the `unique` workload, batches of 64 sorted by length, three ways:
sentence-transformers' `encode` (tokenises each batch just before its forward pass), the
same loop written out, and that loop with every batch tokenised ahead by a second thread
while the forward passes run; then the tokeniser alone. Not part of the pipeline:
docs/performance.md (lever 11) says what it showed.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from vectorstream.io.produce import catalog
from vectorstream.transforms.model import default_model_path

TEXTS = [f"{p['name']}. {p['description'].strip()}" for p in catalog(1500, seed=3)]
BATCH = 64


def main():
    model = SentenceTransformer(default_model_path(), device="cpu")
    bert, tokenizer = model[0].auto_model, model.tokenizer

    def tokenize(texts):
        return tokenizer(texts, padding=True, truncation=True, max_length=256,
                         return_tensors="pt")

    def own_loop(texts, ahead):
        """encode's loop: sort by length, tokenise, forward, mean-pool, normalise."""
        order = np.argsort([len(t) for t in texts])
        chunks = [[texts[i] for i in order[s:s + BATCH]] for s in range(0, len(texts), BATCH)]
        vectors = []
        with ThreadPoolExecutor(1) as pool, torch.inference_mode():
            pending = [pool.submit(tokenize, c) for c in chunks] if ahead else None
            for i, chunk in enumerate(chunks):
                features = pending[i].result() if ahead else tokenize(chunk)
                hidden = bert(input_ids=features["input_ids"],
                              attention_mask=features["attention_mask"]).last_hidden_state
                mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        out = np.empty((len(texts), vectors[0].shape[1]), np.float32)
        out[order] = np.concatenate(vectors)
        return out

    def rate(fn):
        started = time.perf_counter()
        vectors = fn()
        return len(TEXTS) / (time.perf_counter() - started), vectors

    model.encode(TEXTS[:200], batch_size=BATCH)
    own_loop(TEXTS[:200], ahead=True)
    for _ in range(2):
        encoded, reference = rate(lambda: model.encode(TEXTS, batch_size=BATCH,
                                                       normalize_embeddings=True))
        plain, _ = rate(lambda: own_loop(TEXTS, ahead=False))
        ahead, vectors = rate(lambda: own_loop(TEXTS, ahead=True))
        print(f"encode {encoded:.0f}, own loop {plain:.0f}, own loop with the tokeniser a "
              f"thread ahead {ahead:.0f} texts/s; cosine to encode's vectors min "
              f"{float((vectors * reference).sum(1).min()):.6f}")
    started = time.perf_counter()
    for start in range(0, len(TEXTS), BATCH):
        tokenize(TEXTS[start:start + BATCH])
    print(f"tokeniser alone: {len(TEXTS) / (time.perf_counter() - started):.0f} texts/s")


if __name__ == "__main__":
    main()
