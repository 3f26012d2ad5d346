"""`vectorstream produce` (synthetic events) and `vectorstream deadletters` (show what was
refused, replay the originals)."""
from __future__ import annotations

import json

from vectorstream.cli.common import CliError, kafka_flags


def cmd_produce(args, extra) -> int:
    from vectorstream.io.kafka_admin import ensure_topic
    from vectorstream.io.produce import generate, produce
    if not 0 <= args.bad_fraction <= 1:
        raise CliError("--bad_fraction must be between 0 and 1")
    ensure_topic(args.bootstrap_servers, args.topic, partitions=args.partitions)
    sent = produce(args.bootstrap_servers, args.topic,
                   generate(args.count, args.products, args.bad_fraction, args.seed),
                   rate=args.rate or None)
    print(f"produced {sent} events to {args.topic} at {args.bootstrap_servers}")
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
    from vectorstream.io.kafka_admin import partitions_of
    from vectorstream.io.produce import produce
    target = args.to_topic or args.topic
    partitions_of(args.bootstrap_servers, target)  # a missing topic is a clear error
    messages = [(None, original_bytes(r)) for r in records if original_bytes(r) is not None]
    sent = produce(args.bootstrap_servers, target, messages) if messages else 0
    print(f"re-published {sent} original message(s) to {target}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("produce", help="Produce synthetic events in the seed format.")
    kafka_flags(p)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rate", type=float, default=0, help="Events per second (0: as fast as possible).")
    p.add_argument("--products", type=int, default=1000, help="Catalog size.")
    p.add_argument("--bad_fraction", type=float, default=0.0, help="Share of malformed messages.")
    p.add_argument("--partitions", type=int, default=1, help="Partitions when creating the topic.")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("deadletters", help="Show dead letters, or replay their originals.")
    p.add_argument("action", choices=("show", "replay"))
    kafka_flags(p)
    p.add_argument("--dead_letter_topic", default=None, help="Default: <topic>.dlq.")
    p.add_argument("--path", default=None, help="Read a --dead_letter_path JSONL file instead.")
    p.add_argument("--stage", choices=("parse", "embed", "write"), default=None)
    p.add_argument("--json", action="store_true", help="show: one JSON record a line.")
    p.add_argument("--to_topic", default=None, help="replay: where to (default --topic).")
    p.add_argument("--idle_seconds", type=float, default=3.0,
                   help="Stop reading the topic after it has been quiet this long.")
    p.set_defaults(func=cmd_deadletters)
