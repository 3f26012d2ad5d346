"""Running a plan: `run(argv)` resolves the plan, checks the services and the model with
readable messages, fetches what the runner needs, builds the graph and runs it until it
ends or is cancelled (Ctrl-C, SIGTERM). Every "which runner is this?" is answered by the
plan (`vectorstream.pipeline.plan`); this module only acts on the answers.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from typing import List, Optional, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PortableOptions

from vectorstream import telemetry
from vectorstream.io.kafka_admin import ensure_topic, group_offsets, topic_offsets
from vectorstream.io.writes import acquire_store, close_all_stores, release_store
from vectorstream.pipeline.graph import build, event_source
from vectorstream.pipeline.early import start_model_loading
from vectorstream.pipeline.plan import RunPlan, resolve
from vectorstream.transforms.model import ModelChoice, choose_model, resolve_device

_LOG = logging.getLogger(__name__)


def has_beams_gcp_extra() -> bool:
    """Whether Beam's GCP extra (its GCS and Dataflow clients) is installed."""
    import importlib.util
    try:
        return all(importlib.util.find_spec(m) for m in ("apitools", "google.cloud.storage"))
    except ImportError:  # no google.cloud at all
        return False


def preflight(plan: RunPlan, defer_indexing: bool = False,
              warm_reader: bool = False) -> Tuple[ModelChoice, str]:
    """Checks what a run needs before it starts, each failure one readable message. The
    model, and the collection the run writes. With `defer_indexing`, turns that
    collection's indexing off (`resume_indexing` turns it back on); without, turns back on
    what a deferring run left off. With `warm_reader`, starts the readers' consumers at
    the committed offsets it read (io.kafka_warm.warm_up), to fetch while the store is
    checked."""
    vs, store_plan = plan.vs, plan.store
    if plan.runner == "DataflowRunner" and not has_beams_gcp_extra():
        from vectorstream.config.errors import UsageError
        raise UsageError("the Dataflow runner needs Beam's GCP extra, which a plain install "
                         "leaves out: pip install 'vectorstream[dataflow]'")
    model = choose_model(vs.model)
    resolve_device(vs.device)
    if not vs.dead_letter_path:
        ensure_topic(vs.bootstrap(), vs.dead_letter_topic_name(), extra=vs.kafka_extra())
    committed = group_offsets(vs.bootstrap(), vs.topic, vs.consumer_group, vs.kafka_extra())
    if vs.catalog_topic:
        from vectorstream.io.kafka_admin import partitions_of
        partitions_of(vs.bootstrap(), vs.catalog_topic, vs.kafka_extra())
    if warm_reader:
        from vectorstream.io.kafka_warm import warm_up
        warm_up(event_source(plan), committed)
    # Left open for the sink (`execute` lets go of it at the end): on the DirectRunner, Prism
    # and Flink LOOPBACK the sink runs in this process, where io.writes shares a store.
    store = acquire_store(**store_key(plan))
    try:
        from vectorstream.io.versions import writable
        target = writable(store, store_plan.collection, model.name, model.dim)
        if defer_indexing:
            store.defer_indexing(target)
        elif store.resume_indexing(target) is not None:
            print(f"vectorstream: {target}'s indexing was off, left so by a backfill that did "
                  f"not finish: turned back on", file=sys.stderr)
    except BaseException:
        release_store(**store_key(plan))
        raise
    return model, target


def store_key(plan: RunPlan) -> dict:
    """The arguments the sink opens the plan's store with (io.writes.acquire_store)."""
    store = plan.store
    return {"url": store.url, "path": store.path, "grpc": store.grpc,
            "grpc_port": store.grpc_port}


def resume_indexing(plan: RunPlan, collection: str) -> None:
    """Turns the indexing `preflight` deferred back on; a store that cannot be reached
    leaves it to the next run, saying so."""
    try:
        store = acquire_store(**store_key(plan))  # the preflight's, still open
        try:
            store.resume_indexing(collection)
        finally:
            release_store(**store_key(plan))
    except Exception as exc:  # pylint: disable=broad-except
        print(f"vectorstream: could not turn {collection}'s indexing back on ({exc}): the "
              f"next `vectorstream run` into it does", file=sys.stderr)


