"""Shared fixtures: a real single-node Kafka broker for the whole session, fresh topics,
and the packaged model. Nothing here is mocked."""
import os
import uuid

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KAFKA_PORT = int(os.environ.get("VECTORSTREAM_TEST_KAFKA_PORT", "39092"))


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """A KRaft broker on 127.0.0.1 started for the tests (jars from Maven Central)."""
    from vectorstream.io.local_kafka import LocalKafka, port_open
    if port_open("127.0.0.1", KAFKA_PORT):
        yield f"127.0.0.1:{KAFKA_PORT}"  # a broker left by a previous session: reuse it
        return
    broker = LocalKafka(str(tmp_path_factory.mktemp("kafka")), port=KAFKA_PORT)
    bootstrap = broker.start()
    yield bootstrap
    from vectorstream.io.kafka import _close_committers
    _close_committers()  # before the broker goes, or they reconnect noisily until exit
    broker.stop()


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
