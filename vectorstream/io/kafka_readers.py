"""The readers of our Kafka source (`kafka_source.KafkaSource`, which makes them and
whose settings they read): one partition a reader, or every partition in one reader for a
bounded run by record count; their checkpoint marks, which commit the next offsets to the consumer group once the runner has the
records; and the record type both Kafka readers give, `KafkaMessage`.
"""
from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
import time
from typing import Dict, List, NamedTuple, Optional

import orjson
from apache_beam.io.unbounded_source import CheckpointMark, UnboundedReader, UnboundedSource
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp

from vectorstream import telemetry
from vectorstream.io.kafka_admin import client_config, partitions_of
from vectorstream.io.kafka_warm import start_offset, take_warm

_LOG = logging.getLogger(__name__)


# How long a freshly started reader waits for its first records (connecting, looking up
# the committed offsets and the first fetch take a few hundred milliseconds).
FIRST_FETCH_SECONDS = 2.0


class KafkaMessage(NamedTuple):
    """One Kafka record as the pipeline sees it (value, key, timestamp, partition, offset)."""
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: int  # Kafka's own timestamp (create or log-append time)


class MessageBatch(list):
    """A batch of KafkaMessage, one window's: the reader's element. A type of its own so
    that its PCollection gets `kafka_source.MessageBatchCoder`."""

    __slots__ = ()


# ---------------------------------------------------------------------------------------
# The event's own timestamp, read cheaply: the reader needs it for the element timestamp
# before ParseEvents validates the message.

def event_time_ms(value: Optional[bytes]) -> Optional[int]:
    if not value:
        return None
    try:
        data = orjson.loads(value)
        stamp = data.get("timestamp") if isinstance(data, dict) else None
        if not isinstance(stamp, str):
            return None
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return int(parsed.timestamp() * 1000)
    except Exception:  # malformed messages keep Kafka's timestamp; ParseEvents says why
        return None


# ---------------------------------------------------------------------------------------
# The unbounded source.

class KafkaCheckpointMark(CheckpointMark):
    """Where a partition's reader resumes: the next offset, and the bounded-run budget."""

    def __init__(self, bootstrap_servers: str, extra: Dict[str, str], group: str, topic: str,
                 partition: int, next_offset: int, records_read: int, deadline: Optional[float]):
        self.bootstrap_servers = bootstrap_servers
        self.extra = extra  # secrets stay references (env:/file:), resolved when used
        self.group = group
        self.topic = topic
        self.partition = partition
        self.next_offset = next_offset
        self.records_read = records_read
        self.deadline = deadline

    def finalize_checkpoint(self) -> None:
        """Commits the offset to the consumer group once the runner has the records."""
        if self.next_offset < 0 or not self.group:
            return
        from confluent_kafka import TopicPartition
        consumer = _committer(self.bootstrap_servers, self.extra, self.group)
        consumer.commit(offsets=[TopicPartition(self.topic, self.partition, self.next_offset)],
                        asynchronous=False)
        _LOG.debug("committed %s[%d] @ %d for group %s", self.topic, self.partition,
                   self.next_offset, self.group)

    def __repr__(self):
        return (f"KafkaCheckpointMark({self.topic}[{self.partition}] next={self.next_offset}, "
                f"read={self.records_read})")


_COMMITTERS: Dict[tuple, object] = {}
_COMMITTERS_LOCK = threading.Lock()


@atexit.register
def close_committers() -> None:
    with _COMMITTERS_LOCK:
        for consumer in _COMMITTERS.values():
            consumer.close()
        _COMMITTERS.clear()


def _committer(bootstrap_servers: str, extra: Dict[str, str], group: str):
    """One consumer per (cluster, group) in this process, used only to commit offsets."""
    from confluent_kafka import Consumer
    key = (bootstrap_servers, tuple(sorted(extra.items())), group)
    with _COMMITTERS_LOCK:
        consumer = _COMMITTERS.get(key)
        if consumer is None:
            consumer = Consumer({**client_config(bootstrap_servers, extra), "group.id": group,
                                 "enable.auto.commit": False})
            _COMMITTERS[key] = consumer
        return consumer


