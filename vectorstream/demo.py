"""`vectorstream demo` (and `make demo`): the whole product on this machine in one command.

Starts the local broker when none answers, produces synthetic events at a steady rate to
a fresh topic while the pipeline runs on the DirectRunner into the embedded store, then
prints a report and the top hits of a sample semantic search.
"""
from __future__ import annotations

import datetime as dt
import threading
import time

from vectorstream.telemetry import percentile

SAMPLE_QUERY = "wireless headphones with a long battery life"


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def latency_report(hits, topic: str) -> dict:
    """Event→stored latency from the stored payloads of one topic's events.

    Latency is `ingested_at` (set as the point is written) minus the Kafka timestamp (set
    when the event was produced). Events produced before the first point was stored waited
    for the pipeline to start (model loading); they are counted but left out of p50/p99.
    """
    rows = []
    for hit in hits:
        kafka = hit.payload.get("kafka") or {}
        if kafka.get("topic") != topic or "ingested_at" not in hit.payload:
            continue
        rows.append((kafka["timestamp_ms"] / 1000.0, _parse_time(hit.payload["ingested_at"])))
    if not rows:
        return {"points": 0}
    ready = min(stored for _, stored in rows)
    steady = sorted(stored - produced for produced, stored in rows if produced >= ready)
    last_stored = max(s for _, s in rows)
    nan = float("nan")
    return {"points": len(rows), "steady_points": len(steady),
            "events_per_s": len(steady) / max(1e-9, last_stored - ready) if steady else 0.0,
            "latency_p50_s": percentile(steady, 50) if steady else nan,
            "latency_p99_s": percentile(steady, 99) if steady else nan}


def _wait_for_commit(bootstrap: str, topic: str, worker: threading.Thread,
                     timeout: float = 300.0) -> None:
    """Waits until the pipeline (consumer group = topic) has committed an offset."""
    from confluent_kafka import Consumer, TopicPartition
    from vectorstream.io.kafka_admin import committed_offsets, partitions_of
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    try:
        tps = [TopicPartition(topic, p) for p in partitions_of(bootstrap, topic)]
        deadline = time.time() + timeout
        while time.time() < deadline and worker.is_alive():
            if any(o > 0 for o in committed_offsets(consumer, tps).values()):
                return
            time.sleep(0.2)
    finally:
        consumer.close()


def demo(args) -> int:
    from vectorstream.io.kafka_admin import check_reachable
    from vectorstream.io.local_kafka import LocalKafka

    bootstrap = args.bootstrap_servers
    started_broker = None
    try:
        check_reachable(bootstrap, timeout=3)
        print(f"Kafka: using the broker at {bootstrap}")
    except Exception:
        host, _, port = bootstrap.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise
        print("Kafka: starting a local broker (jars from Maven Central on first use) ...")
        started_broker = LocalKafka(port=int(port))
        bootstrap = started_broker.start()
        print(f"Kafka: running at {bootstrap}")
    try:
        return _demo(args, bootstrap)
    finally:
        if started_broker is not None and not args.keep_kafka:
            from vectorstream.io.kafka_readers import close_committers
            close_committers()  # before the broker goes, or they retry noisily until exit
            started_broker.stop()
            print("Kafka: stopped the local broker (keep it with --keep_kafka)")


def _demo(args, bootstrap: str) -> int:
    from vectorstream.io.kafka_admin import ensure_topic
    from vectorstream.io.produce import generate, produce
    from vectorstream.io.qdrant import open_store
    from vectorstream.pipeline.launch import run

    topic = "demo-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    ensure_topic(bootstrap, topic, partitions=2)
    messages = list(generate(args.count, products=args.products, bad_fraction=args.bad_fraction))
    bad = sum(1 for m in messages if m[2] is None)
    store_flags = (["--qdrant_url", args.qdrant_url, "--qdrant_grpc", args.qdrant_grpc]
                   + (["--qdrant_grpc_port", str(args.qdrant_grpc_port)]
                      if args.qdrant_grpc_port else []) if args.qdrant_url
                   else ["--qdrant_path", args.qdrant_path])
    argv = ["--bootstrap_servers", bootstrap, "--topic", topic, "--consumer_group", topic,
            "--max_num_records", str(len(messages)),
            "--max_read_time", str(int(len(messages) / (args.rate or 100) * 3 + 300)),
            "--window_seconds", str(args.window_seconds), "--collection", args.collection,
            "--embedding_cache_size", str(args.embedding_cache_size),
            "--metrics_port", str(args.metrics_port), *store_flags]
    print(f"Pipeline: DirectRunner, topic {topic}, {len(messages)} events at "
          f"{f'{args.rate:g}/s' if args.rate else 'full speed'} "
          f"({bad} malformed on purpose)")
    outcome: dict = {}

    def pipeline():
        try:
            outcome["result"] = run(argv)
        except BaseException as exc:  # reported below, in the main thread
            outcome["error"] = exc

    started = time.time()
    worker = threading.Thread(target=pipeline, name="pipeline")
    worker.start()
    # One warm-up event first: once its offset is committed the pipeline is up (model
    # loaded, store open), and the steady stream measures the pipeline, not its start.
    produce(bootstrap, topic, messages[:1])
    _wait_for_commit(bootstrap, topic, worker)
    ready = time.time() - started
    produce(bootstrap, topic, messages[1:], rate=args.rate)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    elapsed = time.time() - started

    from vectorstream.pipeline.launch import counters as read_counters
    counters = read_counters(outcome["result"])
    store = open_store(url=args.qdrant_url, path=None if args.qdrant_url else args.qdrant_path,
                       grpc=args.qdrant_grpc == "on", grpc_port=args.qdrant_grpc_port)
    try:
        report = latency_report(store.scroll(args.collection), topic)
        total = store.count(args.collection)
        from vectorstream.transforms.model import embed_query
        hits = store.search(args.collection, embed_query(SAMPLE_QUERY), limit=200)
    finally:
        store.close()

    print()
    print("VectorStream demo report")
    print(f"  events read          {counters.get('events_read', 0)}")
    print(f"  points written       {counters.get('points_written', 0)}"
          f"  (collection {args.collection} now holds {total})")
    print(f"  dead letters         {counters.get('events_invalid', 0)}  (topic {topic}.dlq)")
    print(f"  wall time            {elapsed:.1f} s (pipeline up after {ready:.1f} s: "
          f"model load, store open)")
    print(f"  events/s (steady)    {report.get('events_per_s', 0):.0f}  (producer rate "
          f"{f'{args.rate:g}/s' if args.rate else 'unlimited'})")
    print(f"  event→stored latency p50 {report.get('latency_p50_s', float('nan')):.2f} s, "
          f"p99 {report.get('latency_p99_s', float('nan')):.2f} s "
          f"(over {report.get('steady_points', 0)} events produced after the pipeline was ready)")
    print()
    print(f'Search "{SAMPLE_QUERY}":')
    seen = set()
    for hit in hits:  # many events share a product: show the five best distinct products
        p = hit.payload.get("product", {})
        if p.get("id") in seen:
            continue
        seen.add(p.get("id"))
        print(f"  {len(seen)}. {hit.score:.3f}  {p.get('name')} — {p.get('description', '')[:60]}")
        if len(seen) == 5:
            break
    return 0
