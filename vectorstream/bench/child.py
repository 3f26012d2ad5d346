"""One pipeline of a benchmark run, in a process of its own, and what it measures."""
from __future__ import annotations

import json
import os
import pickle
import resource
import time

import apache_beam as beam

from vectorstream.bench.measure import (Sampler, cpu_seconds, listening_pid,
                                        process_cpu_seconds, rounded, rss_mb)
from vectorstream.bench.ours import build_ours
from vectorstream.bench.source import Clock
from vectorstream.bench.stock import build_stock
from vectorstream.bench.stores import create_stock_collection, stored_count
from vectorstream.bench.workloads import COLLECTION

def run_child(which: str, spec_path: str) -> None:
    """Runs one pipeline over the workload; writes its measurements as JSON."""
    from vectorstream.telemetry import TALLY
    from vectorstream.transforms.model import resolve_device
    with open(spec_path) as fh:
        spec = json.load(fh)
    spec["device"] = resolve_device(spec["device"])
    TALLY.listener = Clock.on_stored
    started = time.time()
    rss = Sampler(10, lambda: (*rss_mb(), len(Clock.stored), time.time()))
    rss.start()
    if which == "stock":
        create_stock_collection(spec, spec["dim"])
    pipeline = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(
        ["--direct_num_workers", "1"]))
    (build_ours if which == "ours" else build_stock)(pipeline, spec)
    server_pid = listening_pid(spec["qdrant_url"]) if spec.get("qdrant_url") else None
    cpu_before, server_before = cpu_seconds(), process_cpu_seconds(server_pid)
    pipeline.run().wait_until_finish()
    ended = time.time()
    cpu_s = cpu_seconds() - cpu_before
    server_after = process_cpu_seconds(server_pid)
    server_cpu_s = (server_after - server_before) if server_after is not None else None
    from vectorstream.telemetry import percentile
    rss.stop()
    end_rss = rss_mb()
    latencies = sorted(v for _, v in Clock.stored)
    last = max((t for t, _ in Clock.stored), default=ended)
    first = Clock.first_read or started
    # The second half of the events, alone: the rate once the start (and, on `catalog`,
    # the cache filling with the popular products) is behind.
    stored_at = sorted(t for t, _ in Clock.stored)
    half = stored_at[len(stored_at) // 2] if stored_at else last
    result = {
        "events": spec["events"], "stored_reported": len(latencies),
        "stored": stored_count(spec, which),
        "events_per_s": round(len(latencies) / max(last - first, 1e-9), 1),
        "latency_p50_s": rounded(percentile(latencies, 50)),
        "latency_p99_s": rounded(percentile(latencies, 99)),
        "second_half_events_per_s": round(
            (len(stored_at) - len(stored_at) // 2) / max(last - half, 1e-9), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # While events flowed; after the last one the pipeline tears down (the store closes).
        "rss_mb_every_10s": [sample[0] for sample in rss.samples if sample[3] <= last],
        "rss_anon_mb_every_10s": [sample[1] for sample in rss.samples if sample[3] <= last],
        "stored_every_10s": [sample[2] for sample in rss.samples if sample[3] <= last],
        "rss_mb_after_run": end_rss[0], "rss_anon_mb_after_run": end_rss[1],
        # CPU of this process and its workers (model, store and all) per event stored:
        # the pipeline's cost without a profiler's; with a server, the server's beside it.
        "cpu_s": round(cpu_s, 2),
        "us_per_event": round(cpu_s / max(len(latencies), 1) * 1e6, 1),
        "server_cpu_s": None if server_cpu_s is None else round(server_cpu_s, 2),
        "server_us_per_event": (None if server_cpu_s is None else
                                round(server_cpu_s / max(len(latencies), 1) * 1e6, 1)),
        "processing_s": round(last - first, 2), "wall_s": round(ended - started, 2),
        "startup_s": round(first - started, 2), "first_read": first, "last_stored": last,
    }
    with open(os.path.join(spec["dir"], f"{which}.json"), "w") as fh:
        json.dump(result, fh)


def run_store_alone(spec_path: str) -> None:
    """The embedded store alone, for comparison with ours: the workload's events parsed
    and written as our sink writes them (random unit vectors in place of the model's, in
    batches of 256), with this process's memory noted every 10,000 points. What ours
    grows by beyond this, at the same number of points, is the pipeline's own."""
    import numpy as np
    from vectorstream.io.qdrant import open_store
    from vectorstream.io.sink import make_point
    from vectorstream.transforms.parse import parse_message
    from vectorstream.io.kafka_source import KafkaMessage
    with open(spec_path) as fh:
        spec = json.load(fh)
    with open(spec["messages"], "rb") as fh:
        messages = pickle.load(fh)[:spec["events"]]
    store = open_store(path=os.path.join(spec["dir"], "store"))
    store.ensure_collection(COLLECTION, spec["dim"])
    rng = np.random.default_rng(0)
    samples, batch = [(0, *rss_mb())], []
    store_cpu = 0.0
    for offset, (key, value) in enumerate(messages):
        event = parse_message(KafkaMessage(spec["topic"], 0, offset, key, value, 0))
        vector = rng.standard_normal(spec["dim"]).astype(np.float32)
        batch.append(make_point(event, (vector / np.linalg.norm(vector)).tolist(), "bench"))
        if len(batch) == 256 or offset == len(messages) - 1:
            started = time.process_time()
            store.upsert(COLLECTION, batch)
            store_cpu += time.process_time() - started
            batch = []
        if (offset + 1) % 10_000 == 0 or offset == len(messages) - 1:
            samples.append((offset + 1, *rss_mb()))
    store.close()
    with open(os.path.join(spec["dir"], "store_alone.json"), "w") as fh:
        json.dump({"points": [s[0] for s in samples], "rss_mb": [s[1] for s in samples],
                   "rss_anon_mb": [s[2] for s in samples],
                   # CPU of the upserts alone (conversion to the store's types included)
                   "us_per_point": round(store_cpu / max(len(messages), 1) * 1e6, 1)}, fh)
