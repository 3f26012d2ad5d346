"""The flags of `vectorstream bench` (no Beam imported: the CLI builds its parser from them)."""
from __future__ import annotations

import argparse
import os

WORKLOADS = ("unique", "catalog")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", choices=WORKLOADS, default="unique")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--model", help="local sentence-transformers model directory "
                                        "or a name: use-multilingual-v3 (the default) or minilm")
    parser.add_argument("--source", choices=("kafka", "memory"), default="kafka")
    parser.add_argument("--bootstrap_servers", default="localhost:9092")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--store", choices=("edge", "local"), default="edge",
                        help="our store: Qdrant Edge (as shipped) or qdrant-client local "
                             "mode (the stock sink's store)")
    parser.add_argument("--qdrant_url", default=os.environ.get("VECTORSTREAM_QDRANT_URL"),
                        help="a Qdrant server both pipelines write to (a fresh collection "
                             "each run; default: $VECTORSTREAM_QDRANT_URL, else the "
                             "embedded stores)")
    parser.add_argument("--qdrant_grpc_port", type=int, default=None,
                        help="the server's gRPC port (default: 6334 when --qdrant_url is on "
                             "Qdrant's default port 6333; elsewhere it must be given)")
    parser.add_argument("--baseline", choices=("stock", "plain"), default="stock",
                        help="stock: stock Beam (RunInference + Beam's Qdrant sink), pipelines "
                             "run in this bench's processes; plain: the consumer a user writes "
                             "by hand, ours and it timed as commands, start to exit (needs "
                             "--qdrant_url)")
    parser.add_argument("--products", type=int, default=10_000,
                        help="catalog: how many products the events draw from")
    parser.add_argument("--report", default="bench-report.json",
                        help="JSON report path; the PNG chart goes beside it")
    parser.add_argument("--ours_flag", action="append",
                        help="an extra `vectorstream run` flag for ours (repeatable), "
                             "e.g. --ours_flag=--embedding_cache_size=0")
    parser.add_argument("--skip_stock", action="store_true")
    parser.add_argument("--skip_ours", action="store_true")
    parser.add_argument("--plain_first", action="store_true",
                        help="With --baseline plain: run the hand-written consumer first "
                             "(ours runs first by default, right after the topic is "
                             "produced), to see what the order costs either")
    parser.add_argument("--stock_events", type=int, default=None,
                        help="Run the stock pipeline on only the first N events (it is "
                             "slow; its rate is still per event)")
    parser.add_argument("--store_alone", action="store_true",
                        help="also write the same events to the embedded store alone (no "
                             "Beam, no model) and note its memory every 10,000 points, to "
                             "tell the pipeline's own memory from the store's")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (stores, logs)")
    parser.add_argument("--chart_only", action="store_true",
                        help="only draw the chart and table of an existing --report")
