"""Where each pipeline of a benchmark run writes, and reading back what it stored."""
from __future__ import annotations

import os
from typing import Dict, List

from vectorstream.bench.workloads import COLLECTION


def collection_of(spec: Dict, which: str) -> str:
    """The collection a pipeline writes: on a server, one of this run's own for each (ours
    and stock would otherwise write into one, and stock's create would find ours')."""
    if not spec.get("collection"):
        return COLLECTION
    return spec["collection"] + ("-stock" if which == "stock" else "")


def stock_client(spec: Dict):
    from qdrant_client import QdrantClient
    if spec.get("qdrant_url"):
        return QdrantClient(url=spec["qdrant_url"])
    return QdrantClient(path=os.path.join(spec["dir"], "stock-store"))


def create_stock_collection(spec: Dict, dim: int) -> None:
    from qdrant_client import models
    client = stock_client(spec)
    client.create_collection(collection_of(spec, "stock"), vectors_config={
        "dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)})
    client.close()


def ours_store(spec: Dict):
    from vectorstream.io.qdrant import open_store
    if spec.get("qdrant_url"):
        return open_store(url=spec["qdrant_url"], grpc_port=spec.get("grpc_port"))
    where = os.path.join(spec["dir"], "ours-store")
    return (open_store(url="local://" + where) if spec["store"] == "local"
            else open_store(path=where))


def stored_count(spec: Dict, which: str) -> int:
    if which == "stock":
        client = stock_client(spec)
        try:
            return client.count(collection_of(spec, "stock"), exact=True).count
        finally:
            client.close()
    store = ours_store(spec)
    try:
        return store.count(collection_of(spec, "ours"))
    finally:
        store.close()


def stored_times(store, collection: str) -> List[tuple]:
    """(stored, latency s) of each point in `collection`, from the points themselves (their
    read time, stamped into kafka.timestamp_ms, and ingested_at): how a run whose writers
    are other processes is measured."""
    import datetime as dt
    out = []
    for hit in store.scroll(collection):
        stored = dt.datetime.fromisoformat(
            hit.payload["ingested_at"].replace("Z", "+00:00")).timestamp()
        out.append((stored, stored - hit.payload["kafka"]["timestamp_ms"] / 1000.0))
    return out
