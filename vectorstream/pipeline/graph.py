"""The pipeline graph and its entry point.

Kafka (batches of messages, one window each) → fixed event-time windows → ParseEvents
(dead letters) → RunInference → points → WriteToQdrant. `build` adds it to a pipeline
(tests pass a TestPipeline); `run` parses flags, checks the services and the model once
with readable messages, and runs it.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from vectorstream.io.kafka import KafkaSource, ReadEvents, WriteToKafkaTopic, ensure_topic
from vectorstream.io.deadletters import AppendJsonLines
from vectorstream.io.qdrant import Store, open_store
from vectorstream.io.sink import WriteToQdrantFn
from vectorstream.pipeline import metrics
from vectorstream.pipeline.options import UsageError, VectorStreamOptions, parse_options
from vectorstream.transforms.embed import (SentenceEmbeddingHandler, check_model_path,
                                           default_model_path, model_dimension)
from vectorstream.transforms.parse import (DEAD_LETTERS, ParseEvents, encode_dead_letter,
                                           event_dead_letter)

_LOG = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


@dataclass
class ModelChoice:
    path: str
    name: str
    dim: int


def choose_model(model: Optional[str]) -> ModelChoice:
    if model:
        check_model_path(model)
        return ModelChoice(model, os.path.basename(os.path.normpath(model)),
                           model_dimension(model))
    path = default_model_path()
    return ModelChoice(path, DEFAULT_MODEL_NAME, model_dimension(path))


def embed_dead_letters(batch, error):
    """RunInference's failed call → one dead letter per event in it (stage "embed")."""
    reason = f"embedding failed: {error!r}" if not isinstance(error, str) else error
    for events, _texts in batch:
        metrics.dead_letter("embed", len(events))
        for event in events:
            yield event_dead_letter("embed", reason, event.payload, event.raw)


class PairVectors(beam.DoFn):
    """(events, RunInference result) → (events, vectors) for the sink; an event whose text
    the model failed on is a dead letter (stage "embed")."""

    def __init__(self):
        self.embedded = Metrics.counter("vectorstream", "events_embedded")

    def process(self, element):
        events, result = element
        kept, vectors = [], []
        for event, vector in zip(events, result.inference):
            if isinstance(vector, str):
                metrics.dead_letter("embed")
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, event_dead_letter(
                    "embed", vector, event.payload, event.raw))
            else:
                kept.append(event)
                vectors.append(vector)
        if kept:
            self.embedded.inc(len(kept))
            yield kept, vectors


class EventsToQdrant(beam.PTransform):
    """Batches of KafkaMessage (lists, one window each, as ReadEvents gives them) →
    validated, windowed, embedded and written to Qdrant.

    The hot path carries batches, not single events: each batch is windowed, parsed,
    embedded and written as one element. Returns a dict of PCollections: `events`
    (batches of valid events, in their windows) and `dead_letters` (a record for every
    message that is not a valid, stored event).
    """

    def __init__(self, options: PipelineOptions, model: ModelChoice,
                 opener: Callable[..., Store] = open_store, handler_class=None):
        super().__init__()
        self._vs = options.view_as(VectorStreamOptions)
        self._model = model
        # Tests inject faults at the client and model boundaries here.
        self._opener = opener
        self._handler_class = handler_class or SentenceEmbeddingHandler

    def expand(self, batches):
        vs, model = self._vs, self._model
        handler = KeyedModelHandler(self._handler_class(
            model.path, device=vs.device, batch_size=vs.inference_batch_size,
            cache_size=vs.embedding_cache_size))
        batches = batches | "Window into fixed intervals" >> beam.WindowInto(
            beam.window.FixedWindows(vs.window_seconds))
        parsed = batches | "Parse and validate events" >> ParseEvents()
        embedded, failed = (
            parsed.events
            | "Texts of each batch" >> beam.Map(
                lambda events: (events, [event.text for event in events]))
            | "Embed product text" >> RunInference(handler).with_exception_handling())
        paired = embedded | "Vectors with events" >> beam.ParDo(PairVectors()).with_outputs(
            DEAD_LETTERS, main="pairs")
        embed_failures = (failed.failed_inferences
                          | "Failed calls to dead letters" >> beam.FlatMapTuple(
                              embed_dead_letters))
        write_failures = paired.pairs | "Write to Qdrant" >> beam.ParDo(WriteToQdrantFn(
            vs.collection, model.dim, model.name, url=vs.qdrant_url,
            path=None if vs.qdrant_url else vs.qdrant_path,
            batch_size=vs.write_batch_size, batch_bytes=vs.write_batch_bytes,
            flush_seconds=vs.flush_seconds, retry_seconds=vs.write_retry_seconds,
            opener=self._opener, in_flight=vs.in_flight(), grpc=vs.qdrant_grpc))
        dead_letters = ((parsed[DEAD_LETTERS], paired[DEAD_LETTERS], embed_failures,
                         write_failures)
                        | "All dead letters" >> beam.Flatten()
                        | "Dead letters leave the windows" >> beam.WindowInto(
                            beam.window.GlobalWindows()))
        return {"events": parsed.events, "dead_letters": dead_letters}


