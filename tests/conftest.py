"""Shared fixtures: a real single-node Kafka broker for the whole session, fresh topics,
and the packaged model. Nothing here is mocked."""
import os
import uuid

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KAFKA_PORT = int(os.environ.get("VECTORSTREAM_TEST_KAFKA_PORT", "39092"))
KAFKA_SASL_PORT = KAFKA_PORT + 2  # SASL_PLAINTEXT (PLAIN) listener of the same broker
SASL_USER, SASL_PASSWORD = "vectorstream", "s3cr3t-Pa55word"


SERVER_URL = os.environ.get("VECTORSTREAM_QDRANT_URL")


def pytest_collection_modifyitems(config, items):
    """Tests marked `server` need a Qdrant server (no registry here ships one): without
    VECTORSTREAM_QDRANT_URL they are skipped, saying how to run them."""
    if SERVER_URL:
        return
    skip = pytest.mark.skip(reason="needs a Qdrant server: run `VECTORSTREAM_QDRANT_URL="
                                   "http://HOST:6333 VECTORSTREAM_QDRANT_BIN=/path/to/qdrant "
                                   "make test-server`")
    for item in items:
        if "server" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def qdrant_url():
    """The Qdrant server of the `server` tests."""
    return SERVER_URL


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A KRaft broker on 127.0.0.1 started for the tests (jars from Maven Central); None
    when one already listens on the port (left by a previous session) and is reused."""
    from vectorstream.io.local_kafka import LocalKafka, port_open
    if port_open("127.0.0.1", KAFKA_PORT):
        yield None
        return
    broker = LocalKafka(str(tmp_path_factory.mktemp("kafka")), port=KAFKA_PORT,
                        sasl_port=KAFKA_SASL_PORT, sasl_users={SASL_USER: SASL_PASSWORD})
    broker.start()
    yield broker
    from vectorstream.io.kafka_readers import close_committers
    close_committers()  # before the broker goes, or they reconnect noisily until exit
    broker.stop()


@pytest.fixture(scope="session")
def kafka(kafka_broker):
    return f"127.0.0.1:{KAFKA_PORT}"


@pytest.fixture
def topic(kafka):
    from vectorstream.io.kafka_admin import ensure_topic
    name = f"test-{uuid.uuid4().hex[:10]}"
    ensure_topic(kafka, name, partitions=2)
    return name


def consume_all(bootstrap, topic, expected, timeout=60.0):
    """Reads `expected` messages from the start of every partition of `topic`."""
    import time
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    deadline = time.time() + timeout
    try:
        while len(out) < expected and time.time() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                if not msg.error():
                    out.append(msg)
    finally:
        consumer.close()
    return out


class PipelineProcess:
    """`python -m vectorstream run …` as a user starts it, in its own process."""

    def __init__(self, *args):
        import subprocess
        import sys
        import tempfile
        self.args = [sys.executable, "-m", "vectorstream", "run", *args]
        # A file, not a pipe: a full pipe would block the process (librdkafka logs a line
        # per reconnection attempt while a broker is down).
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.args, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").splitlines()
        return "\n".join(line for line in lines if not line.startswith("%"))[-4000:]

    def kill(self):
        import signal
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=30):
        import signal
        import subprocess
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class GroupOffsets:
    """The consumer group's committed offsets: what the pipeline has finished."""

    def __init__(self, bootstrap, topic, group, partitions=(0, 1)):
        from confluent_kafka import Consumer, TopicPartition
        self.bootstrap, self.topic = bootstrap, topic
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self._tps = [TopicPartition(topic, p) for p in partitions]

    def total(self):
        from vectorstream.io.kafka_admin import committed_offsets
        return sum(max(0, o) for o in committed_offsets(self._consumer, self._tps).values())

    def wait_for(self, count, timeout, pipeline=None):
        import time
        deadline = time.time() + timeout
        while self.total() < count:
            if pipeline is not None and not pipeline.alive():
                raise AssertionError("the pipeline exited:\n" + pipeline.output())
            if time.time() > deadline:
                log = ""
                if pipeline is not None:
                    pipeline.stop()
                    log = "\n" + pipeline.output()
                raise AssertionError(f"committed {self.total()} < {count} after {timeout}s{log}")
            time.sleep(0.2)

    def close(self):
        self._consumer.close()


def stored_event_ids(path=None, collection="ecommerce_events", read_only=False, url=None,
                     grpc_port=None):
    """The event_id of every point in an embedded store (read_only: from a copy, while a
    pipeline holds it), or in a Qdrant server's collection (`url`)."""
    from vectorstream.io.qdrant import open_store
    store = open_store(url=url, path=path, read_only=read_only, grpc_port=grpc_port)
    try:
        return [h.payload["event_id"] for h in store.scroll(collection)]
    finally:
        store.close()


