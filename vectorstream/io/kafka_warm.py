"""The readers' consumers, started before the runner (lever 32): while the launcher checks
the store and builds the pipeline, each partition's consumer connects, looks up where it
starts and fetches; a fresh reader of this process (io.kafka_readers) takes its own."""
from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Tuple

from vectorstream.io.kafka_admin import committed_offsets, partitions_of

_LOG = logging.getLogger(__name__)

# The longest a reader (or the run's end) waits for a warm-up under way.
WAIT_SECONDS = 10.0

# Consumers started before the runner (warm_up), for the readers of this process to take.
_WARM: Dict[tuple, Tuple[Any, int]] = {}  # key -> (assigned consumer, its start offset)
_WARM_LOCK = threading.Lock()
_WARMING = threading.Event()  # set while no warm-up is under way
_WARMING.set()


def _warm_key(source, partition: int) -> tuple:
    return (source.bootstrap_servers, tuple(sorted(source.config.items())), source.group,
            source.topic, source.start_from, partition)


def start_offset(consumer, source, partition: int) -> int:
    """Where a fresh reader of `partition` starts: the group's committed offset, else the
    source's start_from (OFFSET_BEGINNING or OFFSET_END)."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
    committed = committed_offsets(consumer, [TopicPartition(source.topic, partition)]).get(
        partition, -1)
    if committed >= 0:
        return committed
    return OFFSET_BEGINNING if source.start_from == "earliest" else OFFSET_END


def warm_up(source) -> threading.Thread:
    """Starts, in a thread, the consumer each partition's reader would start: connected,
    its start offset looked up and assigned, so librdkafka (its own threads, not Python's)
    connects and fetches the first records while the launcher builds the pipeline and the
    runner starts. A fresh reader of this process takes it (`take_warm`) in place of
    starting its own; `close_warm_consumers` closes what none took. For a run whose
    readers run in this process; best effort: a failure here leaves the readers to start
    their own consumers, as without it. The start offsets are read a few seconds earlier
    than a reader would: the same offsets, as nothing else commits for the run's group
    before its readers start."""
    _WARMING.clear()

    def run():
        from confluent_kafka import Consumer, TopicPartition
        try:
            for partition in source.partitions or partitions_of(
                    source.bootstrap_servers, source.topic, source.config):
                consumer = Consumer(source._consumer_config())
                try:
                    offset = start_offset(consumer, source, partition)
                    consumer.assign([TopicPartition(source.topic, partition, offset)])
                except Exception:
                    consumer.close()
                    raise
                with _WARM_LOCK:
                    old = _WARM.pop(_warm_key(source, partition), None)
                    _WARM[_warm_key(source, partition)] = (consumer, offset)
                if old is not None:
                    old[0].close()
        except Exception as exc:  # pylint: disable=broad-except
            _LOG.info("the readers start their own consumers: warming up failed: %r", exc)
        finally:
            _WARMING.set()

    thread = threading.Thread(target=run, name="vectorstream-kafka-warm-up", daemon=True)
    thread.start()
    return thread


def take_warm(source, partition: int):
    """The warmed-up consumer of `partition` and its start offset, or None."""
    _WARMING.wait(WAIT_SECONDS)
    with _WARM_LOCK:
        return _WARM.pop(_warm_key(source, partition), None)


def close_warm_consumers() -> None:
    """Closes the warmed-up consumers no reader took (after the run)."""
    _WARMING.wait(WAIT_SECONDS)
    with _WARM_LOCK:
        left = list(_WARM.values())
        _WARM.clear()
    for consumer, _ in left:
        consumer.close()
