"""What a Qdrant server spends indexing catalog events, by collection set-up
(docs/performance.md, levers 27 and 28). Upserts N catalog events (500 products, so 500
distinct vectors of 512 floats, the multilingual USE's size) in 256-point gRPC batches
through the sink's store (each batch stamped `ingested_at` as the sink stamps it) into a
fresh collection, then waits until the server has indexed them (every collection
green); prints the server's CPU an event while the upserts ran and in all, and how long
the indexing went on after them:

    python docs/bench/server_indexing.py 50000 plain,ours,ours-lean,ours-lean-deferred

Set-ups (comma-separated, each in a fresh collection, one after the other):
  plain               no payload index (the hand-written consumer's collection)
  ours                the events' six payload indexes, each with HNSW links (before lever 27)
  ours-lean           the same, the filter-only fields without links (lever 27, the default)
  ...-deferred        indexing_threshold 0 while the upserts run, the old one after (lever 28)

Needs a Qdrant server at http://127.0.0.1:6333 (its process found by its port).
"""
import json
import sys
import time
import uuid

import numpy as np


def main():
    import datetime as dt
    from qdrant_client import models
    from vectorstream.bench.measure import listening_pid, process_cpu_seconds, server_settled
    from vectorstream.bench.workloads import workload_messages
    from vectorstream.io.qdrant import Point, open_store
    from vectorstream.io.server import _index_schema
    from vectorstream.io.store import FILTER_ONLY_FIELDS, INDEXED_FIELDS
    from vectorstream.transforms.events import format_time
    url = "http://127.0.0.1:6333"
    count, setups = int(sys.argv[1]), sys.argv[2].split(",")
    events = [json.loads(v) for _, v in workload_messages("catalog", count, catalog_size=500)]
    rng = np.random.default_rng(1)
    base = rng.standard_normal((500, 512)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    slots = {}
    vectors = [base[slots.setdefault(e["product"]["id"], len(slots)) % 500].tolist()
               for e in events]
    store = open_store(url=url)  # the sink's store: its gRPC upserts
    client = store.client
    server = listening_pid(url)
    for setup in setups:
        name = f"indexing-{setup}-{uuid.uuid4().hex[:6]}"
        client.create_collection(name, vectors_config=models.VectorParams(
            size=512, distance=models.Distance.COSINE))
        if setup.startswith("ours"):
            for field, kind in INDEXED_FIELDS.items():
                client.create_payload_index(name, field, _index_schema(
                    kind, graph="lean" not in setup or field not in FILTER_ONLY_FIELDS))
        threshold = client.get_collection(name).config.optimizer_config.indexing_threshold
        if setup.endswith("deferred"):
            client.update_collection(name, optimizers_config=models.OptimizersConfigDiff(
                indexing_threshold=0))
        server_settled(url)
        cpu0, t0 = process_cpu_seconds(server), time.time()
        for i in range(0, count, 256):
            stamp = format_time(dt.datetime.now(dt.timezone.utc))  # as the sink stamps
            store.upsert(name, [
                Point(str(uuid.uuid5(uuid.NAMESPACE_URL, event["event_id"])), vector,
                      dict(event, ingested_at=stamp))
                for event, vector in zip(events[i:i + 256], vectors[i:i + 256])])
        cpu1, t1 = process_cpu_seconds(server), time.time()
        if setup.endswith("deferred"):
            client.update_collection(name, optimizers_config=models.OptimizersConfigDiff(
                indexing_threshold=threshold))
        server_settled(url)
        cpu2, t2 = process_cpu_seconds(server), time.time()
        print(json.dumps({"setup": setup, "events": count, "upserts_s": round(t1 - t0, 2),
                          "server_us_per_event_upserting": round((cpu1 - cpu0) / count * 1e6),
                          "server_us_per_event_indexed": round((cpu2 - cpu0) / count * 1e6),
                          "indexed_s_after_upserts": round(t2 - t1, 2)}), flush=True)
        client.delete_collection(name)
    store.close()


if __name__ == "__main__":
    main()