class KafkaPartitionReader(UnboundedReader):
    """Reads one partition in batches (lists of KafkaMessage, one window each) without
    blocking for long: advance() returns False when nothing arrives within its wait."""

    def __init__(self, source: UnboundedSource, partition: int,
                 mark: Optional[KafkaCheckpointMark]):
        self._source = source
        self._partition = partition
        self._consumer = None
        self._buffer: list = []
        self._pos = 0
        self._current: List[KafkaMessage] = []
        self._current_ts: Timestamp = MIN_TIMESTAMP
        self._fetch_size = max(1000, source.batch_records)
        self._window_ms = (max(1, int(source.window_seconds * 1000))
                           if source.window_seconds else None)
        self._next_offset = mark.next_offset if mark else -1
        self._records_read = mark.records_read if mark else 0
        self._deadline = mark.deadline if mark else None
        self._max_event_ts = MIN_TIMESTAMP
        self._last_data_at = time.time()
        # --ending_offsets: the partition's end offset when the run started (None: no end).
        ends = getattr(source, "ending_offsets", None)
        self._end = ends.get(partition, 0) if ends is not None else None
        self._position = self._next_offset  # where the consumer reads next, once known
        self._at_end = False

    # -- lifecycle
    def start(self) -> bool:
        self.start_consumer()
        # A fresh consumer needs a moment (connect, find the offset, first fetch) before it
        # has anything: wait for it, so that a runner resuming the read with a new reader
        # each bundle (Flink running a bounded read as a batch job) still moves forward.
        deadline = time.monotonic() + FIRST_FETCH_SECONDS
        while not self.advance():
            if time.monotonic() >= deadline or not self._budget_left():
                return False
        return True

    def start_consumer(self) -> None:
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
        src = self._source
        if src.max_read_time is not None and self._deadline is None:
            self._deadline = time.time() + src.max_read_time
        tp = TopicPartition(src.topic, self._partition)
        offset = self._next_offset
        warm = take_warm(src, self._partition) if offset < 0 else None
        if warm is not None:  # started before the runner, assigned at the same offset
            self._consumer, offset = warm
        else:
            self._consumer = Consumer(src._consumer_config())
            if offset < 0:
                offset = start_offset(self._consumer, src, self._partition)
            self._consumer.assign([TopicPartition(src.topic, self._partition, offset)])
        if self._end is not None:
            if offset < 0:  # where "earliest" or "latest" is, as a number
                low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
                offset = low if offset == OFFSET_BEGINNING else high
            self._position = max(self._position, offset)
            self._at_end = self._position >= self._end

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- reading
    def _budget_left(self) -> bool:
        if self._at_end:
            return False
        if self._deadline is not None and time.time() >= self._deadline:
            return False
        return True

    def _reached_end(self) -> bool:
        """With an end offset: whether the consumer is past it, records or not (a
        transaction marker or a compacted-away record can be the last offset before it)."""
        if self._end is None or self._consumer is None:
            return False
        from confluent_kafka import TopicPartition
        position = self._consumer.position([TopicPartition(self._source.topic,
                                                           self._partition)])[0].offset
        self._position = max(self._position, position)
        self._at_end = self._position >= self._end
        return self._at_end

    def _fetch(self, wait: float) -> list:
        """What librdkafka has already fetched, without waiting; only when it has nothing,
        wait up to `wait` seconds for the first record (`consume(n, timeout)` would wait
        the whole timeout whenever fewer than n records are buffered)."""
        records = self._consumer.consume(self._fetch_size, timeout=0)
        if not records and wait > 0:
            first = self._consumer.poll(wait)
            records = [first] if first is not None else []
        return records

    def advance(self, wait: float = 0.05, limit: Optional[int] = None) -> bool:
        """The next batch: up to `limit` (or batch_records) of the records already fetched,
        all in one window; False when there is none."""
        if not self._budget_left():
            self.close()  # a finished bounded reader lets go of its connection at once
            return False
        if self._pos >= len(self._buffer):
            self._buffer = self._fetch(wait)
            self._pos = 0
            if not self._buffer and self._reached_end():
                self.close()
                return False
        most = min(limit or self._source.batch_records, self._source.batch_records)
        batch: List[KafkaMessage] = MessageBatch()
        first_ms = last_ms = 0
        window = None
        while self._pos < len(self._buffer) and len(batch) < most:
            msg = self._buffer[self._pos]
            if msg.error():
                self._pos += 1
                from confluent_kafka import KafkaError
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    # Transient broker errors (a restart) are retried by librdkafka itself.
                    _LOG.warning("Kafka error on %s[%d]: %s", self._source.topic,
                                 self._partition, msg.error())
                continue
            if self._end is not None and msg.offset() >= self._end:
                self._pos = len(self._buffer)  # past the end offset: the rest is not ours
                self._at_end = True
                break
            kafka_ts = msg.timestamp()[1]
            event_ms = event_time_ms(msg.value())
            millis = event_ms if event_ms is not None else kafka_ts
            if self._window_ms is not None:
                if window is None:
                    window = millis // self._window_ms
                elif millis // self._window_ms != window:
                    break  # this record opens the next batch, in its own window
            self._pos += 1
            if not batch:
                first_ms = last_ms = millis
            first_ms, last_ms = min(first_ms, millis), max(last_ms, millis)
            batch.append(KafkaMessage(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                      msg.value(), kafka_ts))
        if not batch:
            return False
        self._current = batch
        self._current_ts = Timestamp(micros=first_ms * 1000)
        self._max_event_ts = max(self._max_event_ts, Timestamp(micros=last_ms * 1000))
        if self._records_read == 0:
            telemetry.mark("first record polled")
        self._next_offset = batch[-1].offset + 1
        self._position = max(self._position, self._next_offset)
        if self._end is not None and self._position >= self._end:
            self._at_end = True
        self._records_read += len(batch)
        self._last_data_at = time.time()
        return True

    def get_current(self) -> List[KafkaMessage]:
        return self._current

    def get_current_timestamp(self) -> Timestamp:
        return self._current_ts

    def get_watermark(self) -> Timestamp:
        if self._source.bounded and not self._budget_left():
            return MAX_TIMESTAMP
        # While data flows, trail the newest event time; once idle, trail the clock.
        idle_for = time.time() - self._last_data_at
        if idle_for > self._source.idle_lag_seconds:
            return Timestamp.of(time.time() - self._source.idle_lag_seconds)
        if self._max_event_ts == MIN_TIMESTAMP:
            return MIN_TIMESTAMP
        return self._max_event_ts - self._source.idle_lag_seconds

    def get_checkpoint_mark(self) -> KafkaCheckpointMark:
        src = self._source
        return KafkaCheckpointMark(src.bootstrap_servers, src.config, src.group, src.topic,
                                   self._partition, self._next_offset, self._records_read,
                                   self._deadline)


