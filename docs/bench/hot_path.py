"""Our own per-event work on the hot path, stage by stage, without Beam's runner, Kafka,
the model or the store: what `vectorstream bench` cannot separate.

    python docs/bench/hot_path.py --events 100000 [--profile parse|cache|sink|store]

Messages: the bench's `catalog` workload, in batches of 512 of one partition as our
reader gives them. Stages, each timed with CPU time (time.process_time) per event:

- parse: the pipeline's ParseEvents DoFn over each batch (validation, payload,
  fingerprint, point id);
- cache: the embedding cache's look-up of each batch's texts (every text a hit: the
  model is a stand-in that returns a fixed vector, warmed with the catalog first);
- sink: the sink DoFn's process and finish_bundle (points, buffers, batches, the
  conflict look-up, latencies) writing to a store that does nothing;
- store: the embedded Qdrant Edge store's upserts of the same points (conversion to its
  Rust types and the write), in batches of 256: the store's share, not ours.

"ours" is parse + cache + sink. `--profile STAGE` prints cProfile's top functions of one
stage. Runs against the code it is run from (so the same script measures a before and an
after checkout).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.bench.workloads import workload_messages  # noqa: E402
from vectorstream.io.kafka_source import KafkaMessage  # noqa: E402
from vectorstream.io.qdrant import Store, open_store  # noqa: E402
from vectorstream.io.sink import WriteToQdrantFn, make_point  # noqa: E402
from vectorstream.transforms.embed import CachedEncoder  # noqa: E402
from vectorstream.transforms.parse import _ParseFn  # noqa: E402

DIM = 384


class NullStore(Store):
    description = "nothing"

    def ensure_collection(self, name, dim):
        pass

    def upsert(self, name, points):
        pass

    def payload_field(self, name, ids, field):
        return {}

    def count(self, name):
        return 0


def null_opener(**_kwargs):
    return NullStore()


class StandIn:
    """The model's place in the cache: one fixed unit vector per text."""

    def __init__(self):
        vector = np.random.default_rng(0).standard_normal(DIM).astype(np.float32)
        self.vector = vector / np.linalg.norm(vector)

    def encode(self, texts, **_kwargs):
        return np.tile(self.vector, (len(texts), 1))


def batches(count: int, size: int = 512):
    messages = workload_messages("catalog", count)
    now_ms = int(time.time() * 1000)
    out, batch = [], []
    for offset, (key, value) in enumerate(messages):
        batch.append(KafkaMessage("bench", 0, offset, key, value, now_ms))
        if len(batch) == size:
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


def run_parse(inputs):
    fn = _ParseFn()
    out = []
    for batch in inputs:
        for result in fn.process(batch):
            if isinstance(result, list):
                out.append(result)
    return out


def run_cache(parsed, encoder):
    return [encoder.encode([event.text for event in events]) for events in parsed]


def run_sink(parsed, vectors):
    fn = WriteToQdrantFn("bench", DIM, "bench-model", path="unused", opener=null_opener)
    fn.setup()
    fn.start_bundle()
    for events, vecs in zip(parsed, vectors):
        for _ in fn.process((events, list(vecs))):
            pass
    for _ in fn.finish_bundle():
        pass
    fn.teardown()


def run_store(parsed, vectors, directory):
    store = open_store(path=directory)
    store.ensure_collection("bench", DIM)
    batch = []
    for events, vecs in zip(parsed, vectors):
        for event, vector in zip(events, vecs):
            batch.append(make_point(event, vector, "bench-model"))
            if len(batch) == 256:
                store.upsert("bench", batch)
                batch = []
    if batch:
        store.upsert("bench", batch)
    store.close()


def timed(call, profile: bool):
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    result = call()
    if profiler:
        profiler.disable()
    seconds = time.process_time() - started
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    return result, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profile", choices=("parse", "cache", "sink", "store"))
    args = parser.parse_args()
    inputs = batches(args.events)
    n = sum(len(b) for b in inputs)
    encoder = CachedEncoder(StandIn(), 50_000)
    run_cache(run_parse(inputs), encoder)  # the cache holds every text from here on
    parsed, parse_s = timed(lambda: run_parse(inputs), args.profile == "parse")
    valid = sum(len(events) for events in parsed)
    vectors, cache_s = timed(lambda: run_cache(parsed, encoder), args.profile == "cache")
    _, sink_s = timed(lambda: run_sink(parsed, vectors), args.profile == "sink")
    with tempfile.TemporaryDirectory() as directory:
        parsed_again = run_parse(inputs)  # the sink stamped the payloads: fresh ones
        _, store_s = timed(lambda: run_store(parsed_again, vectors, directory),
                           args.profile == "store")
    per = {name: seconds / n * 1e6 for name, seconds in
           (("parse", parse_s), ("cache", cache_s), ("sink", sink_s), ("store", store_s))}
    print(f"{n} catalog events ({valid} valid), CPU µs an event:")
    for name, value in per.items():
        print(f"  {name:6} {value:7.1f}")
    print(f"  ours   {per['parse'] + per['cache'] + per['sink']:7.1f}  (parse + cache + sink; "
          f"the store's {per['store']:.1f} besides)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
