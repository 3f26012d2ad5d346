"""Reading events from Kafka and writing dead letters to it.

`KafkaSource` is a Python-native unbounded source over confluent-kafka, built on Beam's
`apache_beam.io.unbounded_source`: one split per partition, checkpoint marks hold the next
offset, `finalize_checkpoint` commits it to the consumer group, each element carries the
event's own timestamp (Kafka's when the message has none we can read) and the watermark
advances with the data, or with the clock while a partition is idle.

Bounded runs (`max_num_records`, `max_read_time`) have the meaning Beam's ReadFromKafka
gives them: stop after that many records in all, or after that many seconds.

The reader's elements are batches: lists of up to `batch_records` KafkaMessages from one
partition, taken from what librdkafka has already fetched and cut where the event time
crosses into the next fixed window, so every record of a batch belongs to the batch's
window and Beam's per-element work is paid once a batch rather than once an event.
"""
from __future__ import annotations

import atexit
import copy
import datetime as dt
import logging
import os
import threading
import time
from typing import Dict, List, NamedTuple, Optional

import apache_beam as beam
import orjson
from apache_beam import coders
from apache_beam.io.unbounded_source import CheckpointMark, UnboundedReader, UnboundedSource
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp

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


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached; the message says what to do."""


# librdkafka settings that hold secrets: never given inline, never logged.
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password",
                         "ssl.truststore.password", "sasl.oauthbearer.client.secret"})


class KafkaConfigError(ValueError):
    """A --kafka_config setting that cannot be used; the message says what to do."""


def check_secrets_by_reference(extra: Optional[Dict[str, str]]) -> None:
    """Secrets must come from the environment or a file, never from the command line."""
    for key, value in (extra or {}).items():
        if key in SECRET_KEYS and not str(value).startswith(("env:", "file:")):
            raise KafkaConfigError(
                f"--kafka_config {key} must not be given inline (it would show in the process "
                f"list and in logs): use {key}=env:VARIABLE or {key}=file:/path/to/secret")


def resolve_secrets(extra: Optional[Dict[str, str]]) -> Dict[str, str]:
    """Replaces env:NAME and file:PATH values by what they point at."""
    resolved = {}
    for key, value in (extra or {}).items():
        value = str(value)
        if value.startswith("env:"):
            name = value[4:]
            if name not in os.environ:
                raise KafkaConfigError(f"--kafka_config {key} names the environment variable "
                                       f"{name}, which is not set: export it first")
            value = os.environ[name]
        elif value.startswith("file:"):
            try:
                with open(value[5:], encoding="utf-8") as fh:
                    value = fh.read().strip()
            except OSError as exc:
                raise KafkaConfigError(f"--kafka_config {key}: cannot read {value[5:]} "
                                       f"({exc.strerror})") from None
        resolved[key] = value
    return resolved


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


# ---------------------------------------------------------------------------------------
# The event's own timestamp, read cheaply: the reader needs it for the element timestamp
# before ParseEvents validates the message.

def _event_time_ms(value: Optional[bytes]) -> Optional[int]:
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
def _close_committers() -> None:
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


class KafkaSource(UnboundedSource):
    """Reads one topic; splits into one sub-source per partition.

    Args:
      bootstrap_servers, topic, group: where to read, and the consumer group whose
        committed offsets say where to start and which finalized checkpoints advance.
      start_from: 'earliest' or 'latest', for partitions with no committed offset.
      max_num_records: stop after this many records in all (then one reader reads every
        partition, since the budget is shared).
      max_read_time: stop after this many seconds.
      idle_lag_seconds: how far behind the wall clock the watermark of an idle partition
        trails, so windows close while no events arrive.
      config: extra librdkafka settings (security, timeouts).
      batch_records: the most records in one element (a batch).
      window_seconds: batches are cut where event time enters the next window of this
        size (the pipeline's fixed windows); None cuts by size alone.
    """

    def __init__(self, bootstrap_servers: str, topic: str, group: str = "vectorstream",
                 start_from: str = "earliest", max_num_records: Optional[int] = None,
                 max_read_time: Optional[float] = None, idle_lag_seconds: float = 1.0,
                 config: Optional[Dict[str, str]] = None, partitions: Optional[List[int]] = None,
                 batch_records: int = 512, window_seconds: Optional[float] = None):
        if start_from not in ("earliest", "latest"):
            raise ValueError(f"start_from must be 'earliest' or 'latest', got {start_from!r}")
        if batch_records < 1:
            raise ValueError(f"batch_records must be at least 1, got {batch_records}")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group = group
        self.start_from = start_from
        self.max_num_records = max_num_records
        self.max_read_time = max_read_time
        self.idle_lag_seconds = idle_lag_seconds
        self.config = dict(config or {})
        self.partitions = partitions
        self.batch_records = batch_records
        self.window_seconds = window_seconds

    @property
    def bounded(self) -> bool:
        return self.max_num_records is not None or self.max_read_time is not None

    def _copy(self, partitions, budgeted: bool = True) -> "KafkaSource":
        """This source over `partitions`; without the bounded-run budget when not
        `budgeted` (the partition readers of a reader that owns the budget)."""
        clone = copy.copy(self)
        clone.partitions = partitions
        if not budgeted:
            clone.max_num_records = clone.max_read_time = None
        return clone

    def split(self, desired_num_splits, options=None):
        if self.max_num_records is not None:
            # A record budget is shared by all partitions, so one reader reads them all
            # (as Beam's ReadFromKafka does for a bounded read).
            return [self]
        partitions = self.partitions or partitions_of(self.bootstrap_servers, self.topic,
                                                      self.config)
        return [self._copy([p]) for p in partitions]

    def _consumer_config(self) -> dict:
        return {**client_config(self.bootstrap_servers, self.config), "group.id": self.group,
                "enable.auto.commit": False, "enable.partition.eof": False,
                "auto.offset.reset": self.start_from}

    def create_reader(self, options, checkpoint_mark):
        if self.partitions is None or len(self.partitions) != 1:
            # Not split (a record budget, or a runner that does not split): one reader for
            # every partition.
            return _MultiPartitionReader(self, checkpoint_mark)
        return KafkaPartitionReader(self, self.partitions[0], checkpoint_mark)

    def get_checkpoint_mark_coder(self):
        return coders.PickleCoder()

    def default_output_coder(self):
        return coders.registry.get_coder(object)


class KafkaPartitionReader(UnboundedReader):
    """Reads one partition in batches (lists of KafkaMessage, one window each) without
    blocking for long: advance() returns False when nothing arrives within its wait."""

    def __init__(self, source: KafkaSource, partition: int,
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

    # -- lifecycle
    def start(self) -> bool:
        self.start_consumer()
        return self.advance()

    def start_consumer(self) -> None:
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING, OFFSET_END
        src = self._source
        if src.max_read_time is not None and self._deadline is None:
            self._deadline = time.time() + src.max_read_time
        self._consumer = Consumer(src._consumer_config())
        tp = TopicPartition(src.topic, self._partition)
        offset = self._next_offset
        if offset < 0:
            committed = committed_offsets(self._consumer, [tp]).get(self._partition, -1)
            if committed >= 0:
                offset = committed
            else:
                offset = OFFSET_BEGINNING if src.start_from == "earliest" else OFFSET_END
        self._consumer.assign([TopicPartition(src.topic, self._partition, offset)])

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- reading
    def _budget_left(self) -> bool:
        if self._deadline is not None and time.time() >= self._deadline:
            return False
        return True

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
        most = min(limit or self._source.batch_records, self._source.batch_records)
        batch: List[KafkaMessage] = []
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
            kafka_ts = msg.timestamp()[1]
            event_ms = _event_time_ms(msg.value())
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
        self._next_offset = batch[-1].offset + 1
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

    def __init__(self, source: KafkaSource, mark: Optional["_MultiMark"]):
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


class BatchMessages(beam.PTransform):
    """KafkaMessage elements, timestamped with event time → batches (lists) of them, one
    fixed window each, as the native reader emits them (Beam's BatchElements, per window
    and bundle; by size alone when `window_seconds` is None, as the reader then cuts
    them). For sources that give one message an element: KafkaIO, tests."""

    def __init__(self, window_seconds: Optional[float], batch_records: int = 512):
        super().__init__()
        self._window_seconds = window_seconds
        self._batch_records = batch_records

    def expand(self, messages):
        if self._window_seconds:
            messages = messages | "Window" >> beam.WindowInto(
                beam.window.FixedWindows(self._window_seconds))
        return messages | "Batch" >> beam.BatchElements(min_batch_size=self._batch_records,
                                                        max_batch_size=self._batch_records)


class ReadEvents(beam.PTransform):
    """Kafka → batches (lists) of KafkaMessage, each batch within one fixed window and
    timestamped with its records' event time.

    The one place the reader is chosen: 'python' is the native source above; 'java' is
    Beam's ReadFromKafka (KafkaIO, a cross-language transform run through Beam's IO
    expansion service jar), for runners with JVM workers, batched after reading. Both
    give the same records.
    """

    def __init__(self, source: KafkaSource, reader: str = "python",
                 java_environment: Optional[str] = None, bundle_seconds: float = 1.0,
                 legacy_read: bool = False):
        super().__init__()
        self._bundle_seconds = bundle_seconds
        if reader not in ("python", "java"):
            raise ValueError(f"kafka reader must be 'python' or 'java', not {reader!r}")
        self._source = source
        self._reader = reader
        self._java_environment = java_environment
        self._legacy_read = legacy_read

    def expand(self, pbegin):
        if self._reader == "java":
            return (pbegin
                    | "KafkaIO" >> _ReadWithKafkaIO(self._source, self._java_environment,
                                                    self._legacy_read)
                    | "Batches" >> BatchMessages(self._source.window_seconds,
                                                 self._source.batch_records))
        from apache_beam.io.unbounded_source import ReadFromUnboundedSource
        # While data flows a bundle lasts up to bundle_seconds (its end flushes the
        # batches); an idle source is polled 4 times a second and each poll ends a bundle,
        # which bounds the latency a trickle of events sees.
        return pbegin | "Read Kafka partitions" >> ReadFromUnboundedSource(
            self._source, poll_interval=0.25, max_read_time_seconds=self._bundle_seconds)


def _from_kafka_row(row) -> KafkaMessage:
    """A ReadFromKafka(with_metadata=True) row (KafkaIO's ByteArrayKafkaRecord: topic,
    partition, offset, timestamp, key, value, headers, timestampType…) → KafkaMessage,
    stamped with event time."""
    message = KafkaMessage(row.topic, row.partition, row.offset, row.key, row.value,
                           row.timestamp)
    event_ms = _event_time_ms(message.value)
    return beam.window.TimestampedValue(
        message, (event_ms if event_ms is not None else row.timestamp) / 1000.0)


class _ReadWithKafkaIO(beam.PTransform):
    """Beam's Java KafkaIO: same topic, group, start and bounds as the native source; offsets
    committed when the runner finalizes a checkpoint. Secrets given by reference are
    resolved here, at launch, because the Java consumer gets its config as data."""

    def __init__(self, source: KafkaSource, java_environment: Optional[str] = None,
                 legacy_read: bool = False):
        super().__init__()
        self._source = source
        self._java_environment = java_environment
        self._legacy_read = legacy_read

    def expand(self, pbegin):
        from apache_beam.io.kafka import ReadFromKafka
        from vectorstream.runners.java import kafka_expansion_service
        src = self._source
        # Offsets are committed only when the runner finalizes a checkpoint: the consumer's
        # own auto-commit (on in the consumers KafkaIO makes from this config) would commit
        # what was polled but not yet stored, and a task restarted before its first
        # checkpoint would then skip those records.
        config = {**resolve_secrets(src.config), "bootstrap.servers": src.bootstrap_servers,
                  "group.id": src.group, "auto.offset.reset": src.start_from,
                  "enable.auto.commit": "false"}
        return (pbegin
                | "ReadFromKafka" >> ReadFromKafka(
                    consumer_config=config, topics=[src.topic], with_metadata=True,
                    commit_offset_in_finalize=True,
                    timestamp_policy=ReadFromKafka.create_time_policy,
                    max_num_records=src.max_num_records,
                    max_read_time=(int(src.max_read_time) if src.max_read_time else None),
                    expansion_service=kafka_expansion_service(self._java_environment,
                                                              self._legacy_read))
                | "To KafkaMessage" >> beam.Map(_from_kafka_row))


def send(producer, topic: str, value: Optional[bytes], key: Optional[bytes] = None,
         on_delivery=None) -> None:
    """Produces one message, waiting while the producer's local queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


