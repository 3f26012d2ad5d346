"""How long the sink takes to build one upsert request for a Qdrant server, a point at a
time: the three ways it has been built (docs/performance.md, levers 16, 33 and 34).

    python -m vectorstream.bench.wire [--points 512] [--dim 512] [--repeats 11]

- `classes`: qdrant-client's gRPC classes built in place, the vector as Python floats
  (lever 16);
- `vector_bytes`: the same, the id and vector merged in as wire bytes (lever 33);
- `wire`: the whole request as wire bytes, without qdrant-client (lever 34; what runs).

Each builds and serialises the same request of bench events (a catalog event's payload);
prints the median and the fastest of `--repeats`, in µs a point, as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid


def _points(n: int, dim: int):
    import numpy as np
    from vectorstream.bench.workloads import workload_messages
    from vectorstream.io.store import Point
    rng = np.random.default_rng(0)
    out = []
    for i, (_, value) in enumerate(workload_messages("catalog", n)):
        payload = json.loads(value)
        payload.update({"event_hash": "r1:3275d41d13d7d8803abda32b", "ingested_at":
                        "2026-12-04T20:28:35.648Z", "model": "use-multilingual-v3",
                        "kafka": {"topic": "bench", "partition": i % 2, "offset": i,
                                  "timestamp_ms": 1796416092967 + i}})
        out.append(Point(str(uuid.UUID(int=i)), rng.random(dim, dtype=np.float32), payload))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args(argv)
    from qdrant_client import grpc as qgrpc
    from qdrant_client.conversions.conversion import payload_to_grpc
    from vectorstream.io import grpc_wire
    points = _points(args.points, args.dim)

    def classes():
        request = qgrpc.UpsertPoints(collection_name="bench", wait=True)
        add = request.points.add
        for p in points:
            add(id={"uuid": p.id}, vectors={"vector": {"data": p.vector.tolist()}},
                payload=payload_to_grpc(p.payload))
        return request.SerializeToString()

    def vector_bytes():
        request = qgrpc.UpsertPoints(collection_name="bench", wait=True)
        add = request.points.add
        for p in points:
            add(payload=payload_to_grpc(p.payload)).MergeFromString(
                grpc_wire.point_id_and_vector(p.id, p.vector))
        return request.SerializeToString()

    def wire():
        return grpc_wire.upsert_request("bench", points)

    ways = {"classes": classes, "vector_bytes": vector_bytes, "wire": wire}
    built = {qgrpc.UpsertPoints.FromString(way()).SerializeToString(deterministic=True)
             for way in ways.values()}
    assert len(built) == 1, "the three ways built different requests"
    times = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, way in ways.items():  # alternated, so that the machine's drift is shared
            started = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - started) * 1e6 / len(points))
    print(json.dumps({name: {"median_us_per_point": round(sorted(t)[len(t) // 2], 1),
                             "fastest_us_per_point": round(min(t), 1)}
                      for name, t in times.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
