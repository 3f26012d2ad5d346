"""Beam's Java ReadFromKafka (KafkaIO, a cross-language transform run through the
expansion service jar of `vectorstream.runners.java`), giving the same batches of
KafkaMessage as our Python source: for runners with JVM workers (Flink, Dataflow)."""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from vectorstream.config.options import UsageError
from vectorstream.config.secrets import resolve_secrets
from vectorstream.io.kafka_admin import TopicOffsets
from vectorstream.io.kafka_readers import KafkaMessage, event_time_ms
from vectorstream.io.kafka_source import BatchMessages, KafkaSource
from vectorstream.runners.java import kafka_expansion_service


def _from_kafka_row(row) -> KafkaMessage:
    """A ReadFromKafka(with_metadata=True) row (KafkaIO's ByteArrayKafkaRecord: topic,
    partition, offset, timestamp, key, value, headers, timestampType…) → KafkaMessage,
    stamped with event time."""
    message = KafkaMessage(row.topic, row.partition, row.offset, row.key, row.value,
                           row.timestamp)
    event_ms = event_time_ms(message.value)
    return beam.window.TimestampedValue(
        message, (event_ms if event_ms is not None else row.timestamp) / 1000.0)


class ReadWithKafkaIO(beam.PTransform):
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


class ReadEventsWithKafkaIO(beam.PTransform):
    """Kafka → batches (lists) of KafkaMessage, each within one fixed window, as
    `kafka_source.ReadEvents` gives them, read by KafkaIO and batched after reading."""

    def __init__(self, source: KafkaSource, java_environment: Optional[str] = None,
                 legacy_read: bool = False):
        super().__init__()
        self._source = source
        self._java_environment = java_environment
        self._legacy_read = legacy_read

    def expand(self, pbegin):
        return (pbegin
                | "KafkaIO" >> ReadWithKafkaIO(self._source, self._java_environment,
                                               self._legacy_read)
                | "Batches" >> BatchMessages(self._source.window_seconds,
                                             self._source.batch_records))


def kafkaio_record_bound(offsets: Optional[TopicOffsets], max_num_records: Optional[int]
                         ) -> Optional[int]:
    """The record bound to give KafkaIO where it bounds the read itself (Prism, Dataflow):
    --max_num_records, or with --ending_offsets latest the records between the group's
    start and the end offsets (the smaller of the two). KafkaIO splits a bound of N records
    over min(N / 10,000 + 1, partitions) readers (rounded up to divide the partitions),
    partitions dealt round-robin, each reader given an equal share: a reader whose
    partitions hold fewer than its share waits for ever. Where the offsets show that,
    refused in one line."""
    if offsets is None:
        return max_num_records
    available = offsets.available()
    total = sum(available.values())
    bound = total if max_num_records is None else min(total, max_num_records)
    if bound == 0:
        raise UsageError("--ending_offsets latest: there is nothing to read (the group is at "
                         "the end of every partition)")
    partitions = sorted(available)
    splits = min(min(100, bound // 10_000 + 1), len(partitions))
    while len(partitions) % splits:
        splits += 1
    shares = [bound // splits + (1 if i < bound % splits else 0) for i in range(splits)]
    held = [sum(available[p] for p in partitions[i::splits]) for i in range(splits)]
    short = [i for i in range(splits) if held[i] < shares[i]]
    if short:
        raise UsageError(
            f"KafkaIO bounds this read itself and would never end: it splits {bound} records "
            f"over {splits} readers ({shares[0]} each) and reader {short[0]}'s partitions "
            f"hold {held[short[0]]}; read with --kafka_reader python, or on Flink, where the "
            f"Java reader's bound is kept by the launcher")
    return bound
