"""Where the model's time goes on this CPU, and whether torch.compile changes it.

    python docs/bench/cpu_roofline.py     (in the project's venv; ~3 minutes here)

1,500 product texts of the `unique` workload, encoded as the pipeline does (batches of
64, sorted by length by `encode`). Prints: the best fp32 matrix-multiply rate torch gets
on this machine at the model's own shapes; the encode rate; the share of encode's time in
the Linear layers and the rate they run at (from the tokens actually computed, padding
included); and the encode rate under torch.compile (inductor, dynamic shapes; without and
with weight freezing), with the cosine of its vectors to eager's. Not part of the
pipeline: docs/performance.md (lever 10) says what it showed.
"""
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from vectorstream.io.produce import catalog
from vectorstream.transforms.model import default_model_path

TEXTS = [f"{p['name']}. {p['description'].strip()}" for p in catalog(1500, seed=3)]
BATCH = 64


def gemm_rate(m, k, n, repeat=20):
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * m * k * n * repeat / (time.perf_counter() - started) / 1e9


def encode_rate(model, texts=TEXTS):
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=BATCH, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started), vectors


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    shapes = [(2048, 384, 384), (2048, 384, 1536), (2048, 1536, 384), (2048, 2048, 2048)]
    for shape in shapes:
        print(f"matmul {shape}: {gemm_rate(*shape):.0f} GFLOP/s")
    model = SentenceTransformer(default_model_path(), device="cpu")
    bert = model[0].auto_model
    encode_rate(model, TEXTS[:200])
    rate, reference = encode_rate(model)
    print(f"encode: {rate:.0f} texts/s")

    # Tokens the Linear layers see: encode sorts by length, then pads each batch of 64.
    lengths = sorted(len(ids) for ids in model.tokenizer(TEXTS)["input_ids"])
    padded = sum(max(lengths[i:i + BATCH]) * len(lengths[i:i + BATCH])
                 for i in range(0, len(lengths), BATCH))
    hidden, inner = bert.config.hidden_size, bert.config.intermediate_size
    flop_per_token = bert.config.num_hidden_layers * 2 * (4 * hidden * hidden + 2 * hidden * inner)
    print(f"tokens: mean {np.mean(lengths):.1f} a text, {padded / sum(lengths):.3f}x with padding; "
          f"{flop_per_token * np.mean(lengths) / 1e9:.2f} GFLOP a text in the Linear layers")
    with torch.profiler.profile() as prof:
        started = time.perf_counter()
        model.encode(TEXTS, batch_size=BATCH, normalize_embeddings=True)
        wall = time.perf_counter() - started
    linear = sum(e.self_cpu_time_total for e in prof.key_averages()
                 if e.key in ("aten::addmm", "aten::mm", "aten::bmm")) / 1e6
    print(f"profiled encode {wall:.1f} s: Linear layers {linear:.1f} s ({linear / wall:.0%}) at "
          f"{flop_per_token * padded / linear / 1e9:.0f} GFLOP/s; everything else {wall - linear:.1f} s")

    for freezing in (False, True):
        import torch._inductor.config as inductor_config
        inductor_config.freezing = freezing
        torch._dynamo.reset()
        model[0].auto_model = torch.compile(bert, dynamic=True)
        started = time.perf_counter()
        with torch.no_grad():
            encode_rate(model, TEXTS[:200])
        compiled_in = time.perf_counter() - started
        rates = []
        for _ in range(2):
            rate, vectors = encode_rate(model)
            rates.append(rate)
        print(f"torch.compile (freezing={freezing}): first 200 texts {compiled_in:.0f} s, then "
              f"{rates[0]:.0f} / {rates[1]:.0f} texts/s; cosine to eager min "
              f"{float((vectors * reference).sum(1).min()):.6f}")
        model[0].auto_model = bert
    rate, _ = encode_rate(model)
    print(f"eager again: {rate:.0f} texts/s")


if __name__ == "__main__":
    main()
