"""Kafka's admin side: client settings (secrets resolved where the client is made), the
broker's reachability, topics, partitions, the consumer group's committed offsets, and
producing one message. The source that reads events is `kafka_source`.
"""
from __future__ import annotations

import time
from typing import Dict, List, NamedTuple, Optional

from vectorstream.config.secrets import resolve_secrets


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached; the message says what to do."""


def client_config(bootstrap_servers: str, extra: Optional[Dict[str, str]] = None) -> dict:
    """The librdkafka settings of a client, secrets resolved: build it where the client is
    made, and never keep or log it."""
    config = {"bootstrap.servers": bootstrap_servers}
    config.update(resolve_secrets(extra))
    return config


def check_reachable(bootstrap_servers: str, extra: Optional[Dict[str, str]] = None,
                    timeout: float = 10.0):
    """Returns cluster metadata, or raises KafkaUnavailable with a message that says what to do."""
    from confluent_kafka.admin import AdminClient
    # A probe: its failure is reported once, below, not by librdkafka on every retry.
    admin = AdminClient({**client_config(bootstrap_servers, extra), "log_level": 0})
    try:
        return admin.list_topics(timeout=timeout)
    except Exception as exc:  # KafkaException carries a KafkaError
        raise KafkaUnavailable(
            f"Kafka at {bootstrap_servers} is not reachable ({exc}). Start a local broker "
            f"with `vectorstream kafka start`, or point --bootstrap_servers at a running one."
        ) from None


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = 1,
                 extra: Optional[Dict[str, str]] = None, timeout: float = 30.0) -> None:
    """Creates the topic when missing (replication 1: the local broker has one node)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka import KafkaException
    metadata = check_reachable(bootstrap_servers, extra)
    if topic in metadata.topics and metadata.topics[topic].error is None:
        return
    admin = AdminClient(client_config(bootstrap_servers, extra))
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)])
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise
    # Wait until the leader is known so the first produce does not race creation.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)


def partitions_of(bootstrap_servers: str, topic: str,
                  extra: Optional[Dict[str, str]] = None) -> List[int]:
    metadata = check_reachable(bootstrap_servers, extra)
    t = metadata.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise KafkaUnavailable(
            f"Kafka topic {topic!r} does not exist at {bootstrap_servers}: create it "
            f"(`vectorstream produce` does) or check --topic.")
    return sorted(t.partitions)


def group_offsets(bootstrap_servers: str, topic: str, group: str,
                  extra: Optional[Dict[str, str]] = None) -> Dict[int, int]:
    """The group's committed offset of each partition of `topic` (-1001: none). Asking
    also makes a fresh broker elect the group's coordinator, so a pipeline's readers do
    not wait for it in their first bundle."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({**client_config(bootstrap_servers, extra), "group.id": group,
                         "enable.auto.commit": False})
    try:
        return committed_offsets(consumer, [TopicPartition(topic, p) for p in
                                            partitions_of(bootstrap_servers, topic, extra)])
    finally:
        consumer.close()


class TopicOffsets(NamedTuple):
    """Where a consumer group stands on each partition of a topic, at one moment: `start`
    is where its next read begins (the committed offset, or the partition's first or end
    offset, as `start_from` says, where it has none), `end` the partition's end offset."""
    start: Dict[int, int]
    end: Dict[int, int]

    def available(self) -> Dict[int, int]:
        return {p: max(0, self.end[p] - self.start[p]) for p in self.end}


def topic_offsets(bootstrap_servers: str, topic: str, group: str, start_from: str = "earliest",
                  extra: Optional[Dict[str, str]] = None) -> TopicOffsets:
    """The group's start and the partitions' end offsets of `topic`, now."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({**client_config(bootstrap_servers, extra), "group.id": group,
                         "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in partitions_of(bootstrap_servers, topic, extra)]
        committed = committed_offsets(consumer, tps)
        start, end = {}, {}
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            end[tp.partition] = high
            done = committed.get(tp.partition, -1)
            start[tp.partition] = (done if done >= 0 else
                                   low if start_from == "earliest" else high)
        return TopicOffsets(start, end)
    finally:
        consumer.close()


def committed_offsets(consumer, tps, attempts: int = 20) -> Dict[int, int]:
    """The group's committed offsets; retried while a fresh broker elects its coordinator."""
    from confluent_kafka import KafkaException
    for attempt in range(attempts):
        try:
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].name() not in (
                    "NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS",
                    "COORDINATOR_NOT_AVAILABLE"):
                raise
            time.sleep(min(0.1 * 2 ** attempt, 2.0))
    return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}


def send(producer, topic: str, value: Optional[bytes], key: Optional[bytes] = None,
         on_delivery=None, partition: Optional[int] = None) -> None:
    """Produces one message (to `partition`, or where the key puts it), waiting while the
    producer's local queue is full."""
    where = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **where)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