def kafka_source(options: PipelineOptions) -> beam.PTransform:
    """The transform that reads the input topic as batches of KafkaMessage (ReadEvents)."""
    from vectorstream.runners.java import choose_java_environment, choose_reader, runner_name
    vs = options.view_as(VectorStreamOptions)
    return ReadEvents(KafkaSource(
        vs.bootstrap(), vs.topic, group=vs.consumer_group, start_from=vs.start_from,
        max_num_records=vs.max_num_records, max_read_time=vs.max_read_time,
        config=vs.kafka_extra(), batch_records=vs.batch_events,
        window_seconds=vs.window_seconds), reader=choose_reader(options),
        java_environment=choose_java_environment(options), bundle_seconds=vs.bundle_seconds,
        legacy_read=runner_name(options) == "FlinkRunner")


def build(pipeline: beam.Pipeline, options: PipelineOptions,
          model: Optional[ModelChoice] = None, opener: Callable[..., Store] = open_store,
          source: Optional[beam.PTransform] = None):
    """Adds the VectorStream graph to `pipeline`; returns its dict of PCollections.
    `opener` opens the Qdrant store (tests wrap it to inject faults); `source` replaces
    the Kafka reader (the benchmark feeds pre-encoded messages through it)."""
    vs = options.view_as(VectorStreamOptions)
    model = model or choose_model(vs.model)
    outputs = (pipeline
               | "Read events from Kafka" >> (source or kafka_source(options))
               | "Events to Qdrant" >> EventsToQdrant(options, model, opener))
    if vs.dead_letter_path:
        (outputs["dead_letters"]
         | "Write dead letters to a file" >> beam.ParDo(AppendJsonLines(vs.dead_letter_path)))
    else:
        (outputs["dead_letters"]
         | "Encode dead letters" >> beam.Map(encode_dead_letter)
         | "Write dead letters to Kafka" >> beam.ParDo(WriteToKafkaTopic(
             vs.bootstrap(), vs.dead_letter_topic_name(), vs.kafka_extra())))
    return outputs


def preflight(options: PipelineOptions) -> ModelChoice:
    """Checks what a run needs before it starts, each failure one readable message."""
    from vectorstream.io.qdrant import open_store
    vs = options.view_as(VectorStreamOptions)
    model = choose_model(vs.model)
    from vectorstream.transforms.embed import resolve_device
    resolve_device(vs.device)
    if not vs.dead_letter_path:
        ensure_topic(vs.bootstrap(), vs.dead_letter_topic_name(), extra=vs.kafka_extra())
    from vectorstream.io.kafka import group_offsets
    group_offsets(vs.bootstrap(), vs.topic, vs.consumer_group, vs.kafka_extra())
    store = open_store(url=vs.qdrant_url, path=None if vs.qdrant_url else vs.qdrant_path,
                       grpc=vs.qdrant_grpc)
    try:
        store.ensure_collection(vs.collection, model.dim)
    finally:
        store.close()
    return model


def prepare_runner(options: PipelineOptions) -> None:
    """Builds or fetches the pieces the chosen runner and reader need (once: Maven for
    the Java jars, Go for Prism), so a missing one is one readable message before anything
    starts."""
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, PrismRunnerOptions
    from vectorstream.runners import java
    flink = options.view_as(FlinkRunnerOptions)
    if java.runner_name(options) == "FlinkRunner" and not flink.flink_job_server_jar:
        flink.flink_job_server_jar = java.flink_job_server_jar()
    prism = options.view_as(PrismRunnerOptions)
    if java.runner_name(options) == "PrismRunner" and not prism.prism_location:
        prism.prism_location = java.prism_binary()
    if java.choose_reader(options) == "java":
        java.kafka_expansion_service_jar()


