"""Retrieval quality of each model on a Turkish and English shop (held out: the catalog
and queries of `vectorstream/bench/catalog_tr_en.py`, 192 products of 48 types in 8
categories, 96 queries that name a need in other words, one Turkish and one English per
type).

    python docs/bench/retrieval.py [--models minilm,use-multilingual-v3] [--report FILE]

For each model and each query: the products ranked by cosine similarity; the right ones
are the 4 products of the query's type (2 brands × Turkish and English). Reported:
recall@10 (share of the right products in the top 10), MRR (1 / rank of the first right
one), hit@1, each for Turkish and English queries; and the share of a product's 10
nearest products that share its category (chance: 23/191 = 0.12).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.bench.catalog_tr_en import products, queries, text  # noqa: E402
from vectorstream.transforms.model import choose_model, load_model  # noqa: E402


def evaluate(model_name: str) -> dict:
    model = load_model(choose_model(model_name).path, "cpu")
    items, asked = products(), queries()
    started = time.perf_counter()
    vectors = np.asarray(model.encode([text(p) for p in items], normalize_embeddings=True))
    asks = np.asarray(model.encode([q["text"] for q in asked], normalize_embeddings=True))
    seconds = time.perf_counter() - started
    types = np.array([p["type"] for p in items])
    result = {"model": choose_model(model_name).name, "dim": int(vectors.shape[1]),
              "texts_per_s": round((len(items) + len(asked)) / seconds)}
    for lang in ("tr", "en", "all"):
        recalls, rr, hits = [], [], []
        for q, vector in zip(asked, asks):
            if lang != "all" and q["lang"] != lang:
                continue
            order = np.argsort(-(vectors @ vector))
            right = types[order] == q["type"]
            recalls.append(right[:10].sum() / (types == q["type"]).sum())
            first = int(np.argmax(right))
            rr.append(1.0 / (first + 1))
            hits.append(float(right[0]))
        result[lang] = {"queries": len(rr), "recall@10": round(float(np.mean(recalls)), 3),
                        "mrr": round(float(np.mean(rr)), 3),
                        "hit@1": round(float(np.mean(hits)), 3)}
    categories = np.array([p["category"] for p in items])
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    nearest = np.argsort(-similar, axis=1)[:, :10]
    result["category_share@10"] = round(float((categories[nearest] ==
                                               categories[:, None]).mean()), 3)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="minilm,use-multilingual-v3")
    parser.add_argument("--report", default=None)
    args = parser.parse_args()
    rows = [evaluate(name) for name in args.models.split(",")]
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores", "models": rows}
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=2)
    print(f"{'model':24} {'recall@10 tr/en':>16} {'MRR tr/en':>12} {'hit@1 tr/en':>12} "
          f"{'category@10':>12}")
    for r in rows:
        print(f"{r['model']:24} {r['tr']['recall@10']:>7} / {r['en']['recall@10']:<6} "
              f"{r['tr']['mrr']:>5} / {r['en']['mrr']:<5} {r['tr']['hit@1']:>5} / "
              f"{r['en']['hit@1']:<5} {r['category_share@10']:>12}")


if __name__ == "__main__":
    main()