def prepare(plan: RunPlan) -> None:
    """Builds or fetches what the plan says the runner and reader need (once: Maven for
    the Java jars, Go for Prism), so a missing one is one readable message before anything
    starts."""
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, PrismRunnerOptions
    from vectorstream.runners import java, prism
    for what in plan.fetch:
        if what == "flink_job_server_jar":
            plan.options.view_as(FlinkRunnerOptions).flink_job_server_jar = \
                java.flink_job_server_jar()
        elif what == "prism_binary":
            plan.options.view_as(PrismRunnerOptions).prism_location = prism.prism_binary()
        elif what == "kafka_expansion_service_jar":
            java.kafka_expansion_service_jar()


def counters(result) -> dict:
    """The pipeline's `vectorstream` counters, or {} where the runner cannot report them."""
    try:
        return {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == "vectorstream"}
    except Exception as exc:  # e.g. a RecursionError in Beam's metric merge after many bundles
        _LOG.warning("the runner could not report metrics: %r", exc)
        return {}


def cancel(result, plan: RunPlan) -> None:
    """Cancels a running job: through the runner's job service, and on a separate Flink
    cluster also through Flink's REST API (the job service's cancel does not always reach
    it)."""
    done = threading.Event()

    def through_runner():
        try:
            result.cancel()
        except Exception as exc:  # pylint: disable=broad-except
            _LOG.info("the runner could not cancel the job: %r", exc)
        done.set()

    threading.Thread(target=through_runner, daemon=True, name="cancel").start()
    done.wait(30)
    master = plan.flink_cluster
    if master:
        from vectorstream.runners import flink
        name = plan.options.view_as(GoogleCloudOptions).job_name
        try:
            ids = flink.cancel_jobs(master, name=name)
            if ids:
                flink.wait_for_jobs_to_end(master, ids)
        except (OSError, flink.FlinkError) as exc:
            _LOG.warning("could not cancel job %s on Flink at %s: %s", name, master, exc)


class BoundWatcher(threading.Thread):
    """Ends a run whose job streams while its bound is kept here (the Java reader on Flink,
    plan.java_bound == "launcher"): every second it reads the group's committed offsets,
    which KafkaIO commits only when a checkpoint completes, that is after the sink wrote
    every record before it, and once they reach the bound (each partition at its end
    offset of the start, or --max_num_records past the start in all, or --max_read_time
    gone by) it cancels the job. Records read past the bound before the cancel are
    stored too, and committed, as a streaming run would."""

    def __init__(self, plan: RunPlan):
        super().__init__(name="vectorstream-bound", daemon=True)
        vs = plan.vs
        self._vs = vs
        self._start = topic_offsets(vs.bootstrap(), vs.topic, vs.consumer_group,
                                    vs.start_from, vs.kafka_extra())
        self._deadline = (time.monotonic() + vs.max_read_time) if vs.max_read_time else None
        self._stop = threading.Event()
        self.reached: Optional[str] = None
        self.on_reached = None  # called once, from this thread

    def progress(self) -> Optional[str]:
        """Why the bound is reached, or None."""
        vs = self._vs
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return f"--max_read_time {vs.max_read_time:g} s"
        committed = group_offsets(vs.bootstrap(), vs.topic, vs.consumer_group, vs.kafka_extra())
        if vs.ending_offsets and all(max(committed.get(p, -1), self._start.start[p]) >= end
                                     for p, end in self._start.end.items()):
            return "--ending_offsets latest: every partition committed to its end offset"
        done = sum(max(0, committed.get(p, -1) - start) for p, start in self._start.start.items()
                   if committed.get(p, -1) >= 0)
        if vs.max_num_records is not None and done >= vs.max_num_records:
            return f"--max_num_records {vs.max_num_records}: {done} records committed"
        return None

    def run(self):
        while not self._stop.wait(1.0):
            try:
                reason = self.progress()
            except Exception as exc:  # pylint: disable=broad-except
                _LOG.warning("could not read the committed offsets: %s", exc)
                continue
            if reason:
                self.reached = reason
                print(f"vectorstream: the bound is reached ({reason}): ending the job",
                      file=sys.stderr)
                if self.on_reached is not None:
                    _quiet_teardown()
                    self.on_reached()
                return

    def stop(self):
        self._stop.set()