def python_workers_elsewhere(options: PipelineOptions) -> bool:
    """True when the pipeline's Python code runs in worker processes other than this one
    (an EXTERNAL worker pool, PROCESS or DOCKER environments, Dataflow's workers)."""
    from apache_beam.options.pipeline_options import PortableOptions
    from vectorstream.runners import java
    environment = (options.view_as(PortableOptions).environment_type or "").upper()
    return (environment in ("EXTERNAL", "PROCESS", "DOCKER")
            or java.runner_name(options) == "DataflowRunner")


def check_store_for_workers(options: PipelineOptions) -> None:
    """An embedded store takes one writer process: several SDK worker processes need a
    Qdrant server."""
    from apache_beam.options.pipeline_options import PortableOptions
    vs = options.view_as(VectorStreamOptions)
    if not python_workers_elsewhere(options):
        return
    if vs.qdrant_url and not vs.qdrant_url.startswith("local://"):
        return
    portable = options.view_as(PortableOptions)
    raise UsageError(
        f"--environment_type {portable.environment_type or 'of this runner'} runs the "
        f"pipeline's Python code in worker processes of their own "
        f"(--sdk_worker_parallelism {portable.sdk_worker_parallelism} per task manager), and "
        f"an embedded store ({'--qdrant_url ' + vs.qdrant_url if vs.qdrant_url else '--qdrant_path'}) "
        f"takes one writer process: give --qdrant_url http://HOST:6333 (a Qdrant server), or "
        f"run the Python code in this process with --environment_type LOOPBACK")


def default_job_name(topic: str) -> str:
    """`vectorstream-<topic>-<UTC time>`: what Flink's UI and `flink cancel --job_name`
    show (lower case, digits and dashes, as Dataflow requires)."""
    import re
    import time
    slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")[:40] or "events"
    return f"vectorstream-{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def cancel(result, options: PipelineOptions) -> None:
    """Cancels a running job: through the runner's job service, and on a Flink cluster
    also through Flink's REST API (the job service's cancel does not always reach it)."""
    import threading
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, GoogleCloudOptions
    from vectorstream.runners import java
    done = threading.Event()

    def through_runner():
        try:
            result.cancel()
        except Exception as exc:  # pylint: disable=broad-except
            _LOG.info("the runner could not cancel the job: %r", exc)
        done.set()

    threading.Thread(target=through_runner, daemon=True, name="cancel").start()
    done.wait(30)
    master = options.view_as(FlinkRunnerOptions).flink_master or ""
    if java.runner_name(options) == "FlinkRunner" and not master.startswith("["):
        from vectorstream.runners import flink
        name = options.view_as(GoogleCloudOptions).job_name
        try:
            ids = flink.cancel_jobs(master, name=name)
            if ids:
                flink.wait_for_jobs_to_end(master, ids)
        except (OSError, flink.FlinkError) as exc:
            _LOG.warning("could not cancel job %s on Flink at %s: %s", name, master, exc)


class _Serving:
    """The metrics server and the lag monitor of a run, stopped together."""

    def __init__(self, server, lag):
        self.server, self.lag = server, lag

    def stop(self):
        self.lag.stop()
        self.server.stop()


def serve_metrics(options: PipelineOptions) -> _Serving:
    """/metrics and /healthz on --metrics_port, and the consumer lag polled for them."""
    vs = options.view_as(VectorStreamOptions)
    health = metrics.HealthChecks(
        metrics.kafka_check(vs.bootstrap(), vs.topic, vs.kafka_extra()),
        metrics.store_check(vs.qdrant_url))
    lag = metrics.LagMonitor(vs.bootstrap(), vs.topic, vs.consumer_group, vs.kafka_extra())
    lag.start()
    try:
        server = metrics.MetricsServer(vs.metrics_port, health).start()
    except OSError as exc:
        lag.stop()
        raise UsageError(f"--metrics_port {vs.metrics_port} cannot be served ({exc.strerror}): "
                         f"pick a free port, or 0 for any") from None
    print(f"metrics: http://localhost:{server.port}/metrics, health: "
          f"http://localhost:{server.port}/healthz", file=sys.stderr)
    return _Serving(server, lag)