# ---------------------------------------------------------------------------------------
# Dead letters to a Kafka topic.

class WriteToKafkaTopic(beam.DoFn):
    """Produces (key, value) byte pairs to a topic; flushed at the end of each bundle so a
    bundle's dead letters are durable before its offsets are committed."""

    def __init__(self, bootstrap_servers: str, topic: str,
                 config: Optional[Dict[str, str]] = None):
        self._bootstrap_servers = bootstrap_servers
        self._extra = dict(config or {})
        self._topic = topic
        self._producer = None
        self._failed: list = []
        from apache_beam.metrics import Metrics
        self._written = Metrics.counter("vectorstream", "dead_letters")

    def setup(self):
        from confluent_kafka import Producer
        self._producer = Producer({**client_config(self._bootstrap_servers, self._extra),
                                   "linger.ms": 5,
                                   "message.max.bytes": 16_000_000})

    def _on_delivery(self, err, msg):
        if err is not None:
            self._failed.append(err)

    def process(self, element):
        key, value = element
        self._written.inc()
        send(self._producer, self._topic, value, key, self._on_delivery)

    def finish_bundle(self):
        remaining = self._producer.flush(60)
        if remaining or self._failed:
            errors, self._failed = self._failed, []
            raise RuntimeError(f"could not write {remaining + len(errors)} message(s) to "
                               f"Kafka topic {self._topic}: {errors[:3]}")

    def teardown(self):
        if self._producer is not None:
            self._producer.flush(10)
