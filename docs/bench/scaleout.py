"""Scaling out on Flink, measured: one topic, one Qdrant server, one invocation.

    python docs/bench/scaleout.py --qdrant_url http://127.0.0.1:6333 [--events 200000]
        [--runners direct,flink-local-1,flink-local-2] [--live_events 12000 --live_rate 400]

Produces `--events` events of the bench's `catalog` workload (10k products, Zipf) into a
fresh 4-partition topic on the local broker, then for each runner reads the whole topic
as a backfill (`vectorstream run --ending_offsets latest`, its own consumer group and its
own collection on the server), as a user would:

- direct: the DirectRunner, our reader, one process;
- flink-local-1: Beam's Flink job server and mini-cluster (parallelism 2), Beam's KafkaIO,
  one Python SDK worker: this process (LOOPBACK, `--sdk_worker_parallelism 1`);
- flink-local-2: the same with `--sdk_worker_parallelism 2`: two Python worker processes
  from a pool the run starts.

For each: events stored (must be all), the rate from the first point stored to the last
(read off the points' `ingested_at`), the wall time with start-up, CPU µs an event of
`vectorstream run` and every process it waited for (the JVM of the job server, the worker
pool and its workers), and of the Qdrant server (its /proc stat, when it runs here).
With `--live_events`, each runner also streams that many events produced at
`--live_rate` a second while it runs, and the report gives p50 / p99 event→stored
(`ingested_at` less the Kafka timestamp) over them. Writes a JSON report and a table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.bench.measure import (listening_pid, process_cpu_seconds,  # noqa: E402
                                        server_settled)
from vectorstream.bench.stores import stored_times  # noqa: E402
from vectorstream.bench.workloads import workload_messages  # noqa: E402
from vectorstream.io.kafka_admin import ensure_topic  # noqa: E402
from vectorstream.io.produce import produce  # noqa: E402
from vectorstream.io.qdrant import open_store  # noqa: E402
from vectorstream.telemetry import percentile  # noqa: E402

RUNNERS = {
    "direct": ["--preset", "direct"],
    "flink-local-1": ["--preset", "flink-local", "--sdk_worker_parallelism", "1"],
    "flink-local-2": ["--preset", "flink-local", "--sdk_worker_parallelism", "2"],
}


def run_timed(argv):
    """Runs a command; returns (rc, wall s, CPU s of it and every process it waited for,
    its stderr's tail)."""
    started = time.time()
    log = open(os.devnull, "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.PIPE, text=True)
    err = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    return (proc.returncode, time.time() - started, usage.ru_utime + usage.ru_stime,
            "".join(err)[-2000:])


def measure(args, name, topic, collection, bound_flags, on_start=None):
    flags = RUNNERS[name]
    argv = [sys.executable, "-m", "vectorstream", "run", *flags,
            "--bootstrap_servers", args.bootstrap_servers, "--topic", topic,
            "--consumer_group", f"g-{collection}", "--qdrant_url", args.qdrant_url,
            "--collection", collection, "--checkpointing_interval", "5000",
            "--progress_seconds", "0", *bound_flags]
    server = listening_pid(args.qdrant_url)
    server_before = process_cpu_seconds(server)
    if on_start is not None:
        threading.Thread(target=on_start, daemon=True).start()
    rc, wall, cpu, err = run_timed(argv)
    server_after = process_cpu_seconds(server)
    store = open_store(url=args.qdrant_url)
    try:
        times = stored_times(store, collection) if rc == 0 else []
    finally:
        store.close()
    points = len(times)
    stored = sorted(t for t, _ in times)
    span = (stored[-1] - stored[0]) if len(stored) > 1 else 0.0
    latencies = sorted(latency for _, latency in times)
    row = {"runner": name, "flags": flags, "rc": rc, "stored": points,
           "wall_s": round(wall, 1), "processing_s": round(span, 1),
           "events_per_s": round(points / span) if span else None,
           "events_per_s_with_startup": round(points / wall) if points else None,
           "cpu_s": round(cpu, 1),
           "us_per_event": round(cpu / points * 1e6) if points else None,
           "server_us_per_event": (round((server_after - server_before) / points * 1e6)
                                   if points and server_after is not None else None),
           "latency_p50_s": round(percentile(latencies, 50), 2) if latencies else None,
           "latency_p99_s": round(percentile(latencies, 99), 2) if latencies else None}
    if rc != 0:
        row["error"] = err
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qdrant_url", required=True)
    parser.add_argument("--bootstrap_servers", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--live_events", type=int, default=0)
    parser.add_argument("--live_rate", type=float, default=400.0)
    parser.add_argument("--report", default="scaleout-report.json")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:6]
    topic = f"scaleout-{run_id}"
    ensure_topic(args.bootstrap_servers, topic, partitions=4)
    produce(args.bootstrap_servers, topic, workload_messages("catalog", args.events))
    rows = []
    for name in args.runners.split(","):
        row = measure(args, name, topic, f"scaleout-{name}-{run_id}",
                      ["--ending_offsets", "latest"])
        # a backfill's event→stored latency is how long the event waited in Kafka
        row.pop("latency_p50_s"), row.pop("latency_p99_s")
        if args.live_events:
            live_topic = f"scaleout-live-{name}-{run_id}"
            ensure_topic(args.bootstrap_servers, live_topic, partitions=4)
            messages = workload_messages("catalog", args.live_events, seed=23)

            def producer(messages=messages, live_topic=live_topic):
                time.sleep(20)  # the run starts (model, job server) before events flow
                produce(args.bootstrap_servers, live_topic, messages, rate=args.live_rate)
            live = measure(args, name, live_topic, f"scaleout-live-{name}-{run_id}",
                           ["--max_num_records", str(args.live_events)], on_start=producer)
            server_settled(args.qdrant_url)
            row["live"] = {k: live[k] for k in ("stored", "latency_p50_s", "latency_p99_s",
                                                "rc")}
        row["server_indexing_after_s"] = server_settled(args.qdrant_url)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"events": args.events, "topic": topic, "partitions": 4, "workload": "catalog",
              "store": args.qdrant_url, "live_rate": args.live_rate,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores", "runs": rows}
    with open(args.report, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"\n{'runner':15} {'stored':>8} {'events/s':>9} {'w/ start-up':>12} {'wall s':>7} "
          f"{'µs/ev':>6} {'srv µs/ev':>9} {'live p50/p99 s':>15}")
    for r in rows:
        live = r.get("live") or {}
        print(f"{r['runner']:15} {r['stored']:>8} {str(r['events_per_s']):>9} "
              f"{str(r['events_per_s_with_startup']):>12} {r['wall_s']:>7} "
              f"{str(r['us_per_event']):>6} {str(r['server_us_per_event']):>9} "
              f"{str(live.get('latency_p50_s'))}/{str(live.get('latency_p99_s')):>6}")
    return 0 if all(r["rc"] == 0 and r["stored"] == args.events for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
