"""The run plan: what a run is made of, decided once from its flags.

`resolve(argv)` expands a `--preset`, parses the flags and answers every question about the
run's shape in one place: the runner, bounded or streaming, which Kafka reader and where
its Java side runs, where the Python code runs (this process, a worker pool started for
the run, an external pool, the runner's own workers), the store and how it is written,
the Flink settings a run gets unless told otherwise, and what must be built or fetched
before it starts. Combinations that cannot work are refused here, each in one line that
says what to do. The answer is a frozen `RunPlan`; the graph, the launcher, the commands
and the bench read it and ask nothing again. `RunPlan.explain()` prints it with the reason
for each choice (`vectorstream run --explain`).

The decisions are also written into the options Beam reads (streaming, the Flink
defaults, the job name, the environment), once, here.
"""
from __future__ import annotations

import re
import time
import types
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from apache_beam.options.pipeline_options import (DirectOptions, FlinkRunnerOptions,
                                                  GoogleCloudOptions,
                                                  PipelineOptions, PortableOptions,
                                                  PrismRunnerOptions, StandardOptions)

from vectorstream.config.options import (FlinkClusterOptions, UsageError, VectorStreamOptions,
                                         parse_options)
from vectorstream.config.presets import PRESETS, apply_preset

# Runners whose workers have a JVM: there Beam's Java KafkaIO is the default reader.
JVM_RUNNERS = ("FlinkRunner", "DataflowRunner", "SparkRunner", "SamzaRunner")

# What a run may need built or fetched before it starts (pipeline.launch.prepare does it).
FETCH_WHAT = {
    "flink_job_server_jar": "Beam's Flink 1.19 job server jar, assembled with Maven (once)",
    "prism_binary": "Beam's Prism runner, built with Go from the Go module proxy (once)",
    "kafka_expansion_service_jar": "Beam's KafkaIO expansion service jar, assembled with "
                                   "Maven (once)",
}


@dataclass(frozen=True)
class StorePlan:
    """Where the points go and how they are written."""
    kind: str  # "edge" (embedded Qdrant Edge), "local" (qdrant-client local mode), "server"
    url: Optional[str]
    path: Optional[str]
    collection: str
    grpc: bool
    grpc_port: Optional[int]  # a server's, over gRPC
    in_flight: int
    defer_indexing: bool = False  # a server's indexing off until the bounded run ends

    @property
    def is_server(self) -> bool:
        return self.kind == "server"

    def describe(self) -> str:
        if self.kind == "server":
            how = f"gRPC on port {self.grpc_port}" if self.grpc else "REST"
            return (f"Qdrant server {self.url}, collection {self.collection} ({how}, "
                    f"{self.in_flight} writes in flight"
                    + ("; indexed once the run ends" if self.defer_indexing else "") + ")")
        if self.kind == "local":
            return f"qdrant-client local mode at {self.url[8:]}, collection {self.collection}"
        return f"embedded Qdrant Edge store at {self.path}, collection {self.collection}"