def flink_defaults(options, bounded: bool) -> None:
    """The Flink settings a run gets unless its flags say otherwise."""
    from vectorstream.runners import java
    from vectorstream.runners.presets import FlinkClusterOptions
    if java.runner_name(options) != "FlinkRunner":
        return
    flink_options = options.view_as(FlinkClusterOptions)
    if bounded and flink_options.shutdown_sources_after_idle_ms is None:
        # Flink runs a pipeline with an unbounded read (our reader) in streaming mode,
        # whose sources never end while checkpointing is on: let them end once idle,
        # so a bounded run finishes.
        flink_options.shutdown_sources_after_idle_ms = 1000
    if flink_options.finish_bundle_before_checkpointing is None:
        # Without it, a checkpoint taken during the split stage's one bundle (the
        # Impulse's single element, just after start) keeps that bundle's output, the
        # partitions to read, in the checkpoint until the stage's next element, which
        # never comes: the job runs, checkpoints, and reads nothing.
        flink_options.finish_bundle_before_checkpointing = True


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(argv: Optional[List[str]] = None, wait: bool = True):
    """Parses flags (a --preset first), checks services, builds and runs the pipeline.
    Returns the result. Ctrl-C cancels the job on the runner before it returns."""
    import contextlib
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PortableOptions
    from vectorstream.runners import java
    from vectorstream.runners.presets import apply_preset
    options = parse_options(apply_preset(list(argv or [])))
    vs = options.view_as(VectorStreamOptions)
    bounded = vs.max_num_records is not None or vs.max_read_time is not None
    if not bounded:
        options.view_as(StandardOptions).streaming = True
    flink_defaults(options, bounded)
    cloud = options.view_as(GoogleCloudOptions)
    if not cloud.job_name:
        cloud.job_name = default_job_name(vs.topic)
    portable = options.view_as(PortableOptions)
    if (portable.environment_type or "").upper() == "LOOPBACK":
        # LOOPBACK takes no config: a preset's EXTERNAL address does not apply.
        portable.environment_config = None
    with contextlib.ExitStack() as stack:
        if (java.runner_name(options) == "FlinkRunner" and not portable.environment_type
                and int(portable.sdk_worker_parallelism or 1) > 1):
            # Several Python workers: a worker pool on this machine for this run, one
            # process per worker, in place of LOOPBACK's one (this) process.
            from vectorstream.runners.flink import RunWorkerPool
            portable.environment_type = "EXTERNAL"
            portable.environment_config = stack.enter_context(RunWorkerPool())
        if (java.runner_name(options) == "PrismRunner" and java.choose_reader(options) == "java"
                and not bounded):
            raise UsageError(
                "--kafka_reader java on Prism reads bounded runs only: KafkaIO commits its "
                "offsets in a step Prism cannot run (it lacks beam:requirement:pardo:"
                "stable_input:v1); stream with --kafka_reader python, or on Flink")
        if java.runner_name(options) == "PrismRunner" and java.choose_reader(options) == "java":
            # The expansion service's JVM is also where Prism runs KafkaIO (Beam adds
            # --alsoStartLoopbackWorker while this cache is held): keep it from build to end.
            from apache_beam.utils.subprocess_server import SubprocessServer
            stack.enter_context(SubprocessServer.cache_subprocesses())
        check_store_for_workers(options)
        model = preflight(options)
        prepare_runner(options)
        pipeline = beam.Pipeline(options=options)
        build(pipeline, options, model)
        reporter = None
        if vs.progress_seconds > 0:
            from vectorstream.pipeline.progress import ProgressReporter
            reporter = ProgressReporter(vs.progress_seconds)
            reporter.start()
        if vs.metrics_port is not None:
            stack.callback(serve_metrics(options).stop)
        metrics.STATUS.pipeline_running(True)
        try:
            result = pipeline.run()
            # Beam's portable runners stop their job server on SIGINT, before the job is
            # cancelled; Ctrl-C (and SIGTERM, from a service manager) is ours to handle
            # (below): cancel the job, then stop.
            import signal
            import threading
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, _interrupt)
            if wait:
                try:
                    result.wait_until_finish()
                except KeyboardInterrupt:
                    print("vectorstream: cancelling the job (Ctrl-C) ...", file=sys.stderr)
                    cancel(result, options)
                    raise
                finally:
                    from vectorstream.io.sink import close_all_stores
                    close_all_stores()
        except BaseException as exc:
            metrics.STATUS.pipeline_running(False, f"the pipeline stopped: {exc!r}"[:300])
            raise
        finally:
            if reporter is not None:
                reporter.stop()
        if wait:
            metrics.STATUS.pipeline_running(False, "the pipeline has finished")
        return result
