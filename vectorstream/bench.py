"""`vectorstream bench`: one workload through our pipeline and through stock Beam, side by side.

Both pipelines get the same events, model, device and machine, one after the other in
the same run, each in its own process (so peak RSS is its own):

- ours: `pipeline.graph.build` as shipped (flags as `vectorstream run` takes them);
- stock: what a Beam user writes with Beam's own pieces: json.loads, RunInference with a
  plain ModelHandler around `SentenceTransformer.encode`, EmbeddableItem, and Beam's
  `QdrantWriteConfig` sink (qdrant-client; here its local mode on disk, the only
  in-process store it can write to).

Events come from the real broker (`--source kafka`, the default here), or from
pre-encoded messages fed through the same parsing code (`--source memory`: machines with
no Kafka, such as the GPU host). Both read with our Kafka source; ours takes its batches,
stock one record an element, as Beam's ReadFromKafka gives them. Either way the reader's
output is stamped with the time it was read, so latency = read → stored, the same
measure for both pipelines, and events/s = events stored / (last stored − first read),
without start-up (model load).
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import pickle
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import typing
import uuid
from typing import Dict, List, Optional

import apache_beam as beam

from vectorstream.pipeline.options import UsageError

WORKLOADS = ("unique", "catalog")
CATALOG_SIZE = 10_000
COLLECTION = "bench"


# ---------------------------------------------------------------- the events


def workload_messages(workload: str, count: int, seed: int = 11) -> List[tuple]:
    """(key, value) messages: `unique` gives every event its own product text; `catalog`
    draws products Zipf-like (s = 1.1) from a 10k-product catalog, as shops see."""
    from vectorstream.io.produce import catalog, make_event
    rng = random.Random(seed)
    if workload == "unique":
        products = catalog(count, seed=seed)
    elif workload == "catalog":
        items = catalog(CATALOG_SIZE, seed=seed)
        rng.shuffle(items)  # popularity is not the catalog order
        cumulative, total = [], 0.0
        for rank in range(1, len(items) + 1):
            total += 1.0 / rank ** 1.1
            cumulative.append(total)
        products = [items[min(bisect.bisect(cumulative, rng.random() * total), len(items) - 1)]
                    for _ in range(count)]
    else:
        raise ValueError(f"--workload must be one of {WORKLOADS}, not {workload!r}")
    out = []
    for product in products:
        event = make_event(rng, product)
        out.append((event["event_id"].encode(), json.dumps(event, ensure_ascii=False).encode()))
    return out


# ---------------------------------------------------------------- one run, in a child


class _Clock:
    """What one child measures: when the first event was read, when each was stored."""
    first_read: Optional[float] = None
    stored: List[tuple] = []  # (time stored, latency s)
    lock = threading.Lock()

    @classmethod
    def on_stored(cls, now, latencies):
        with cls.lock:
            cls.stored.extend((now, v) for v in latencies)


def _stamp(batch):
    """Stamps each message of a batch with the time the pipeline read it (latency starts
    here)."""
    now = time.time()
    if _Clock.first_read is None:
        _Clock.first_read = now
    millis = int(now * 1000)
    return [message._replace(timestamp_ms=millis) for message in batch]


class _EmitChunk(beam.DoFn):
    """Pre-encoded messages, one chunk per input element, in batches as the Kafka reader
    yields them."""

    def __init__(self, path: str, topic: str, chunk: int, events: int, batch: int):
        self._path, self._topic, self._chunk, self._events = path, topic, chunk, events
        self._batch = batch
        self._messages = None

    def setup(self):
        with open(self._path, "rb") as fh:
            self._messages = pickle.load(fh)

    def process(self, index):
        from vectorstream.io.kafka import KafkaMessage
        start = index * self._chunk
        end = min(start + self._chunk, self._events, len(self._messages))
        for first in range(start, end, self._batch):
            yield [KafkaMessage(self._topic, 0, offset, *self._messages[offset], 0)
                   for offset in range(first, min(first + self._batch, end))]


class BenchSource(beam.PTransform):
    """The events of one benchmark run, in batches (lists of KafkaMessage) as our reader
    gives them: read from Kafka, or pre-encoded, then stamped."""

    def __init__(self, spec: Dict, batch: int = 512, window_seconds: Optional[float] = None,
                 workers: int = 1):
        super().__init__()
        self._spec = spec
        self._batch = batch
        self._window_seconds = window_seconds
        self._workers = workers

    def expand(self, pbegin):
        spec = self._spec
        if spec["source"] == "kafka":
            from vectorstream.io.kafka import KafkaSource, ReadEvents
            messages = pbegin | "Read from Kafka" >> ReadEvents(KafkaSource(
                spec["bootstrap"], spec["topic"], group=spec["group"], start_from="earliest",
                max_num_records=spec["events"], batch_records=self._batch,
                window_seconds=self._window_seconds))
        else:
            chunk = max(1000, self._batch)
            messages = (pbegin
                        | "Chunks" >> beam.Create(range((spec["events"] + chunk - 1) // chunk))
                        | "Pre-encoded messages" >> beam.ParDo(
                            _EmitChunk(spec["messages"], spec["topic"], chunk,
                                       spec["events"], self._batch)))
        stamped = messages | "Stamp read time" >> beam.Map(_stamp).with_output_types(
            typing.Any)
        if self._workers > 1:
            # The DirectRunner's worker processes share a stage's input only when the
            # runner holds it: hand the batches over (one reader, N writers).
            stamped = stamped | "To the workers" >> beam.Reshuffle()
        return stamped


def _ours(pipeline, spec: Dict) -> None:
    from vectorstream.pipeline.graph import build
    from vectorstream.pipeline.options import VectorStreamOptions, parse_options
    flags = ["--topic", spec["topic"], "--collection", COLLECTION, "--device", spec["device"],
             "--dead_letter_path", os.path.join(spec["dir"], "ours-dead-letters.jsonl"),
             "--progress_seconds", "0", *spec.get("ours_flags", [])]
    if spec["model"]:
        flags += ["--model", spec["model"]]
    if spec.get("qdrant_url"):
        flags += ["--qdrant_url", spec["qdrant_url"], "--collection", collection_of(spec, "ours")]
    elif spec["store"] == "local":
        flags += ["--qdrant_url", "local://" + os.path.join(spec["dir"], "ours-store")]
    else:
        flags += ["--qdrant_path", os.path.join(spec["dir"], "ours-store")]
    options = parse_options(flags)
    vs = options.view_as(VectorStreamOptions)
    build(pipeline, options, source=BenchSource(spec, vs.batch_events, vs.window_seconds,
                                                spec.get("workers", 1)))


def _stock(pipeline, spec: Dict) -> None:
    from apache_beam.ml.inference.base import (KeyedModelHandler, ModelHandler,
                                               PredictionResult, RunInference)
    from apache_beam.ml.rag.ingestion import qdrant as beam_qdrant
    from apache_beam.ml.rag.types import Content, EmbeddableItem, Embedding
    from vectorstream.transforms.events import point_id

    class EncodeHandler(ModelHandler):
        """The plain ModelHandler a Beam user writes around SentenceTransformer.encode."""

        def __init__(self, path, device):
            super().__init__()
            self._path, self._device = path, device

        def load_model(self):
            from sentence_transformers import SentenceTransformer
            return SentenceTransformer(self._path, device=self._device)

        def run_inference(self, batch, model, inference_args=None):
            vectors = model.encode(list(batch), normalize_embeddings=True)
            return [PredictionResult(t, v) for t, v in zip(batch, vectors)]

    class TimedQdrantWriteFn(beam_qdrant._QdrantWriteFn):  # pylint: disable=protected-access
        """Beam's own Qdrant write DoFn, unchanged, plus a note of when each batch landed."""

        def _flush(self):
            batch = list(self._batch)
            super()._flush()
            now = time.time()
            _Clock.on_stored(now, [now - p.payload["kafka_ms"] / 1000 for p in batch])

    def to_text(message):
        event = json.loads(message.value)
        event["kafka_ms"] = message.timestamp_ms
        product = event["product"]
        return event, f"{product['name']}. {product['description'].strip()}"

    def to_item(event, result):
        return EmbeddableItem(content=Content(text=result.example),
                              id=point_id(event["event_id"]), metadata=event,
                              embedding=Embedding(dense_embedding=result.inference.tolist()))

    config = beam_qdrant.QdrantWriteConfig(
        connection_params=(beam_qdrant.QdrantConnectionParameters(url=spec["qdrant_url"])
                           if spec.get("qdrant_url") else
                           beam_qdrant.QdrantConnectionParameters.local(
                               os.path.join(spec["dir"], "stock-store"))),
        collection_name=collection_of(spec, "stock"))
    (pipeline
     # One record an element, as Beam's ReadFromKafka gives them.
     | "Events" >> BenchSource(spec, batch=1)
     | "One message an element" >> beam.FlatMap(lambda batch: batch)
     | "Parse JSON" >> beam.Map(to_text)
     | "Embed" >> RunInference(KeyedModelHandler(EncodeHandler(spec["model_path"],
                                                               spec["device"])))
     | "To EmbeddableItem" >> beam.MapTuple(to_item)
     | "Convert to points" >> beam.Map(config.create_converter())
     | "Write to Qdrant" >> beam.ParDo(TimedQdrantWriteFn(config)))


