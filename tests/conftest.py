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
    from vectorstream.io.kafka import _close_committers
    _close_committers()  # before the broker goes, or they reconnect noisily until exit
    broker.stop()


@pytest.fixture(scope="session")
def kafka(kafka_broker):
    return f"127.0.0.1:{KAFKA_PORT}"


@pytest.fixture
def topic(kafka):
    from vectorstream.io.kafka import ensure_topic
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
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self._tps = [TopicPartition(topic, p) for p in partitions]

    def total(self):
        from vectorstream.io.kafka import committed_offsets
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
