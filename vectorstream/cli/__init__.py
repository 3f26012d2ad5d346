"""The `vectorstream` command: run, presets, kafka, flink, produce, deadletters, search,
recommend, stats, forget, expire, reindex, serve, model-speed, bench, demo.

One module per command group, each thin over library functions: `run` (the pipeline and
its plan), `services` (the local Kafka broker and Flink cluster), `data` (synthetic events,
dead letters), `query` (search, recommend, stats), `lifecycle` (forget, expire, reindex),
`tools` (model speed, bench, demo, serve).
Every expected failure is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from vectorstream.cli import data, lifecycle, query, run, services, tools
from vectorstream.cli.common import CliError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vectorstream", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at INFO level.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (run, services, data, query, lifecycle, tools):
        group.register(sub)
    return parser


def entry() -> None:
    """The `vectorstream` command (its console script and `python -m vectorstream`)."""
    run.exit_process(main())


def main(argv: Optional[List[str]] = None) -> int:
    from vectorstream import telemetry
    telemetry.mark("vectorstream imported")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return args.func(args, extra)
    except KeyboardInterrupt:
        print("vectorstream: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # pylint: disable=broad-except
        if not _expected(exc):
            raise
        print(f"vectorstream: error: {exc}", file=sys.stderr)
        return 2


def _expected(exc: BaseException) -> bool:
    """The errors that are the user's to fix, each with a message saying how; anything
    else is a bug and keeps its traceback."""
    from vectorstream.config.errors import UsageError
    from vectorstream.config.secrets import KafkaConfigError
    from vectorstream.io.kafka_admin import KafkaUnavailable
    from vectorstream.io.maven import MavenError
    from vectorstream.io.store import StoreError
    from vectorstream.runners.flink import FlinkError
    from vectorstream.lifecycle import LifecycleError
    from vectorstream.transforms.model import ModelError
    return isinstance(exc, (CliError, UsageError, KafkaUnavailable, KafkaConfigError,
                            StoreError, MavenError, ModelError, FlinkError, LifecycleError))