def _quiet_teardown() -> None:
    """A job cancelled from here takes the runner's connections to this process's Python
    worker down with it: Beam's worker threads then die on gRPC's UNAVAILABLE with a
    traceback each, which says nothing. Those are not printed; anything else is."""
    previous = threading.excepthook

    def hook(args):
        if args.exc_type.__module__.startswith("grpc") and "UNAVAILABLE" in str(args.exc_value):
            return
        previous(args)
    threading.excepthook = hook
    logging.getLogger("apache_beam.runners.worker.data_plane").setLevel(logging.CRITICAL)
    logging.getLogger("apache_beam.runners.worker.sdk_worker").setLevel(logging.CRITICAL)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(argv: Optional[List[str]] = None, wait: bool = True):
    """Parses flags (a --preset first) into a plan and runs it. Returns the result.
    Ctrl-C cancels the job on the runner before it returns."""
    return execute(resolve(argv), wait=wait)


def execute(plan: RunPlan, wait: bool = True):
    """Checks the services, fetches what the runner needs, builds and runs the plan. The
    model starts loading first, in a thread, when the pipeline's Python runs in this
    process: the checks, the jars and the graph do not wait for it."""
    vs = plan.vs
    start_model_loading(plan)  # at once, if the command did not already
    with contextlib.ExitStack() as stack:
        if plan.start_worker_pool:
            from vectorstream.runners.flink import RunWorkerPool
            plan.options.view_as(PortableOptions).environment_config = \
                stack.enter_context(RunWorkerPool())
        if plan.keep_expansion_service:
            # The expansion service's JVM is also where Prism runs KafkaIO (Beam adds
            # --alsoStartLoopbackWorker while this cache is held): keep it from build to end.
            from apache_beam.utils.subprocess_server import SubprocessServer
            stack.enter_context(SubprocessServer.cache_subprocesses())
        defer = plan.store.defer_indexing and wait  # someone here to turn it back on
        # Our reader in this process: its consumers start during the checks (lever 32).
        warm = wait and plan.reader == "python" and not plan.workers_elsewhere
        if warm:
            from vectorstream.io.kafka_warm import close_warm_consumers
            stack.callback(close_warm_consumers)  # those no reader took
        model, collection = preflight(plan, defer, warm_reader=warm)
        if wait:
            # Every store this process opened for the run, closed once it has ended (portable
            # runners tear the DoFns down later, or not at all; an embedded store stays
            # locked until closed): after the deferred indexing resumed on the preflight's.
            stack.callback(close_all_stores)
        stack.callback(release_store, **store_key(plan))
        if defer:
            stack.callback(resume_indexing, plan, collection)
        telemetry.mark("Kafka and the store checked")
        prepare(plan)
        watcher = BoundWatcher(plan) if plan.java_bound == "launcher" else None
        pipeline = beam.Pipeline(options=plan.options)
        build(pipeline, plan, model)
        telemetry.mark("pipeline built")
        reporter = None
        if vs.progress_seconds > 0:
            from vectorstream.pipeline.progress import ProgressReporter
            reporter = ProgressReporter(vs.progress_seconds)
            reporter.start()
        if vs.metrics_port is not None:
            from vectorstream.pipeline.ops import serve
            stack.callback(serve(plan).stop)
        telemetry.STATUS.pipeline_running(True)
        try:
            result = pipeline.run()
            telemetry.mark("runner started")
            # Beam's portable runners stop their job server on SIGINT, before the job is
            # cancelled; Ctrl-C (and SIGTERM, from a service manager) is ours to handle
            # (below): cancel the job, then stop.
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, _interrupt)
            if watcher is not None:
                watcher.on_reached = lambda: cancel(result, plan)
                watcher.start()
                stack.callback(watcher.stop)
            if wait:
                try:
                    result.wait_until_finish()
                except KeyboardInterrupt:
                    print("vectorstream: cancelling the job (Ctrl-C) ...", file=sys.stderr)
                    _quiet_teardown()
                    cancel(result, plan)
                    raise
                except RuntimeError:
                    # The job ended because its bound was reached (the runner reports a
                    # cancelled job as failed in state CANCELLED): the run is done.
                    if watcher is None or not watcher.reached:
                        raise
        except BaseException as exc:
            telemetry.STATUS.pipeline_running(False, f"the pipeline stopped: {exc!r}"[:300])
            raise
        finally:
            if reporter is not None:
                reporter.stop()
        if wait:
            telemetry.STATUS.pipeline_running(False, "the pipeline has finished")
            if vs.timeline:
                import json
                print("timeline: " + json.dumps(telemetry.timeline()), flush=True)
        return result
