"""What the command groups share: the one-line error, the store and Kafka flags, and
opening a store for reading."""
from __future__ import annotations

import contextlib
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
    parser.add_argument("--qdrant_grpc", choices=("on", "off"), default="on",
                        help="With --qdrant_url: gRPC (on) or REST only (off).")
    parser.add_argument("--qdrant_grpc_port", type=int, default=None, metavar="PORT",
                        help="The server's gRPC port; default 6334 only when --qdrant_url "
                             "is on port 6333 (elsewhere it must be given).")


def kafka_flags(parser) -> None:
    parser.add_argument("--bootstrap_servers", default="localhost:9092")
    parser.add_argument("--topic", default="ecommerce-events")


def open_for_reading(args, query_only: bool = False):
    """The store the flags name, for reading: an embedded store a running pipeline holds
    is read from a copy taken now (said on stderr by `note_copy`). `query_only` (search): a
    server is read over REST without qdrant-client (`io.rest`)."""
    from vectorstream.io.qdrant import open_store, qdrant_api_key
    if query_only and args.qdrant_url and args.qdrant_url.startswith(("http://", "https://")):
        from vectorstream.io.rest import RestClient
        from vectorstream.io.server import grpc_port_for
        if args.qdrant_grpc == "on":  # the flags mean what they mean for every command
            grpc_port_for(args.qdrant_url, args.qdrant_grpc_port)
        return RestClient(args.qdrant_url, api_key=qdrant_api_key())
    return open_store(url=args.qdrant_url, path=None if args.qdrant_url else args.qdrant_path,
                      read_only=True, grpc=args.qdrant_grpc == "on",
                      grpc_port=args.qdrant_grpc_port)


@contextlib.contextmanager
def reading(args, query_only: bool = False):
    """The store the flags name, open for reading while the block runs: a server that does
    not answer is one line saying what to check, and an embedded store a pipeline holds is
    read from a copy (said on stderr)."""
    from vectorstream.io.store import is_transient
    store = open_for_reading(args, query_only)
    try:
        yield store
        note_copy(store)
    except Exception as exc:  # pylint: disable=broad-except
        refused = _refused(exc)
        if refused:
            raise CliError(f"{store.description} refused the request ({refused}): check "
                           f"QDRANT_API_KEY") from None
        if not is_transient(exc):
            raise
        raise CliError(f"{store.description} does not answer ({_first_line(exc)}): start it, "
                       f"or check --qdrant_url, --qdrant_grpc_port and QDRANT_API_KEY") from None
    finally:
        store.close()


def _refused(exc: BaseException):
    """How a server said no to the credentials (HTTP 401 or 403, gRPC UNAUTHENTICATED or
    PERMISSION_DENIED), or None."""
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return f"HTTP {status}"
    from vectorstream.io.store import grpc_code
    name = grpc_code(exc)
    return f"gRPC {name}" if name in ("UNAUTHENTICATED", "PERMISSION_DENIED") else None


def _first_line(exc: BaseException) -> str:
    details = getattr(exc, "details", None)  # a gRPC error's own words, not its repr
    try:
        text = str(details() if callable(details) else exc).strip().splitlines()
    except Exception:  # pylint: disable=broad-except
        text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


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