def collection_of(spec: Dict, which: str) -> str:
    """The collection a pipeline writes: on a server, one of this run's own for each (ours
    and stock would otherwise write into one, and stock's create would find ours')."""
    if not spec.get("collection"):
        return COLLECTION
    return spec["collection"] + ("-stock" if which == "stock" else "")


def _stock_client(spec: Dict):
    from qdrant_client import QdrantClient
    if spec.get("qdrant_url"):
        return QdrantClient(url=spec["qdrant_url"])
    return QdrantClient(path=os.path.join(spec["dir"], "stock-store"))


def _create_stock_collection(spec: Dict, dim: int) -> None:
    from qdrant_client import models
    client = _stock_client(spec)
    client.create_collection(collection_of(spec, "stock"), vectors_config={
        "dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)})
    client.close()


def _ours_store(spec: Dict):
    from vectorstream.io.qdrant import open_store
    if spec.get("qdrant_url"):
        return open_store(url=spec["qdrant_url"])
    where = os.path.join(spec["dir"], "ours-store")
    return (open_store(url="local://" + where) if spec["store"] == "local"
            else open_store(path=where))


def stored_count(spec: Dict, which: str) -> int:
    if which == "stock":
        client = _stock_client(spec)
        try:
            return client.count(collection_of(spec, "stock"), exact=True).count
        finally:
            client.close()
    store = _ours_store(spec)
    try:
        return store.count(collection_of(spec, "ours"))
    finally:
        store.close()


def stored_times(store, collection: str) -> List[tuple]:
    """(stored, latency s) of each point in `collection`, from the points themselves (their
    read time, stamped into kafka.timestamp_ms, and ingested_at): how a run whose writers
    are other processes is measured."""
    import datetime as dt
    out = []
    for hit in store.scroll(collection):
        stored = dt.datetime.fromisoformat(
            hit.payload["ingested_at"].replace("Z", "+00:00")).timestamp()
        out.append((stored, stored - hit.payload["kafka"]["timestamp_ms"] / 1000.0))
    return out


def _stored_times(spec: Dict) -> List[tuple]:
    store = _ours_store(spec)
    try:
        return stored_times(store, collection_of(spec, "ours"))
    finally:
        store.close()


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DirectRunner's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _listening_pid(url: str) -> Optional[int]:
    """The local process listening on `url`'s port (a Qdrant server on this machine), to
    read its CPU time; None when it is elsewhere or cannot be told."""
    from urllib.parse import urlparse
    parsed = urlparse(url)
    if parsed.hostname not in ("localhost", "127.0.0.1"):
        return None
    port = parsed.port or 6333
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                for line in list(fh)[1:]:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                        inodes.add(fields[9])
        except OSError:
            pass
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def _process_cpu_seconds(pid: Optional[int]) -> Optional[float]:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_child(which: str, spec_path: str) -> None:
    """Runs one pipeline over the workload; writes its measurements as JSON."""
    from vectorstream.pipeline.progress import TALLY
    from vectorstream.transforms.embed import resolve_device
    with open(spec_path) as fh:
        spec = json.load(fh)
    spec["device"] = resolve_device(spec["device"])
    TALLY.listener = _Clock.on_stored
    started = time.time()
    rss = Sampler(10, lambda: (*_rss_mb(), len(_Clock.stored), time.time()))
    rss.start()
    if which == "stock":
        _create_stock_collection(spec, spec["dim"])
    workers = spec.get("workers", 1) if which == "ours" else 1
    runner_flags = (["--direct_running_mode", "multi_processing", "--direct_num_workers",
                     str(workers)] if workers > 1 else ["--direct_num_workers", "1"])
    pipeline = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(
        runner_flags))
    (_ours if which == "ours" else _stock)(pipeline, spec)
    server_pid = _listening_pid(spec["qdrant_url"]) if spec.get("qdrant_url") else None
    cpu_before, server_before = _cpu_seconds(), _process_cpu_seconds(server_pid)
    pipeline.run().wait_until_finish()
    ended = time.time()
    cpu_s = _cpu_seconds() - cpu_before
    server_after = _process_cpu_seconds(server_pid)
    server_cpu_s = (server_after - server_before) if server_after is not None else None
    from vectorstream.pipeline.progress import percentile
    rss.stop()
    end_rss = _rss_mb()
    if workers > 1:  # the writers were other processes: read it off the points
        _Clock.stored = _stored_times(spec)
    latencies = sorted(v for _, v in _Clock.stored)
    last = max((t for t, _ in _Clock.stored), default=ended)
    first = _Clock.first_read or started
    # The second half of the events, alone: the rate once the start (and, on `catalog`,
    # the cache filling with the popular products) is behind.
    stored_at = sorted(t for t, _ in _Clock.stored)
    half = stored_at[len(stored_at) // 2] if stored_at else last
    result = {
        "events": spec["events"], "stored_reported": len(latencies),
        "stored": stored_count(spec, which),
        "events_per_s": round(len(latencies) / max(last - first, 1e-9), 1),
        "latency_p50_s": _round(percentile(latencies, 50)),
        "latency_p99_s": _round(percentile(latencies, 99)),
        "second_half_events_per_s": round(
            (len(stored_at) - len(stored_at) // 2) / max(last - half, 1e-9), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # While events flowed; after the last one the pipeline tears down (the store closes).
        "rss_mb_every_10s": [sample[0] for sample in rss.samples if sample[3] <= last],
        "rss_anon_mb_every_10s": [sample[1] for sample in rss.samples if sample[3] <= last],
        "stored_every_10s": [sample[2] for sample in rss.samples if sample[3] <= last],
        "rss_mb_after_run": end_rss[0], "rss_anon_mb_after_run": end_rss[1],
        # CPU of this process and its workers (model, store and all) per event stored:
        # the pipeline's cost without a profiler's; with a server, the server's beside it.
        "cpu_s": round(cpu_s, 2),
        "us_per_event": round(cpu_s / max(len(latencies), 1) * 1e6, 1),
        "server_cpu_s": None if server_cpu_s is None else round(server_cpu_s, 2),
        "server_us_per_event": (None if server_cpu_s is None else
                                round(server_cpu_s / max(len(latencies), 1) * 1e6, 1)),
        "workers": workers,
        "processing_s": round(last - first, 2), "wall_s": round(ended - started, 2),
        "startup_s": round(first - started, 2), "first_read": first, "last_stored": last,
    }
    with open(os.path.join(spec["dir"], f"{which}.json"), "w") as fh:
        json.dump(result, fh)


def run_store_alone(spec_path: str) -> None:
    """The embedded store alone, for comparison with ours: the workload's events parsed
    and written as our sink writes them (random unit vectors in place of the model's, in
    batches of 256), with this process's memory noted every 10,000 points. What ours
    grows by beyond this, at the same number of points, is the pipeline's own."""
    import numpy as np
    from vectorstream.io.qdrant import open_store
    from vectorstream.io.sink import make_point
    from vectorstream.transforms.parse import parse_message
    from vectorstream.io.kafka import KafkaMessage
    with open(spec_path) as fh:
        spec = json.load(fh)
    with open(spec["messages"], "rb") as fh:
        messages = pickle.load(fh)[:spec["events"]]
    store = open_store(path=os.path.join(spec["dir"], "store"))
    store.ensure_collection(COLLECTION, spec["dim"])
    rng = np.random.default_rng(0)
    samples, batch = [(0, *_rss_mb())], []
    store_cpu = 0.0
    for offset, (key, value) in enumerate(messages):
        event = parse_message(KafkaMessage(spec["topic"], 0, offset, key, value, 0))
        vector = rng.standard_normal(spec["dim"]).astype(np.float32)
        batch.append(make_point(event, (vector / np.linalg.norm(vector)).tolist(), "bench"))
        if len(batch) == 256 or offset == len(messages) - 1:
            started = time.process_time()
            store.upsert(COLLECTION, batch)
            store_cpu += time.process_time() - started
            batch = []
        if (offset + 1) % 10_000 == 0 or offset == len(messages) - 1:
            samples.append((offset + 1, *_rss_mb()))
    store.close()
    with open(os.path.join(spec["dir"], "store_alone.json"), "w") as fh:
        json.dump({"points": [s[0] for s in samples], "rss_mb": [s[1] for s in samples],
                   "rss_anon_mb": [s[2] for s in samples],
                   # CPU of the upserts alone (conversion to the store's types included)
                   "us_per_point": round(store_cpu / max(len(messages), 1) * 1e6, 1)}, fh)


class Sampler(threading.Thread):
    """Calls `read` every `interval` seconds and keeps what it returns, until stopped or
    `read` fails (the thing sampled is not there)."""

    def __init__(self, interval: float, read):
        super().__init__(daemon=True)
        self.samples: list = []
        self._interval, self._read = interval, read
        self._stop = threading.Event()

    def run(self):
        while not self._stop.wait(self._interval):
            try:
                self.samples.append(self._read())
            except (OSError, IndexError, KeyError, ValueError, subprocess.SubprocessError):
                return

    def stop(self):
        self._stop.set()


def _rss_mb() -> tuple:
    """This process's resident memory, in all and anonymous alone (MB): is it flat over a
    long run? The anonymous part is the heap (pipeline, model, the store's in-RAM parts);
    the rest is file pages mapped in (libraries, the embedded store's memory-mapped
    segments), which the kernel can drop."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "RssAnon:")):
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0])  # kB
    return round(fields["VmRSS"] / 1024, 1), round(fields["RssAnon"] / 1024, 1)


def _round(value):
    return None if value is None else round(value, 3)


# ---------------------------------------------------------------- the parent


def _gpu_sample() -> tuple:
    """(time, GPU utilisation %, GPU memory MB) from nvidia-smi."""
    out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         timeout=5).stdout.splitlines()[0]
    util, memory = (float(x) for x in out.split(","))
    return time.time(), util, memory


class GpuSampler(Sampler):
    """nvidia-smi twice a second: GPU utilisation and memory while a pipeline runs."""

    def __init__(self):
        super().__init__(0.5, _gpu_sample)

    def summary(self, since: float, until: float) -> Optional[Dict]:
        inside = [s for s in self.samples if since <= s[0] <= until]
        if not inside:
            return None
        return {"gpu_util_mean_pct": round(sum(s[1] for s in inside) / len(inside), 1),
                "gpu_util_max_pct": max(s[1] for s in inside),
                "gpu_memory_max_mb": max(s[2] for s in inside)}


def _machine() -> Dict:
    import platform
    info = {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "beam": beam.__version__}
    try:
        import torch
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def run_bench(args) -> Dict:
    from vectorstream.pipeline.graph import choose_model
    from vectorstream.transforms.embed import resolve_device
    model = choose_model(args.model)
    device = resolve_device(args.device)
    work = tempfile.mkdtemp(prefix="vectorstream-bench-")
    print(f"bench: {args.workload}, {args.events} events, {device}, source {args.source}, "
          f"work dir {work}", file=sys.stderr)
    messages = workload_messages(args.workload, args.events)
    run_id = uuid.uuid4().hex[:8]
    ours_flags = list(args.ours_flag or [])
    if device == "cuda" and not args.ours_flag:
        # As the GPU preset ships: big batches through the pipeline and the model.
        ours_flags = ["--batch_events=4096", "--inference_batch_size=512"]
    spec = {"events": args.events, "model": args.model, "model_path": model.path,
            "dim": model.dim, "device": args.device, "source": args.source,
            "store": args.store, "topic": f"bench-{args.workload}-{run_id}",
            "bootstrap": args.bootstrap_servers, "ours_flags": ours_flags,
            "qdrant_url": args.qdrant_url, "workers": args.workers,
            "collection": f"bench-{run_id}" if args.qdrant_url else COLLECTION}
    if args.workers > 1 and not args.qdrant_url:
        raise UsageError("--workers above 1 writes from several processes: give --qdrant_url "
                         "(an embedded store takes one writer process)")
    if args.workers > 1 and args.source == "kafka":
        # Measured 2026-12-02: 32,536 of 200,000 events stored, and the run ended as if done.
        raise UsageError("--workers above 1 with --source kafka loses events in the "
                         "DirectRunner's multi-processing mode: use --source memory, or "
                         "Flink's parallelism (docs/runners.md) for several Kafka readers")
    if args.source == "kafka":
        from vectorstream.io.kafka import check_reachable, ensure_topic
        from vectorstream.io.produce import produce
        check_reachable(args.bootstrap_servers)
        ensure_topic(args.bootstrap_servers, spec["topic"], partitions=args.partitions)
        produce(args.bootstrap_servers, spec["topic"], messages)
    if args.source == "memory" or args.store_alone:
        spec["messages"] = os.path.join(work, "messages.pickle")
        with open(spec["messages"], "wb") as fh:
            pickle.dump(messages, fh)
    del messages
    report = {"workload": args.workload, "events": args.events, "device": device,
              "source": ("Kafka (local broker, " f"{args.partitions} partitions)"
                         if args.source == "kafka" else
                         "pre-encoded messages in memory through the same parsing code "
                         "(no Kafka on this machine)"),
              "model": model.name, "ours_flags": ours_flags, "workers": args.workers,
              "store": {
                  "ours": (f"Qdrant server at {args.qdrant_url}" if args.qdrant_url else
                           "Qdrant Edge (embedded shard)" if args.store == "edge"
                           else "qdrant-client local mode"),
                  "stock": (f"Qdrant server at {args.qdrant_url}" if args.qdrant_url else
                            "qdrant-client local mode") + " (Beam's QdrantWriteConfig)"},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": _machine(), "command": " ".join(["vectorstream", "bench"] + args.argv)}
    sampler = GpuSampler() if device == "cuda" and shutil.which("nvidia-smi") else None
    if sampler:
        sampler.start()
    for which in ("ours", "stock", "store_alone"):
        if ((which == "stock" and args.skip_stock) or (which == "ours" and args.skip_ours)
                or (which == "store_alone" and not args.store_alone)):
            continue
        run_spec = dict(spec, dir=os.path.join(work, which), group=f"bench-{which}-{run_id}")
        if which == "stock" and args.stock_events:
            run_spec["events"] = min(args.stock_events, args.events)
        os.makedirs(run_spec["dir"])
        spec_path = os.path.join(run_spec["dir"], "spec.json")
        with open(spec_path, "w") as fh:
            json.dump(run_spec, fh)
        print(f"bench: running {which} …", file=sys.stderr)
        log_path = os.path.join(run_spec["dir"], "log.txt")
        with open(log_path, "w") as log:
            proc = subprocess.run([sys.executable, "-m", "vectorstream.bench", "child", which,
                                   spec_path], stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            with open(log_path) as fh:
                tail = fh.read()[-3000:]
            raise RuntimeError(f"the {which} pipeline failed (exit {proc.returncode}); "
                               f"the end of its log ({log_path}):\n{tail}")
        with open(os.path.join(run_spec["dir"], f"{which}.json")) as fh:
            result = json.load(fh)
        if sampler and which != "store_alone":
            gpu = sampler.summary(result["first_read"], result["last_stored"])
            if gpu:
                result.update(gpu)
        report[which] = result
    if sampler:
        sampler.stop()
    if "stock" in report and "ours" in report and report["stock"]["events_per_s"]:
        report["speedup"] = round(report["ours"]["events_per_s"]
                                  / report["stock"]["events_per_s"], 2)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return report


def store_share(report: Dict) -> Optional[Dict]:
    """How much of ours' CPU per event is the store's: an embedded store's from the
    store-alone run (its upserts' CPU per point), a local server's from its own process."""
    ours = report.get("ours") or {}
    if not ours.get("us_per_event"):
        return None
    alone = (report.get("store_alone") or {}).get("us_per_point")
    if alone:
        return {"store_us_per_event": alone,
                "ours_less_store_us_per_event": round(ours["us_per_event"] - alone, 1),
                "store_share": round(alone / ours["us_per_event"], 3)}
    if ours.get("server_us_per_event") is not None:
        total = ours["us_per_event"] + ours["server_us_per_event"]
        return {"store_us_per_event": ours["server_us_per_event"],
                "ours_less_store_us_per_event": ours["us_per_event"],
                "store_share": round(ours["server_us_per_event"] / total, 3)}
    return None


def own_memory(report: Dict) -> Optional[Dict]:
    """Ours' memory less what the store alone grew by at the same number of points
    (interpolated), at each 10-s sample: the pipeline's own memory, in all and anonymous.
    Flat means the process grows only by what its embedded store keeps."""
    ours, alone = report.get("ours"), report.get("store_alone")
    if not ours or not alone or not ours.get("stored_every_10s"):
        return None

    import numpy as np

    def growth(key, points):
        return float(np.interp(points, alone["points"], alone[key])) - alone[key][0]

    out = {"rss_mb": [], "rss_anon_mb": []}
    for points, total, anon in zip(ours["stored_every_10s"], ours["rss_mb_every_10s"],
                                   ours["rss_anon_mb_every_10s"]):
        out["rss_mb"].append(round(total - growth("rss_mb", points), 1))
        out["rss_anon_mb"].append(round(anon - growth("rss_anon_mb", points), 1))
    return out


ROWS = [("events", "events"), ("events/s", "events_per_s"),
        ("CPU µs/event", "us_per_event"), ("server CPU µs/event", "server_us_per_event"),
        ("2nd half events/s", "second_half_events_per_s"), ("latency p50 (s)", "latency_p50_s"),
        ("latency p99 (s)", "latency_p99_s"), ("peak RSS (MB)", "peak_rss_mb"),
        ("stored", "stored"), ("start-up (s)", "startup_s"),
        ("GPU util mean (%)", "gpu_util_mean_pct")]


def table(report: Dict) -> str:
    lines = [f"{report['workload']} · {report['events']} events · {report['device']} · "
             f"{report['machine'].get('gpu') or str(report['machine']['cpus']) + ' CPUs'}",
             f"{'':20} {'ours':>12} {'stock':>12}"]
    for label, key in ROWS:
        values = [report.get(w, {}).get(key) for w in ("ours", "stock")]
        if all(v is None for v in values):
            continue
        lines.append(f"{label:20} " + " ".join(f"{'-' if v is None else v:>12}" for v in values))
    if "speedup" in report:
        lines.append(f"ours / stock events/s: {report['speedup']}×")
    share = report.get("store_share")
    if share:
        lines.append(f"ours' CPU µs/event less the store's: "
                     f"{share['ours_less_store_us_per_event']:g} (the store: "
                     f"{share['store_us_per_event']:g} µs/event, "
                     f"{100 * share['store_share']:.0f} % of the whole)")
    own = report.get("ours_less_store_growth")
    if own and own["rss_mb"]:
        lines.append(f"ours' memory less the store's growth (MB, in all / anonymous): "
                     f"first {own['rss_mb'][0]:g} / {own['rss_anon_mb'][0]:g}, last "
                     f"{own['rss_mb'][-1]:g} / {own['rss_anon_mb'][-1]:g}, range "
                     f"{min(own['rss_mb']):g}–{max(own['rss_mb']):g} / "
                     f"{min(own['rss_anon_mb']):g}–{max(own['rss_anon_mb']):g}")
    return "\n".join(lines)


def chart(report: Dict, path: str) -> bool:
    """A PNG beside the report: events/s, p99 latency and peak RSS, ours vs stock."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    which = [w for w in ("ours", "stock") if w in report]
    own = report.get("ours_less_store_growth")
    fig, axes = plt.subplots(1, 4 if own else 3, figsize=(13.5 if own else 10, 3.4))
    if own:
        # Memory over the run: ours, and ours less what the store alone grew by.
        ax, minutes = axes[3], [i / 6 for i in range(len(own["rss_mb"]))]
        ax.plot(minutes, report["ours"]["rss_mb_every_10s"], label="ours RSS")
        ax.plot(minutes, own["rss_mb"], label="ours less store growth")
        ax.plot(minutes, own["rss_anon_mb"], label="  same, anonymous")
        ax.set_title("memory (MB)")
        ax.set_xlabel("minutes")
        ax.legend(fontsize=7)
    for ax, (label, key) in zip(axes, [("events/s", "events_per_s"),
                                       ("latency p99 (s)", "latency_p99_s"),
                                       ("peak RSS (MB)", "peak_rss_mb")]):
        values = [report[w].get(key) or 0 for w in which]
        bars = ax.bar(which, values, color=["#2a7ab0", "#b0b0b0"][:len(which)])
        ax.bar_label(bars, fmt="%g")
        ax.set_title(label)
        ax.margins(y=0.2)
    fig.suptitle(f"vectorstream bench: {report['workload']}, {report['events']} events, "
                 f"{report['device']} ({report['machine'].get('gpu') or 'CPU'}), "
                 f"{report['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", choices=WORKLOADS, default="unique")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--model", help="local sentence-transformers model directory "
                                        "(default: the packaged all-MiniLM-L6-v2)")
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
    parser.add_argument("--workers", type=int, default=1,
                        help="ours with this many SDK worker processes (the DirectRunner's "
                             "multi-processing mode; needs --qdrant_url)")
    parser.add_argument("--report", default="bench-report.json",
                        help="JSON report path; the PNG chart goes beside it")
    parser.add_argument("--ours_flag", action="append",
                        help="an extra `vectorstream run` flag for ours (repeatable), "
                             "e.g. --ours_flag=--embedding_cache_size=0")
    parser.add_argument("--skip_stock", action="store_true")
    parser.add_argument("--skip_ours", action="store_true")
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


def main_bench(args) -> int:
    if args.chart_only:
        with open(args.report) as fh:
            report = json.load(fh)
    else:
        if args.events <= 0:
            raise UsageError("--events must be positive")
        report = run_bench(args)
    own = own_memory(report)
    if own:
        report["ours_less_store_growth"] = own
    share = store_share(report)
    if share:
        report["store_share"] = share
    if not args.chart_only:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=2)
    png = os.path.splitext(args.report)[0] + ".png"
    if chart(report, png):
        print(f"chart: {png}")
    else:
        print("chart: matplotlib is not installed here; draw it elsewhere with "
              f"`vectorstream bench --chart_only --report {args.report}`")
    print(f"report: {args.report}")
    print(table(report))
    short = [(side, report[side]["stored"], report[side]["events"])
             for side in ("ours", "stock") if isinstance(report.get(side), dict)
             and report[side].get("stored", 0) < report[side].get("events", 0)]
    for side, stored, want in short:
        print(f"bench: {side} stored {stored} of {want} events: the run lost events, so "
              f"its numbers are not a measurement", file=sys.stderr)
    return 1 if short else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1:3] == ["child", "store_alone"]:
        run_store_alone(sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "child":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if os.environ.get("VECTORSTREAM_BENCH_PROFILE"):  # where the CPU time goes
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            profiler.runcall(run_child, sys.argv[2], sys.argv[3])
            profiler.dump_stats(sys.argv[3] + ".prof")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        else:
            run_child(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python -m vectorstream.bench child ours|stock SPEC.json "
                 "(use `vectorstream bench` instead)")
