"""`vectorstream forget`, `expire` and `reindex`: the data lifecycle."""
from __future__ import annotations

import json
import sys

from vectorstream.cli.common import CliError, store_flags


def _open_write(args):
    from vectorstream.io.qdrant import open_store
    return open_store(url=args.qdrant_url, path=None if args.qdrant_url else args.qdrant_path,
                      grpc=args.qdrant_grpc == "on", grpc_port=args.qdrant_grpc_port)


def _open_read(args):
    from vectorstream.cli.common import open_for_reading
    return open_for_reading(args)


class _Borrowed:
    """A store lent for reading that its owner closes (qdrant-client's local mode takes one
    client a process: the reindex reads through the one it writes with)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def close(self):
        pass


def _names(args):
    return (args.collection, f"{args.collection}_products", f"{args.collection}_users")


def _dead_letter_note(args) -> str:
    """What cannot be deleted: the user's dead letters on the dead-letter topic."""
    topic = args.dead_letter_topic or f"{args.topic}.dlq"
    try:
        from confluent_kafka.admin import AdminClient, ConfigResource
        admin = AdminClient({"bootstrap.servers": args.bootstrap_servers, "log_level": 0})
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        retention = int(configs["retention.ms"].value)
        kept = ("for ever (retention.ms -1)" if retention < 0 else
                f"for {retention / 86_400_000:g} days (retention.ms {retention})")
    except Exception as exc:  # pylint: disable=broad-except
        if "UNKNOWN_TOPIC" in str(exc):
            return (f"note: there is no dead-letter topic {topic} on {args.bootstrap_servers}, "
                    f"so no dead letters of this user there (a run with --dead_letter_path "
                    f"keeps them in that file: delete their lines there)")
        kept = f"for its retention, which could not be read ({str(exc)[:100]})"
    return (f"note: dead letters on Kafka topic {topic} may hold this user's malformed "
            f"messages; a Kafka topic cannot be edited, so they stay until the topic drops "
            f"them: it keeps records {kept}")


def cmd_forget(args, extra) -> int:
    from vectorstream.lifecycle import forget_user
    events, products, users = _names(args)
    store = _open_write(args)
    try:
        done = forget_user(store, events, products, users, args.user)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"user_id": args.user, "deleted": done}))
    elif not done["events"] and not done["profiles"]:
        print(f"nothing of user {args.user!r} is stored in {events} or {users}: nothing "
              f"deleted")
    else:
        print(f"forgot user {args.user!r}: {done['events']} event points and "
              f"{done['profiles']} profile(s) deleted; {done['products_recounted']} products "
              f"counted again without their events")
    print(_dead_letter_note(args), file=sys.stderr)
    return 0


def cmd_expire(args, extra) -> int:
    from vectorstream.lifecycle import LifecycleError, expire, parse_duration
    try:
        seconds = parse_duration(args.older_than)
    except LifecycleError as exc:
        raise CliError(str(exc)) from None
    store = _open_write(args)
    try:
        done = expire(store, args.collection, seconds)
    finally:
        store.close()
    if args.json:
        print(json.dumps(done))
    else:
        print(f"expired {done['deleted']} event points older than {args.older_than} (event "
              f"time before {done['cutoff']}) in {args.collection}; products and profiles "
              f"are kept")
    return 0