@dataclass(frozen=True)
class RunPlan:
    """A run, resolved. `options` are the pipeline options Beam runs with (already holding
    the decisions below); everything else is read-only."""
    options: PipelineOptions = field(repr=False, compare=False)
    runner: str
    bounded: bool
    reader: str  # "python" (ours) | "java" (Beam's KafkaIO)
    # How a bounded run with the Java reader ends: "launcher" (the job streams; the
    # launcher ends it once the group's committed offsets reach the bound), "kafkaio"
    # (KafkaIO's own record bound), None (the Python reader, or a streaming run).
    java_bound: Optional[str]
    java_environment: Optional[str]  # where KafkaIO's Java SDK harness runs
    legacy_read: bool  # KafkaIO as a primitive unbounded Read (Flink)
    python_workers: str  # where the pipeline's Python code runs, in words
    workers_elsewhere: bool  # in processes other than this one
    start_worker_pool: bool  # a Python worker pool started for this run
    keep_expansion_service: bool  # Prism runs KafkaIO in the expansion service's JVM
    flink_master: Optional[str]
    store: StorePlan
    products: Optional[str]  # the products collection (None: not kept)
    users: Optional[str]  # the users collection (None: no profiles)
    # How products and profiles are written: "window" (a combine per key and window, one
    # element per key) or "bundle" (the streaming DirectRunner, where windows never close
    # on an unbounded read: with the bundle that stored the events, see pipeline.entities)
    entity_writes: str
    fetch: Tuple[str, ...]  # keys of FETCH_WHAT, in order
    why: Mapping[str, str] = field(repr=False, compare=False)

    @property
    def vs(self) -> VectorStreamOptions:
        return self.options.view_as(VectorStreamOptions)

    @property
    def flink_cluster(self) -> Optional[str]:
        """The REST address of a separate Flink cluster (None: no Flink, or the job
        server's embedded mini-cluster)."""
        if self.runner != "FlinkRunner" or not self.flink_master:
            return None
        return None if self.flink_master.startswith("[") else self.flink_master

    def explain(self) -> str:
        vs, flink = self.vs, self.options.view_as(FlinkClusterOptions)
        rows: List[Tuple[str, str, str]] = [
            ("runner", self.runner + (f" at {self.flink_master}" if self.flink_master else ""),
             self.why["runner"]),
            ("mode", "bounded" if self.bounded else "streaming", self.why["mode"]),
            ("reader", {"python": "python (ours, confluent-kafka)",
                        "java": "java (Beam's KafkaIO)"}[self.reader], self.why["reader"]),
        ]
        if self.reader == "java":
            rows.append(("java environment", self.java_environment or "Beam's default",
                         self.why["java_environment"]))
        rows += [("python workers", self.python_workers, self.why["python_workers"]),
                 ("store", self.store.describe(), self.why["store"]),
                 ("products, users", f"{self.products or 'not kept'}, "
                                     f"{self.users or 'no profiles'}"
                                     + (f"; catalog topic {vs.catalog_topic}"
                                        if vs.catalog_topic else ""),
                  "--products, --profiles (on by default), --catalog_topic"),
                 ("entity writes", {"window": "once per key and window (a combine)",
                                    "bundle": "with the bundle that stored the events"}[
                                        self.entity_writes],
                  "the streaming DirectRunner never closes a window on an unbounded read"
                  if self.entity_writes == "bundle" else "the runner closes windows")]
        if self.runner == "FlinkRunner":
            portable = self.options.view_as(PortableOptions)
            parallelism = self.options.view_as(FlinkRunnerOptions).parallelism
            rows.append(("flink", f"parallelism {parallelism}, checkpoints every "
                                  f"{flink.checkpointing_interval or '-'} ms, finish bundle "
                                  f"before checkpointing {flink.finish_bundle_before_checkpointing}"
                                  + (f", sources shut down after "
                                     f"{flink.shutdown_sources_after_idle_ms} ms idle"
                                     if flink.shutdown_sources_after_idle_ms is not None else "")
                                  + f", SDK workers per task manager "
                                    f"{portable.sdk_worker_parallelism or 1}",
                         self.why["flink"]))
        rows.append(("kafka", f"{vs.topic} at {vs.bootstrap()}, group {vs.consumer_group}, "
                              f"from {vs.start_from} where the group has no offset",
                     "--topic, --bootstrap_servers, --consumer_group, --start_from"))
        rows.append(("dead letters", vs.dead_letter_path or vs.dead_letter_topic_name(),
                     "--dead_letter_path" if vs.dead_letter_path else
                     "--dead_letter_topic (default <topic>.dlq)"))
        rows.append(("first", "; ".join(FETCH_WHAT[f] for f in self.fetch) or "nothing to fetch",
                     "what this runner and reader need before the run starts"))
        width = max(len(r[0]) for r in rows)
        lines = ["The run plan (vectorstream run --explain): each choice, and why"]
        for name, value, why in rows:
            lines.append(f"  {name:<{width}}  {value}")
            lines.append(f"  {'':<{width}}    why: {why}")
        return "\n".join(lines)


