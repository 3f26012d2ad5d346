"""The benchmark's events: `unique` (every product text new) and `catalog` (Zipf-like
repeats of a 10k-product catalog)."""
from __future__ import annotations

import bisect
import json
import random
from typing import List

from vectorstream.bench.options import WORKLOADS


CATALOG_SIZE = 10_000
COLLECTION = "bench"


# ---------------------------------------------------------------- the events


def workload_messages(workload: str, count: int, seed: int = 11,
                      catalog_size: int = CATALOG_SIZE) -> List[tuple]:
    """(key, value) messages: `unique` gives every event its own product text; `catalog`
    draws products Zipf-like (s = 1.1) from a catalog (10k products unless told), as shops
    see."""
    from vectorstream.io.produce import catalog, make_event
    rng = random.Random(seed)
    if workload == "unique":
        products = catalog(count, seed=seed)
    elif workload == "catalog":
        items = catalog(catalog_size, seed=seed)
        rng.shuffle(items)  # popularity is not the catalog order
        cumulative, total = [], 0.0
        for rank in range(1, len(items) + 1):
            total += 1.0 / rank ** 1.1
            cumulative.append(total)
        products = [items[min(bisect.bisect(cumulative, rng.random() * total), len(items) - 1)]
                    for _ in range(count)]
    else:
        raise ValueError(f"--workload must be one of {WORKLOADS}, not {workload!r}")
    out = []
    for product in products:
        event = make_event(rng, product)
        out.append((event["event_id"].encode(), json.dumps(event, ensure_ascii=False).encode()))
    return out
