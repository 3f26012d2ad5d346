"""The readers' consumers, started before the runner (lever 32): while the launcher checks
the store and builds the pipeline, each partition's consumer connects and fetches (in
librdkafka's own threads); a fresh reader of this process (io.kafka_readers) takes its
own rather than starting one."""
from __future__ import annotations

import threading
from typing import Any, Dict, Tuple

from vectorstream.io.kafka_admin import committed_offsets

# Consumers started before the runner (warm_up), for the readers of this process to take.
_WARM: Dict[tuple, Tuple[Any, int]] = {}  # key -> (assigned consumer, its start offset)
_WARM_LOCK = threading.Lock()


def _warm_key(source, partition: int) -> tuple:
    return (source.bootstrap_servers, tuple(sorted(source.config.items())), source.group,
            source.topic, source.start_from, partition)


def _from_committed(committed: int, start_from: str) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
    if committed >= 0:
        return committed
    return OFFSET_BEGINNING if start_from == "earliest" else OFFSET_END


def start_offset(consumer, source, partition: int) -> int:
    """Where a fresh reader of `partition` starts: the group's committed offset, else the
    source's start_from (OFFSET_BEGINNING or OFFSET_END)."""
    from confluent_kafka import TopicPartition
    committed = committed_offsets(consumer, [TopicPartition(source.topic, partition)])
    return _from_committed(committed.get(partition, -1), source.start_from)


def warm_up(source, committed: Dict[int, int]) -> None:
    """Starts the consumer each partition's reader would start, assigned where that reader
    would start (`committed`: the group's committed offsets the preflight just read, -1001
    for none), so that librdkafka connects and fetches the first records while the
    launcher builds the pipeline and the runner starts; creating and assigning a consumer
    does not wait for the broker. A fresh reader of this process takes its partition's
    (`take_warm`); `close_warm_consumers` closes what none took. For a run whose readers
    run in this process. Nothing else commits for the run's group before its readers
    start, so the offsets are the ones a reader would read itself."""
    from confluent_kafka import Consumer, TopicPartition
    for partition in source.partitions or sorted(committed):
        offset = _from_committed(committed.get(partition, -1), source.start_from)
        consumer = Consumer(source._consumer_config())
        consumer.assign([TopicPartition(source.topic, partition, offset)])
        with _WARM_LOCK:
            old = _WARM.pop(_warm_key(source, partition), None)
            _WARM[_warm_key(source, partition)] = (consumer, offset)
        if old is not None:
            old[0].close()


def take_warm(source, partition: int):
    """The warmed-up consumer of `partition` and its start offset, or None."""
    with _WARM_LOCK:
        return _WARM.pop(_warm_key(source, partition), None)


def close_warm_consumers() -> None:
    """Closes the warmed-up consumers no reader took (after the run)."""
    with _WARM_LOCK:
        left = list(_WARM.values())
        _WARM.clear()
    for consumer, _ in left:
        consumer.close()