def cmd_reindex(args, extra) -> int:
    from vectorstream.lifecycle import LifecycleError, catch_up, reindex, rollback
    try:
        if args.rollback:
            store = _open_write(args)
            try:
                moved = rollback(store, args.collection)
            finally:
                store.close()
            print("rolled back: " + ", ".join(f"{k} -> {v}" for k, v in moved.items()))
            return 0
        if not args.model:
            raise CliError("reindex needs --model NEW_MODEL (a model directory, "
                           "use-multilingual-v3 or minilm), or --rollback")
        if args.since:
            import datetime as dt
            try:
                dt.datetime.fromisoformat(args.since)
            except ValueError:
                raise CliError(f"--since {args.since!r} is not a time: give the stamp the "
                               f"reindex printed, such as 2026-12-04T23:30:00.123Z") from None
        from vectorstream.transforms.model import choose_model, load_model, resolve_device
        model = choose_model(args.model)
        encoder = load_model(model.path, resolve_device(args.device))

        from vectorstream.transforms.embed import CachedEncoder
        # the pipeline's LRU cache of vectors: a shop's events repeat their products' texts
        encode = CachedEncoder(encoder, 50_000).encode
        from_kafka = _from_kafka(args, model) if args.from_kafka else None
        open_read, open_write = (lambda: _open_read(args)), (lambda: _open_write(args))
        if args.qdrant_url and args.qdrant_url.startswith("local://"):
            shared = _open_write(args)
            open_read, open_write = (lambda: _Borrowed(shared)), (lambda: shared)
        if args.since:
            done = catch_up(open_read, open_write, args.collection, model, encode, args.since)
        else:
            done = reindex(open_read, open_write, args.collection, model, encode,
                           from_kafka=from_kafka,
                           report=lambda line: print(line, file=sys.stderr))
    except LifecycleError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(done))
    elif args.since:
        print(f"caught up {done['alias']}: {done['copied']} events stored in {done['from']} "
              f"after {args.since} copied into {done['to']} in {done['seconds']} s; points: "
              f"old {done['counts']['old']}, new {done['counts']['new']}")
    else:
        print(f"reindexed {done['alias']}: {done['from']} -> {done['to']} ({model.name}), "
              f"{done['copied']} events in {done['seconds']} s; points: old "
              f"{done['counts']['old']}, new {done['counts']['new']}; moved: "
              + ", ".join(f"{k} -> {v}" for k, v in done["moved"].items())
              + "; back with `vectorstream reindex --rollback`")
        print(f"a pipeline still on the old model goes on writing {done['from']}: once it is "
              f"stopped, `vectorstream reindex --model {args.model} --since {done['through']}` "
              f"copies what it stored after this, then start the pipeline with --model "
              f"{args.model}")
    return 0


def _from_kafka(args, model):
    """Rebuilds the new version by a bounded run over the topic from its earliest
    offsets, with the new model (a consumer group of its own)."""
    import time

    def build(_target):
        from vectorstream.pipeline.launch import run
        store = (["--qdrant_url", args.qdrant_url] if args.qdrant_url
                 else ["--qdrant_path", args.qdrant_path])
        run(["--bootstrap_servers", args.bootstrap_servers, "--topic", args.topic,
             "--consumer_group", f"reindex-{int(time.time())}", "--start_from", "earliest",
             "--ending_offsets", "latest", "--model", model.path, "--collection",
             args.collection, "--progress_seconds", "0", *store])
    return build


def register(sub) -> None:
    p = sub.add_parser("forget", help="Delete every point of a user (right to erasure).")
    p.add_argument("--user", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--bootstrap_servers", default="localhost:9092",
                   help="To say how long the dead-letter topic keeps records.")
    p.add_argument("--topic", default="ecommerce-events")
    p.add_argument("--dead_letter_topic", default=None)
    store_flags(p)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("expire", help="Delete the event points older than a duration.")
    p.add_argument("--older_than", required=True, help="e.g. 30d, 12h, 90m, 45s, 2w")
    p.add_argument("--json", action="store_true")
    store_flags(p)
    p.set_defaults(func=cmd_expire)

    p = sub.add_parser("reindex", help="Build the collections for another model beside the "
                                        "live ones, then move the aliases (or --rollback).")
    p.add_argument("--model", default=None, help="The new model: a directory, "
                                                 "use-multilingual-v3 or minilm.")
    p.add_argument("--rollback", action="store_true",
                   help="Move the aliases back to the previous version.")
    p.add_argument("--from_kafka", action="store_true",
                   help="Rebuild from the topic's earliest offsets instead of the stored "
                        "payloads.")
    p.add_argument("--since", default=None, metavar="STAMP",
                   help="After a reindex, with the old pipeline stopped: copy what it stored "
                        "from STAMP on (the reindex prints it) into the new version.")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--bootstrap_servers", default="localhost:9092")
    p.add_argument("--topic", default="ecommerce-events")
    store_flags(p)
    p.set_defaults(func=cmd_reindex)