def produce_layout(kafka, topic, messages, layout):
    """Produces `messages` in order, layout[p] of them to partition p (a skewed topic)."""
    from vectorstream.io.produce import produce
    assert sum(layout) == len(messages)
    start = 0
    for partition, n in enumerate(layout):
        if n:
            produce(kafka, topic, messages[start:start + n], partition=partition)
        start += n


def run_end_to_end(kafka, tmp_path, runner_flags, bounded, count=400, partitions=4,
                   on_running=None, qdrant_url=None, layout=None, bound_flags=None,
                   on_started=None, on_done=None):
    """The pipeline (`python -m vectorstream run`, in its own process as a user runs it)
    over a fresh `partitions`-partition topic of `count` events, 5 % malformed, on the
    runner `runner_flags` pick. Bounded: it must end by itself. Streaming: the committed
    offsets and the store are polled until everything is in, then it is cancelled with
    Ctrl-C (SIGINT), which must end it. Either way: each valid event stored exactly once,
    each malformed one dead-lettered, every offset committed. `on_running(pipeline,
    offsets, messages)`, for streaming runs, is called once a first part is committed
    (faults are injected there). `qdrant_url`: a Qdrant server, a fresh collection in it,
    in place of an embedded store. `layout`: how many messages go to each partition (a
    skewed topic; default: by key). `bound_flags`: what bounds a bounded run (default
    `--max_num_records COUNT`). `on_started(offsets)`, for bounded runs, is called once the
    run has committed a first offset (records produced then are past the end of an
    `--ending_offsets latest` run). `on_done(topic, group, count)` is called at the end.
    Returns the pipeline's output."""
    import json
    import subprocess
    import sys
    import time
    from vectorstream.io.kafka_admin import ensure_topic
    from vectorstream.io.produce import generate, produce
    topic = f"runner-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=partitions)
    messages = list(generate(sum(layout) if layout else count, seed=9, bad_fraction=0.05))
    valid = sorted(m[2]["event_id"] for m in messages if m[2] is not None)
    group, path = f"g-{topic}", str(tmp_path / "q")
    collection = topic if qdrant_url else "ecommerce_events"
    store = (["--qdrant_url", qdrant_url, "--collection", collection] if qdrant_url
             else ["--qdrant_path", path])
    argv = runner_flags + store + [
        "--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", group,
        "--dead_letter_path", str(tmp_path / "dead.jsonl"), "--progress_seconds", "0"]

    def stored(read_only=False):
        if qdrant_url:
            return stored_event_ids(url=qdrant_url, collection=collection)
        return stored_event_ids(path, read_only=read_only)
    offsets = GroupOffsets(kafka, topic, group, partitions=range(partitions))
    try:
        if bounded:
            if layout:
                produce_layout(kafka, topic, messages, layout)
            else:
                produce(kafka, topic, messages)
            with open(tmp_path / "run.log", "w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "vectorstream", "run", *argv,
                     *(bound_flags or ["--max_num_records", str(len(messages))])],
                    stdout=out, stderr=subprocess.STDOUT)
                try:
                    if on_started is not None:
                        offsets.wait_for(1, timeout=300)
                        on_started(offsets)
                    proc.wait(timeout=500)
                except BaseException:
                    proc.kill()
                    proc.wait()
                    raise AssertionError("the bounded run did not end as it should:\n"
                                         + (tmp_path / "run.log").read_text()[-3000:])
            output = (tmp_path / "run.log").read_text()
            assert proc.returncode == 0, output[-3000:]
        else:
            head, rest = messages[:len(messages) // 4], messages[len(messages) // 4:]
            produce(kafka, topic, head)
            pipeline = PipelineProcess(*argv)
            try:
                offsets.wait_for(1, timeout=300, pipeline=pipeline)
                if on_running is not None:
                    on_running(pipeline, offsets, rest)
                else:
                    produce(kafka, topic, rest)  # live records, after the backlog
                offsets.wait_for(len(messages), timeout=300, pipeline=pipeline)
                deadline = time.time() + 60
                while len(stored(read_only=True)) < len(valid):
                    assert time.time() < deadline, "offsets committed, points missing"
                    time.sleep(1)
            finally:
                pipeline.stop(timeout=60)  # Ctrl-C: the job is cancelled, the run ends
                pipeline.log.seek(0)
                (tmp_path / "run.log").write_bytes(pipeline.log.read())  # kept for a look
            output = pipeline.output()
            assert pipeline.proc.returncode == 130, output
        assert offsets.total() == len(messages), "every offset committed"
    finally:
        offsets.close()
    assert sorted(stored()) == valid, "each valid event stored exactly once"
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    # A streaming job replays from its last checkpoint after a failure: a dead letter may
    # then be written twice, but no malformed message goes without one.
    sources = {(d["source"]["partition"], d["source"]["offset"]) for d in dead}
    assert len(sources) == len(messages) - len(valid), "each malformed message dead-lettered"
    assert all(d["stage"] == "parse" for d in dead)
    if on_done is not None:
        on_done(topic, group, len(messages))
    return output
