"""Three of the parse step's levers, each against what it replaced or was tried against,
on the same `catalog` messages (CPU µs a message, best of three rounds):

    python docs/bench/parse_levers.py --events 20000

1. one pydantic call a batch (the messages of a batch of 512 joined into one JSON array,
   validated as a list) vs one call a message (tried, not kept);
2. the fingerprint: SHA-1 of the payload re-serialised with sorted keys (before) vs SHA-1
   of the message's bytes;
3. the point id: `uuid.uuid5` (before) vs the same digest computed directly.

The validation into TypedDicts against the pydantic model it replaced (lever 12) is
measured by `docs/bench/hot_path.py` run in a checkout of each.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid

from typing import List

from pydantic import TypeAdapter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.bench.workloads import workload_messages  # noqa: E402
from vectorstream.transforms.events import (_EVENT, POINT_NAMESPACE, EventData,  # noqa: E402
                                            format_time, point_id)

_BATCH = TypeAdapter(List[EventData])


def best(call, n: int, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return min(times) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    raws = [value for _key, value in workload_messages("catalog", args.events)]
    n = len(raws)
    chunks = [raws[i:i + 512] for i in range(0, n, 512)]
    events = [_EVENT.validate_json(raw) for raw in raws]
    payloads = [{**event, "timestamp": format_time(event["timestamp"])} for event in events]

    def canonical_fingerprints():
        for payload in payloads:
            hashlib.sha1(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
                         ).hexdigest()

    def raw_fingerprints():
        for raw in raws:
            hashlib.sha1(raw).hexdigest()

    ids = [event["event_id"] for event in events]
    rows = [
        ("validation", best(lambda: [_EVENT.validate_json(r) for r in raws], n),
         best(lambda: [_BATCH.validate_json(b"[" + b",".join(c) + b"]") for c in chunks], n)),
        ("fingerprint", best(canonical_fingerprints, n), best(raw_fingerprints, n)),
        ("point id", best(lambda: [str(uuid.uuid5(POINT_NAMESPACE, i)) for i in ids], n),
         best(lambda: [point_id(i) for i in ids], n)),
    ]
    print(f"{n} catalog messages, CPU µs a message (best of 3): one → the other")
    for name, before, after in rows:
        print(f"  {name:12} {before:6.1f} → {after:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