def _origin(flag: str, given: Sequence[str], preset: Optional[str]) -> str:
    """Where a flag's value came from: the command line, the preset, or the default."""
    if flag in given:
        return f"{flag} given"
    if preset and any(f.split("=", 1)[0] == flag for f in PRESETS[preset].flags):
        return f"{flag} from --preset {preset}"
    return f"{flag} not given: the default"


def _preset_name(argv: Sequence[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
    return None


def resolve(argv: Optional[Sequence[str]] = None) -> RunPlan:
    """The plan of `vectorstream run ARGV`: preset expanded, flags parsed, every choice
    made and checked. Raises UsageError (one line) for what cannot work."""
    argv = list(argv or [])
    preset = _preset_name(argv)
    options = parse_options(apply_preset(argv))
    given = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
    return from_options(options, given=given, preset=preset)


def runner_of(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return "DirectRunner"
    return runner if isinstance(runner, str) else type(runner).__name__


def from_options(options: PipelineOptions, given: Sequence[str] = (),
                 preset: Optional[str] = None) -> RunPlan:
    """The plan of parsed options (tests and the bench build pipelines from options)."""
    vs = options.view_as(VectorStreamOptions)
    portable = options.view_as(PortableOptions)
    flink = options.view_as(FlinkClusterOptions)
    why: Dict[str, str] = {}

    def origin(flag):
        return _origin(flag, given, preset)

    runner = runner_of(options)
    why["runner"] = origin("--runner")
    is_flink = runner == "FlinkRunner"
    flink_master = options.view_as(FlinkRunnerOptions).flink_master if is_flink else None

    bounded = (vs.max_num_records is not None or vs.max_read_time is not None
               or vs.ending_offsets is not None)
    why["mode"] = ("--max_num_records, --max_read_time or --ending_offsets given: the run "
                   "ends by itself" if bounded else
                   "no --max_num_records, --max_read_time or --ending_offsets: the run "
                   "streams until cancelled (Ctrl-C)")

    # The reader: ours, or Beam's KafkaIO where the workers have a JVM.
    if vs.kafka_reader != "auto":
        reader = vs.kafka_reader
        why["reader"] = origin("--kafka_reader")
    else:
        jvm = any(runner.endswith(r) or runner == r[:-6] for r in JVM_RUNNERS)
        reader = "java" if jvm else "python"
        why["reader"] = (f"--kafka_reader auto: {runner} "
                         + ("has JVM workers, where KafkaIO runs" if jvm else
                            "has no JVM workers: our Python reader"))
    java_environment = vs.java_environment or ("EMBEDDED" if is_flink else None)
    why["java_environment"] = (origin("--java_environment") if vs.java_environment else
                               "default on Flink: KafkaIO inside the task managers, whose job "
                               "jar carries it" if is_flink else
                               "Beam's default (Prism: the expansion service's own worker; "
                               "Dataflow: its Java container)")
    if runner == "PrismRunner" and reader == "java" and not bounded:
        raise UsageError(
            "--kafka_reader java on Prism reads bounded runs only: KafkaIO commits its "
            "offsets in a step Prism cannot run (it lacks beam:requirement:pardo:"
            "stable_input:v1); stream with --kafka_reader python, or on Flink")
    if reader == "java" and runner in ("DirectRunner", "BundleBasedDirectRunner",
                                       "SwitchingDirectRunner"):
        raise UsageError("--kafka_reader java runs Beam's Java KafkaIO, which the DirectRunner "
                         "cannot run: use --kafka_reader python, or --preset prism (bounded "
                         "runs) or flink-local")
    java_bound = None
    if reader == "java" and bounded:
        if is_flink:
            # KafkaIO's own bound (BoundedReadFromUnboundedSource) splits the record count
            # evenly over its readers, so a reader whose partitions hold fewer waits for
            # ever, and it commits offsets before the records are stored. The job streams
            # instead (offsets committed with each checkpoint, after the sink wrote) and
            # the launcher ends it once the committed offsets reach the bound.
            java_bound = "launcher"
            why["mode"] += ("; on Flink the Java reader's job streams, and the launcher "
                            "cancels it once the group's committed offsets reach the bound")
        else:
            java_bound = "kafkaio"
            why["mode"] += "; KafkaIO's own record bound (checked at launch to be reachable)"
    streaming = not bounded or java_bound == "launcher"
    if streaming:
        options.view_as(StandardOptions).streaming = True

    if runner in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"):
        workers = options.view_as(DirectOptions).direct_num_workers
        if workers != 1:
            # Beam's ParallelBundleManager merges the workers' answers without their
            # residual roots: a splittable read's checkpoint (our reader's, every bundle)
            # is dropped, and the read ends after its first bundle as if done
            # (docs/performance.md, "The DirectRunner's workers").
            raise UsageError(
                f"--direct_num_workers {workers} loses events: with more than one worker "
                f"Beam's DirectRunner drops the Kafka reader's checkpoints after its first "
                f"bundle and the run ends as if done; leave it at 1, or scale out on Flink "
                f"(--preset flink-local --sdk_worker_parallelism N)")

    # Flink's settings, unless the flags say otherwise.
    why["flink"] = "the flags, and two defaults on Flink: "
    if is_flink:
        if bounded and java_bound is None and flink.shutdown_sources_after_idle_ms is None:
            # Flink runs a pipeline with an unbounded read (our reader) in streaming mode,
            # whose sources never end while checkpointing is on: let them end once idle,
            # so a bounded run finishes.
            flink.shutdown_sources_after_idle_ms = 1000
        if flink.finish_bundle_before_checkpointing is None:
            # Without it, a checkpoint taken during the split stage's one bundle (the
            # Impulse's single element, just after start) keeps that bundle's output, the
            # partitions to read, in the checkpoint until the stage's next element, which
            # never comes: the job runs, checkpoints, and reads nothing.
            flink.finish_bundle_before_checkpointing = True
    why["flink"] += ("a bounded run's sources shut down once idle, so it ends; the bundle "
                     "in flight finishes before a checkpoint (docs/runners.md)")

    # Where the Python code runs.
    environment = (portable.environment_type or "").upper()
    if environment == "LOOPBACK":
        portable.environment_config = None  # LOOPBACK takes none: a preset's does not apply
    start_worker_pool = (is_flink and not environment
                         and int(portable.sdk_worker_parallelism or 1) > 1)
    if start_worker_pool:
        # Several Python workers: a worker pool on this machine for this run, one process
        # per worker, in place of LOOPBACK's one (this) process. Its address is set when
        # it starts (pipeline.launch).
        portable.environment_type = environment = "EXTERNAL"
    workers_elsewhere = (environment in ("EXTERNAL", "PROCESS", "DOCKER")
                         or runner == "DataflowRunner")
    if start_worker_pool:
        python_workers = (f"a worker pool started for this run, one process per SDK worker "
                          f"({portable.sdk_worker_parallelism} per task manager)")
        why["python_workers"] = "--sdk_worker_parallelism above 1 on Flink"
    elif environment == "EXTERNAL":
        python_workers = f"the worker pool at {portable.environment_config}"
        why["python_workers"] = origin("--environment_type")
    elif environment in ("PROCESS", "DOCKER"):
        python_workers = f"{environment} workers the runner starts"
        why["python_workers"] = origin("--environment_type")
    elif runner == "DataflowRunner":
        python_workers = "Dataflow's workers"
        why["python_workers"] = "the runner"
    else:
        python_workers = "this process"
        why["python_workers"] = ("the DirectRunner runs in this process" if runner ==
                                 "DirectRunner" else "LOOPBACK: the runner calls back into "
                                                     "this process")

    store = _store_plan(vs, why, bounded)
    if vs.catalog_topic and not vs.products:
        raise UsageError("--catalog_topic feeds the products collection: leave --products on")
    if vs.catalog_topic and vs.catalog_topic in (vs.topic, vs.dead_letter_topic_name()):
        raise UsageError("--catalog_topic must differ from --topic and the dead-letter topic")
    if workers_elsewhere and not store.is_server:
        raise UsageError(
            f"--environment_type {portable.environment_type or 'of this runner'} runs the "
            f"pipeline's Python code in worker processes of their own "
            f"(--sdk_worker_parallelism {portable.sdk_worker_parallelism} per task manager), "
            f"and an embedded store ({'--qdrant_url ' + store.url if store.url else '--qdrant_path'}) "
            f"takes one writer process: give --qdrant_url http://HOST:6333 (a Qdrant server), "
            f"or run the Python code in this process with --environment_type LOOPBACK")

    fetch = []
    if is_flink and not options.view_as(FlinkRunnerOptions).flink_job_server_jar:
        fetch.append("flink_job_server_jar")
    if runner == "PrismRunner" and not options.view_as(PrismRunnerOptions).prism_location:
        fetch.append("prism_binary")
    if reader == "java":
        fetch.append("kafka_expansion_service_jar")

    cloud = options.view_as(GoogleCloudOptions)
    if not cloud.job_name:
        cloud.job_name = default_job_name(vs.topic)
    return RunPlan(
        options=options, runner=runner, bounded=bounded, reader=reader, java_bound=java_bound,
        java_environment=java_environment, legacy_read=is_flink,
        python_workers=python_workers, workers_elsewhere=workers_elsewhere,
        start_worker_pool=start_worker_pool,
        keep_expansion_service=runner == "PrismRunner" and reader == "java",
        flink_master=flink_master, store=store,
        products=(vs.products_collection or f"{vs.collection}_products") if vs.products
        else None,
        users=(vs.users_collection or f"{vs.collection}_users") if vs.profiles else None,
        entity_writes="bundle" if runner == "DirectRunner" and streaming else "window",
        fetch=tuple(fetch),
        why=types.MappingProxyType(why))


def _store_plan(vs: VectorStreamOptions, why: Dict[str, str], bounded: bool) -> StorePlan:
    url = vs.qdrant_url
    kind = ("local" if url and url.startswith("local://") else "server") if url else "edge"
    if vs.write_in_flight and vs.write_in_flight > 1 and kind != "server":
        raise UsageError(f"--write_in_flight {vs.write_in_flight} writes batches at once, "
                         f"which only a Qdrant server takes: give --qdrant_url http://HOST:6333,"
                         f" or leave --write_in_flight out for an embedded store")
    in_flight = vs.write_in_flight or (4 if kind == "server" else 1)
    grpc_port = None
    if kind == "server" and vs.qdrant_grpc:
        from vectorstream.io.server import grpc_port_for
        from vectorstream.io.store import StoreError
        try:
            grpc_port = grpc_port_for(url, vs.qdrant_grpc_port)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
    defer = kind == "server" and bounded and bool(vs.defer_indexing)
    why["store"] = ("--qdrant_url given" if url else
                    "no --qdrant_url: the embedded store at --qdrant_path") + (
        "; writes in flight: --write_in_flight" if vs.write_in_flight else
        "; writes in flight: 4 to a server, 1 to an embedded store (the default)") + (
        "; indexed at the end: a bounded run into a server (--defer_indexing)" if defer else "")
    return StorePlan(kind=kind, url=url, path=None if url else vs.qdrant_path,
                     collection=vs.collection, grpc=bool(vs.qdrant_grpc),
                     grpc_port=grpc_port, in_flight=in_flight, defer_indexing=defer)


def default_job_name(topic: str) -> str:
    """`vectorstream-<topic>-<UTC time>`: what Flink's UI and `flink cancel --job_name`
    show (lower case, digits and dashes, as Dataflow requires)."""
    slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")[:40] or "events"
    return f"vectorstream-{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
