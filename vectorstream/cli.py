"""The `vectorstream` command: run, kafka, flink, produce, search, recommend, stats, demo, bench."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import List, Optional

_LOG = logging.getLogger("vectorstream")

STORE_HELP = "Embedded Qdrant Edge store directory (default ./data/qdrant)."


class CliError(Exception):
    """Stops the command with one readable line on stderr and exit code 2."""


def _store_flags(parser):
    parser.add_argument("--qdrant_path", default="./data/qdrant", help=STORE_HELP)
    parser.add_argument("--qdrant_url", default=None,
                        help="Qdrant server URL, or local://DIR for qdrant-client local mode; "
                             "overrides --qdrant_path.")
    parser.add_argument("--collection", default="ecommerce_events")


def _kafka_flags(parser):
    parser.add_argument("--bootstrap_servers", default="localhost:9092")
    parser.add_argument("--topic", default="ecommerce-events")


def _open(args):
    """The store, for reading: an embedded store a running pipeline holds is read from a
    copy taken now (said on stderr)."""
    from vectorstream.io.qdrant import open_store
    return open_store(url=args.qdrant_url, path=None if args.qdrant_url else args.qdrant_path,
                      read_only=True)


def _note_copy(store) -> None:
    if getattr(store, "copied_from", None):
        print(f"note: {store.copied_from} is held by a running pipeline; this read a copy "
              f"taken just now", file=sys.stderr)


def _parse_filters(items: List[str]) -> dict:
    match = {}
    for item in items or []:
        if "=" not in item:
            raise CliError(f"--filter {item!r} must look like field=value "
                           f"(e.g. event_type=purchase or product.category=kitap)")
        key, value = item.split("=", 1)
        match[key] = value
    return match


# ---------------------------------------------------------------------------------------

def cmd_run(args, extra: List[str]) -> int:
    if "-h" in extra or "--help" in extra:
        from vectorstream.pipeline.options import help_text
        print(help_text())
        return 0
    from vectorstream.pipeline.graph import run
    result = run(extra)
    _print_counters(result)
    return 0


def cmd_presets(args, extra) -> int:
    from vectorstream.runners.presets import describe_presets
    print(describe_presets())
    return 0


def counters(result) -> dict:
    """The pipeline's `vectorstream` counters, or {} where the runner cannot report them."""
    try:
        return {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == "vectorstream"}
    except Exception as exc:  # e.g. a RecursionError in Beam's metric merge after many bundles
        _LOG.warning("the runner could not report metrics: %r", exc)
        return {}


def _print_counters(result) -> None:
    counters_ = counters(result)
    if counters_:
        print(" ".join(f"{k}={v}" for k, v in sorted(counters_.items())))


def cmd_kafka(args, extra) -> int:
    from vectorstream.io.local_kafka import LocalKafka
    broker = LocalKafka(args.data_dir, port=args.port)
    if args.action == "start":
        print(f"Kafka running at {broker.start()}")
    elif args.action == "stop":
        print("stopped" if broker.stop() else "no broker started from here was running")
    else:
        print(broker.status())
    return 0


def cmd_flink(args, extra) -> int:
    from vectorstream.runners import flink
    cluster = flink.LocalFlink(args.data_dir, port=args.port, taskmanagers=args.taskmanagers,
                               slots=args.slots, worker_pool_port=args.worker_pool_port)
    if args.action == "start":
        address = cluster.start()
        print(f"Flink running at {address} ({args.taskmanagers} task managers, "
              f"{args.slots} slots each); Python worker pool at {cluster.worker_pool}; "
              f"submit with `vectorstream run --preset flink`")
    elif args.action == "stop":
        print("stopped" if cluster.stop() else "no Flink cluster started from here was running")
    elif args.action == "cancel":
        master = args.flink_master or cluster.master
        try:
            ids = flink.cancel_jobs(master, name=args.job_name, job_id=args.job)
        except OSError as exc:
            raise CliError(f"Flink at {master} does not answer ({exc}): check --flink_master")
        if ids:
            flink.wait_for_jobs_to_end(master, ids)
        print(f"cancelled {len(ids)} job(s){': ' + ', '.join(ids) if ids else ''}")
    else:
        print(cluster.status())
    return 0


