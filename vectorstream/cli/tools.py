"""`vectorstream model-speed`, `bench`, `demo` and `serve`."""
from __future__ import annotations

import sys

from vectorstream.cli.common import store_flags


def cmd_model_speed(args, extra) -> int:
    """Sentences/s of the model alone (encode), on the demo's product texts."""
    from vectorstream.io.produce import catalog
    from vectorstream.transforms.model import choose_model, encode_rate, resolve_device
    device = resolve_device(args.device)
    texts = [f"{p['name']}. {p['description']}" for p in catalog(args.count)]
    rate = encode_rate(choose_model(args.model).path, device, texts, args.batch_size)
    print(f"{rate:.0f} sentences/s ({len(texts)} texts, batch {args.batch_size}, {device})")
    return 0


def cmd_bench(args, extra) -> int:
    from vectorstream.bench.main import main_bench
    args.argv = [a for a in sys.argv[2:]]
    return main_bench(args)


def cmd_serve(args, extra) -> int:
    from vectorstream.cli.common import open_for_reading
    from vectorstream.serve import serve
    return serve(args, lambda: open_for_reading(args))


def cmd_demo(args, extra) -> int:
    from vectorstream.demo import demo
    return demo(args)


def register(sub) -> None:
    p = sub.add_parser("model-speed", help="Sentences/s of the embedding model alone.")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_model_speed)

    p = sub.add_parser("bench", help="Our pipeline vs stock Beam on one workload, "
                                      "side by side (JSON report, PNG chart, table).")
    from vectorstream.bench.options import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="Search and recommendations over HTTP (a JSON API; "
                                      "OpenAPI page at /docs).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=None, help="The model the collections were built with.")
    p.add_argument("--refresh_seconds", type=float, default=5.0,
                   help="An embedded store a pipeline holds is read from a copy, taken again "
                        "this often.")
    p.add_argument("--max_query_chars", type=int, default=500,
                   help="Longer query texts are refused (422), not embedded.")
    store_flags(p)
    p.add_argument("--products_collection", default=None,
                   help="Default: <collection>_products.")
    p.add_argument("--users_collection", default=None, help="Default: <collection>_users.")
    p.set_defaults(func=cmd_serve)

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
    store_flags(p)
    p.set_defaults(func=cmd_demo)
