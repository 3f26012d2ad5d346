"""What the command groups share: the one-line error, the store and Kafka flags, and
opening a store for reading."""
from __future__ import annotations

import sys
from typing import List

STORE_HELP = "Embedded Qdrant Edge store directory (default ./data/qdrant)."


class CliError(Exception):
    """Stops the command with one readable line on stderr and exit code 2."""


def store_flags(parser) -> None:
    parser.add_argument("--qdrant_path", default="./data/qdrant", help=STORE_HELP)
    parser.add_argument("--qdrant_url", default=None,
                        help="Qdrant server URL, or local://DIR for qdrant-client local mode; "
                             "overrides --qdrant_path.")
    parser.add_argument("--collection", default="ecommerce_events")


def kafka_flags(parser) -> None:
    parser.add_argument("--bootstrap_servers", default="localhost:9092")
    parser.add_argument("--topic", default="ecommerce-events")


def open_for_reading(args):
    """The store the flags name, for reading: an embedded store a running pipeline holds
    is read from a copy taken now (said on stderr by `note_copy`)."""
    from vectorstream.io.qdrant import open_store
    return open_store(url=args.qdrant_url, path=None if args.qdrant_url else args.qdrant_path,
                      read_only=True)


def note_copy(store) -> None:
    if getattr(store, "copied_from", None):
        print(f"note: {store.copied_from} is held by a running pipeline; this read a copy "
              f"taken just now", file=sys.stderr)


def parse_filters(items: List[str]) -> dict:
    match = {}
    for item in items or []:
        if "=" not in item:
            raise CliError(f"--filter {item!r} must look like field=value "
                           f"(e.g. event_type=purchase or product.category=kitap)")
        key, value = item.split("=", 1)
        match[key] = value
    return match