def cmd_produce(args, extra) -> int:
    from vectorstream.io.kafka import ensure_topic
    from vectorstream.io.produce import generate, produce
    if not 0 <= args.bad_fraction <= 1:
        raise CliError("--bad_fraction must be between 0 and 1")
    ensure_topic(args.bootstrap_servers, args.topic, partitions=args.partitions)
    sent = produce(args.bootstrap_servers, args.topic,
                   generate(args.count, args.products, args.bad_fraction, args.seed),
                   rate=args.rate or None)
    print(f"produced {sent} events to {args.topic} at {args.bootstrap_servers}")
    return 0


def _embed_query(text: str, model: Optional[str]):
    from vectorstream.pipeline.graph import choose_model
    from vectorstream.transforms.embed import _load, resolve_device
    choice = choose_model(model)
    encoder = _load(choice.path, resolve_device("auto"))
    return encoder.encode([text], normalize_embeddings=True)[0]


def cmd_search(args, extra) -> int:
    match = _parse_filters(args.filter)
    vector = _embed_query(args.text, args.model)
    store = _open(args)
    try:
        hits = store.search(args.collection, vector, limit=args.limit, match=match)
        _note_copy(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps([{"id": h.id, "score": h.score, "payload": h.payload} for h in hits],
                         ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no hits")
    for rank, hit in enumerate(hits, 1):
        p = hit.payload.get("product", {})
        print(f"{rank:2d}. {hit.score:.3f}  {p.get('name')} — {p.get('description', '')[:60]}"
              f"  [{p.get('category')}, {hit.payload.get('event_type')}]")
    return 0


def cmd_recommend(args, extra) -> int:
    from vectorstream.io import recommend
    if bool(args.user) == bool(args.product):
        raise CliError("give one of --user USER_ID or --product PRODUCT_ID")
    store = _open(args)
    try:
        if args.user:
            recs, basis = recommend.for_user(store, args.collection, args.user,
                                             limit=args.limit, recent=args.recent)
            source = {"user_id": args.user, "events": basis.events, "by_type": basis.by_type,
                      "excluded_products": basis.excluded_products}
            title = (f"For user {args.user} (from {basis.events} recent events: "
                     + ", ".join(f"{n} {k}" for k, n in sorted(basis.by_type.items()))
                     + f"; the {len(basis.excluded_products)} products they bought or saw "
                       "left out)")
        else:
            recs, product = recommend.for_product(store, args.collection, args.product,
                                                  limit=args.limit)
            source = {"product": product}
            title = f"Like {product.get('name')} ({args.product})"
        _note_copy(store)
    except recommend.NothingToRecommendFrom as exc:
        raise CliError(f"{exc}: check the id, --collection and the store flags")
    finally:
        store.close()
    if args.json:
        print(json.dumps(recommend.as_json(recs, source), ensure_ascii=False, indent=2))
        return 0
    print(title + ":")
    if not recs:
        print("  no recommendations")
    for rank, rec in enumerate(recs, 1):
        p = rec.product
        print(f"{rank:2d}. {rec.score:.3f}  {p.get('name')} — {str(p.get('description', ''))[:50]}"
              f"  [{p.get('category')}, {p.get('id')}]")
    return 0


def cmd_stats(args, extra) -> int:
    store = _open(args)
    try:
        points = store.count(args.collection)
        _note_copy(store)
    finally:
        store.close()
    info = {"store": store.description, "collection": args.collection, "points": points}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{points} points in {args.collection} ({store.description})")
    return 0


def cmd_model_speed(args, extra) -> int:
    """Sentences/s of the model alone (encode), on the demo's product texts."""
    import time
    from vectorstream.io.produce import catalog
    from vectorstream.pipeline.graph import choose_model
    from vectorstream.transforms.embed import _load, resolve_device
    device = resolve_device(args.device)
    model = _load(choose_model(args.model).path, device)
    texts = [f"{p['name']}. {p['description']}" for p in catalog(args.count)]
    model.encode(texts[:args.batch_size], batch_size=args.batch_size)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
    elapsed = time.perf_counter() - started
    print(f"{len(texts) / elapsed:.0f} sentences/s ({len(texts)} texts, batch "
          f"{args.batch_size}, {device})")
    return 0


def _dead_letters(args):
    from vectorstream.io import deadletters
    if args.path:
        return list(deadletters.read_file(args.path))
    return list(deadletters.read_topic(args.bootstrap_servers,
                                       args.dead_letter_topic or f"{args.topic}.dlq",
                                       idle_seconds=args.idle_seconds))


def cmd_deadletters(args, extra) -> int:
    from vectorstream.transforms.parse import original_bytes
    records = _dead_letters(args)
    if args.stage:
        records = [r for r in records if r.get("stage") == args.stage]
    if args.action == "show":
        if args.json:
            for record in records:
                print(json.dumps(record, ensure_ascii=False))
            return 0
        for r in records:
            src = r.get("source") or {}
            original = r.get("original") or ""
            if r.get("original_encoding") == "base64":
                original = f"<{len(original_bytes(r) or b'')} bytes, not UTF-8>"
            elif len(original) > 80:
                original = original[:77] + "..."
            print(f"{r.get('time')}  {r.get('stage'):5s}  {src.get('topic')}[{src.get('partition')}]"
                  f"@{src.get('offset')}  {r.get('reason')}\n    {original!r}")
        print(f"{len(records)} dead letter(s)")
        return 0
    from vectorstream.io.kafka import partitions_of
    from vectorstream.io.produce import produce
    target = args.to_topic or args.topic
    partitions_of(args.bootstrap_servers, target)  # a missing topic is a clear error
    messages = [(None, original_bytes(r)) for r in records if original_bytes(r) is not None]
    sent = produce(args.bootstrap_servers, target, messages) if messages else 0
    print(f"re-published {sent} original message(s) to {target}")
    return 0


def cmd_bench(args, extra) -> int:
    from vectorstream.bench import main_bench
    args.argv = [a for a in sys.argv[2:]]
    return main_bench(args)


def cmd_demo(args, extra) -> int:
    from vectorstream.demo import demo
    return demo(args)


# ---------------------------------------------------------------------------------------

def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vectorstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at INFO level.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", add_help=False,
                       help="Run the pipeline (`vectorstream run --help` lists its flags).")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("presets", help="The runner presets (`run --preset NAME`), each "
                                        "with a copy-paste command.")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("kafka", help="Start, stop or check the local Kafka broker.")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--data_dir", default="./data/kafka")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("flink", help="Start, stop or check a local Flink cluster (a job "
                                      "manager, task managers and a Python worker pool), "
                                      "or cancel running jobs.")
    p.add_argument("action", choices=("start", "stop", "status", "cancel"))
    p.add_argument("--data_dir", default="./data/flink",
                   help="Configuration, logs and checkpoints of the local cluster.")
    p.add_argument("--port", type=int, default=8081, help="REST port of the job manager.")
    p.add_argument("--taskmanagers", type=int, default=2)
    p.add_argument("--slots", type=int, default=2, help="Task slots per task manager.")
    p.add_argument("--worker_pool_port", type=int, default=50000,
                   help="Port of the Python SDK worker pool (the flink preset's "
                        "--environment_config).")
    p.add_argument("--flink_master", default=None,
                   help="cancel: the cluster's REST address (default: the local one).")
    p.add_argument("--job", default=None, help="cancel: only this job id.")
    p.add_argument("--job_name", default=None, help="cancel: only jobs of this name.")
    p.set_defaults(func=cmd_flink)

    p = sub.add_parser("produce", help="Produce synthetic events in the seed format.")
    _kafka_flags(p)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rate", type=float, default=0, help="Events per second (0: as fast as possible).")
    p.add_argument("--products", type=int, default=1000, help="Catalog size.")
    p.add_argument("--bad_fraction", type=float, default=0.0, help="Share of malformed messages.")
    p.add_argument("--partitions", type=int, default=1, help="Partitions when creating the topic.")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("search", help="Semantic search over the stored events.")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--filter", action="append", metavar="FIELD=VALUE",
                   help="Exact match on a payload field; repeatable.")
    p.add_argument("--json", action="store_true", help="Print hits with score and payload.")
    p.add_argument("--model", default=None, help="The model the collection was built with.")
    _store_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("recommend", help="Products to recommend: for a user (from their "
                                          "recent events) or like a product.")
    p.add_argument("--user", default=None, help="A user_id: products for them, weighted by "
                                                "what they did (purchase > add_to_cart > "
                                                "view), without those they already know.")
    p.add_argument("--product", default=None, help="A product id: products like it.")
    p.add_argument("--limit", type=int, default=5, help="Products to list (one hit each).")
    p.add_argument("--recent", type=int, default=50,
                   help="--user: how many of the user's most recent events count.")
    p.add_argument("--json", action="store_true", help="Print products with score as JSON.")
    _store_flags(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("stats", help="Points in the collection.")
    p.add_argument("--json", action="store_true")
    _store_flags(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("deadletters", help="Show dead letters, or replay their originals.")
    p.add_argument("action", choices=("show", "replay"))
    _kafka_flags(p)
    p.add_argument("--dead_letter_topic", default=None, help="Default: <topic>.dlq.")
    p.add_argument("--path", default=None, help="Read a --dead_letter_path JSONL file instead.")
    p.add_argument("--stage", choices=("parse", "embed", "write"), default=None)
    p.add_argument("--json", action="store_true", help="show: one JSON record a line.")
    p.add_argument("--to_topic", default=None, help="replay: where to (default --topic).")
    p.add_argument("--idle_seconds", type=float, default=3.0,
                   help="Stop reading the topic after it has been quiet this long.")
    p.set_defaults(func=cmd_deadletters)

    p = sub.add_parser("model-speed", help="Sentences/s of the embedding model alone.")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_model_speed)

    p = sub.add_parser("bench", help="Our pipeline vs stock Beam on one workload, "
                                      "side by side (JSON report, PNG chart, table).")
    from vectorstream.bench import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="Local broker + synthetic events + pipeline + report.")
    p.add_argument("--count", type=int, default=1800)
    p.add_argument("--rate", type=float, default=60.0, help="Events per second produced.")
    p.add_argument("--bad_fraction", type=float, default=0.02)
    p.add_argument("--window_seconds", type=float, default=10.0)
    p.add_argument("--bootstrap_servers", default="127.0.0.1:9092")
    p.add_argument("--products", type=int, default=500, help="Catalog size.")
    p.add_argument("--embedding_cache_size", type=int, default=50_000,
                   help="As for `run`; 0 turns the cache off.")
    p.add_argument("--keep_kafka", action="store_true",
                   help="Leave a broker the demo started running afterwards.")
    p.add_argument("--metrics_port", type=int, default=9464,
                   help="Prometheus metrics and /healthz of the run (0: any free port).")
    _store_flags(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vectorstream.io.kafka import KafkaConfigError, KafkaUnavailable
    from vectorstream.io.qdrant import StoreError
    from vectorstream.pipeline.options import UsageError
    from vectorstream.runners.flink import FlinkError
    from vectorstream.runners.maven import MavenError
    from vectorstream.transforms.embed import ModelError
    try:
        return args.func(args, extra)
    except (CliError, UsageError, KafkaUnavailable, KafkaConfigError, StoreError, MavenError,
            ModelError, FlinkError) as exc:
        print(f"vectorstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vectorstream: interrupted", file=sys.stderr)
        return 130
