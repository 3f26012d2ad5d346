"""What the embedded store's Python binding costs a point, by payload (CPU µs a point,
best of three rounds, the GIL held throughout):

    python docs/bench/edge_payload.py --events 4000

`qdrant_edge.Point(id, vector, payload)` converts the payload to Rust when the Point is
made. Its value type is a PyO3 `derive(FromPyObject)` enum that tries Bool, Uint, Int,
Float, String, Array, Object in that order, and each failed try builds a Python error:
so a value costs by how far down that list its type is. This prints the cost of our
events' payloads (as the sink gives them), of the same vector with no payload, and of
ten values of each type, to show where a point's time goes; then `shard.update` of
batches of 512 such points, the rest of the store's per-point cost.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from collections import namedtuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from parse_levers import best  # noqa: E402  (CPU µs an item, best of three rounds)
from vectorstream.bench.workloads import workload_messages  # noqa: E402
from vectorstream.transforms.parse import parse_message  # noqa: E402

_Message = namedtuple("_Message", "topic partition offset timestamp_ms value key")


def main(argv=None) -> int:
    import numpy as np
    import qdrant_edge as q
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args(argv)
    events = [parse_message(_Message("catalog", 0, offset, 1_700_000_000_000, value, key))
              for offset, (key, value) in enumerate(workload_messages("catalog", args.events))]
    vector = np.random.default_rng(1).random(384, dtype=np.float32).tolist()
    n = len(events)
    leaves = sum(1 for e in events for v in e.payload.values()
                 for _ in (v.values() if isinstance(v, dict) else [v])) / n
    print(f"{n} catalog events, {leaves:.1f} payload values an event on average")
    rows = [
        ("the event's payload", lambda: [q.Point(e.point_id, vector, e.payload) for e in events]),
        ("no payload", lambda: [q.Point(e.point_id, vector, {}) for e in events]),
    ]
    for kind, value in (("bool", True), ("int", 7), ("float", 1.5), ("str", "abc")):
        payload = {f"k{i}": value for i in range(10)}
        rows.append((f"10 {kind} values", lambda p=payload: [
            q.Point(e.point_id, vector, p) for e in events]))
    for name, call in rows:
        print(f"  Point(...) with {name:20s} {best(call, n):7.1f} µs a point")

    points = [q.Point(e.point_id, vector, e.payload) for e in events]
    base = tempfile.mkdtemp(prefix="edge-payload-")
    try:
        shard = q.EdgeShard.create(os.path.join(base, "s"), q.EdgeConfig(
            vectors=q.EdgeVectorParams(size=384, distance=q.Distance.Cosine)))

        def update():
            for first in range(0, n, 512):
                shard.update(q.UpdateOperation.upsert_points(points[first:first + 512]))
        print(f"  shard.update, batches of 512        {best(update, n):7.1f} µs a point")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