class _MultiPartitionReader(UnboundedReader):
    """Every partition in one reader; owns the bounded-run budget (records and time)."""

    def __init__(self, source: UnboundedSource, mark: Optional["_MultiMark"]):
        partitions = source.partitions or partitions_of(source.bootstrap_servers, source.topic,
                                                        source.config)
        self._source = source
        unbudgeted = source._copy(None, budgeted=False)
        marks = mark.partitions if mark else {}
        self._readers = [KafkaPartitionReader(unbudgeted, p, marks.get(p)) for p in partitions]
        self._records_read = mark.records_read if mark else 0
        self._deadline = mark.deadline if mark else None
        self._active = None
        self._next = 0

    def _budget_left(self) -> bool:
        src = self._source
        if src.max_num_records is not None and self._records_read >= src.max_num_records:
            return False
        if src.ending_offsets is not None and all(r._at_end for r in self._readers):
            return False
        return self._deadline is None or time.time() < self._deadline

    def start(self):
        if self._source.max_read_time is not None and self._deadline is None:
            self._deadline = time.time() + self._source.max_read_time
        for reader in self._readers:
            reader.start_consumer()
        # A fresh consumer needs a moment (connect, find the offsets, first fetch) before
        # it has anything: wait for it, so that a runner resuming the read in a new bundle
        # each time (and a new reader with it) still moves forward every bundle.
        deadline = time.monotonic() + FIRST_FETCH_SECONDS
        while not self.advance():
            if time.monotonic() >= deadline or not self._budget_left():
                return False
        return True

    def advance(self):
        if not self._budget_left():
            self.close()  # a finished bounded reader lets go of its connections at once
            return False
        # Round-robin over partitions so one busy partition does not starve the others;
        # a partition with nothing buffered is passed over without waiting while another
        # has records, and only when none has is each waited on, briefly.
        count = len(self._readers)
        src = self._source
        left = (src.max_num_records - self._records_read
                if src.max_num_records is not None else None)
        for wait in (0.0, 0.05 / count):
            for i in range(count):
                reader = self._readers[(self._next + i) % count]
                if reader.advance(wait, left):
                    self._active = reader
                    self._next = (self._next + i + 1) % count
                    self._records_read += len(reader.get_current())
                    return True
        return False

    def get_current(self):
        return self._active.get_current()

    def get_current_timestamp(self):
        return self._active.get_current_timestamp()

    def get_watermark(self):
        if self._source.bounded and not self._budget_left():
            return MAX_TIMESTAMP
        return min(r.get_watermark() for r in self._readers)

    def get_checkpoint_mark(self):
        return _MultiMark({r._partition: r.get_checkpoint_mark() for r in self._readers},
                          self._records_read, self._deadline)

    def close(self):
        for reader in self._readers:
            reader.close()


class _MultiMark(CheckpointMark):
    def __init__(self, partitions: Dict[int, KafkaCheckpointMark], records_read: int,
                 deadline: Optional[float]):
        self.partitions = partitions
        self.records_read = records_read
        self.deadline = deadline

    def finalize_checkpoint(self):
        for mark in self.partitions.values():
            mark.finalize_checkpoint()

    def __repr__(self):
        return f"_MultiMark({list(self.partitions.values())}, read={self.records_read})"
