"""The same bounded run on each runner: one topic, one Qdrant server, one workload.

    python docs/bench/runners.py --qdrant_url http://127.0.0.1:6333 [--events 50000]
        [--runners direct,prism,flink-local,flink-local-workers,flink]
    python docs/bench/runners.py --qdrant_path DIR [--events 20000]   # no server

With `--qdrant_path` each runner writes an embedded store of its own under DIR, the
separate cluster's Python runs LOOPBACK in the command's process (an embedded store takes
one writer process), and flink-local-workers is left out (it needs a server).

Produces `--events` events of the bench's `catalog` workload (10k products, Zipf) into a
fresh 4-partition topic on the local broker (`vectorstream kafka start`), then runs
`vectorstream run --max_num_records N` on each runner as a user would, each with its own
consumer group (so each reads the whole topic) and its own collection on the server:

- direct: the DirectRunner, our reader, this process;
- prism: Beam's Prism runner, our reader, Python LOOPBACK;
- flink-local: Beam's Flink job server with its mini-cluster, Beam's KafkaIO, parallelism
  2, Python LOOPBACK (one process);
- flink-local-workers: the same with `--sdk_worker_parallelism 2` (two Python worker
  processes from a pool the run starts);
- flink: the separate cluster of `vectorstream flink start` (which must be running),
  `--preset flink`: KafkaIO in its task managers, Python in its worker pool (EXTERNAL).

For each: wall time of the command (start-up included), events stored, and the rate
from the first point stored to the last (read off the points' `ingested_at`), which
leaves start-up out. Writes a JSON report beside the table it prints.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.bench.stores import stored_times
from vectorstream.bench.workloads import workload_messages  # noqa: E402
from vectorstream.io.kafka_admin import ensure_topic  # noqa: E402
from vectorstream.io.produce import produce  # noqa: E402
from vectorstream.io.qdrant import open_store  # noqa: E402

RUNNERS = {
    "direct": ["--preset", "direct"],
    "prism": ["--preset", "prism"],
    "flink-local": ["--preset", "flink-local"],
    "flink-local-workers": ["--preset", "flink-local", "--sdk_worker_parallelism", "2"],
    "flink": ["--preset", "flink"],
}


def stored_span(url, path, collection: str):
    """(points, seconds from the first stored to the last)."""
    store = open_store(url=url, path=path)
    try:
        times = [stored for stored, _latency in stored_times(store, collection)]
    finally:
        store.close()
    return len(times), (max(times) - min(times)) if times else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--qdrant_url")
    where.add_argument("--qdrant_path")
    parser.add_argument("--bootstrap_servers", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--bound", type=int, default=None,
                        help="--max_num_records of each run (default --events). Under "
                             "--events on Flink: KafkaIO splits the bound evenly over its "
                             "readers, and a reader whose partitions hold fewer waits for "
                             "ever (docs/runners.md)")
    parser.add_argument("--report", default="runners-report.json")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:6]
    topic = f"runners-{run_id}"
    ensure_topic(args.bootstrap_servers, topic, partitions=4)
    produce(args.bootstrap_servers, topic, workload_messages("catalog", args.events))
    bound = args.bound or args.events
    rows = []
    names = args.runners.split(",")
    if args.qdrant_path:
        names = [n for n in names if n != "flink-local-workers"]
    for name in names:
        collection = f"runners-{name}-{run_id}"
        path = os.path.join(args.qdrant_path, name) if args.qdrant_path else None
        store = (["--qdrant_url", args.qdrant_url] if args.qdrant_url
                 else ["--qdrant_path", path])
        flags = RUNNERS[name] + (["--environment_type", "LOOPBACK"]
                                 if name == "flink" and path else [])
        argv = [sys.executable, "-m", "vectorstream", "run", *flags,
                "--bootstrap_servers", args.bootstrap_servers, "--topic", topic,
                "--consumer_group", f"g-{collection}", *store,
                "--collection", collection, "--max_num_records", str(bound),
                "--progress_seconds", "0"]
        started = time.time()
        proc = subprocess.run(argv, capture_output=True, text=True)
        wall = time.time() - started
        points, span = (stored_span(args.qdrant_url, path, collection)
                        if proc.returncode == 0 else (0, 0.0))
        row = {"runner": name, "flags": flags, "rc": proc.returncode,
               "wall_s": round(wall, 1), "stored": points, "processing_s": round(span, 1),
               "events_per_s": round(points / span) if span else None,
               "events_per_s_with_startup": round(points / wall) if points else None}
        if proc.returncode != 0:
            row["error"] = proc.stderr[-1500:]
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"events": args.events, "bound": bound, "topic": topic, "partitions": 4,
              "workload": "catalog",
              "store": args.qdrant_url or "embedded, one per runner",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores", "runs": rows}
    with open(args.report, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"\n{'runner':22} {'stored':>8} {'events/s':>9} {'with start-up':>14} {'wall s':>7}")
    for r in rows:
        print(f"{r['runner']:22} {r['stored']:>8} {str(r['events_per_s']):>9} "
              f"{str(r['events_per_s_with_startup']):>14} {r['wall_s']:>7}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
