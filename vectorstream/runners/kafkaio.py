"""Beam's Java ReadFromKafka (KafkaIO, a cross-language transform run through the
expansion service jar of `vectorstream.runners.java`), giving the same batches of
KafkaMessage as our Python source: for runners with JVM workers (Flink, Dataflow)."""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from vectorstream.config.secrets import resolve_secrets
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
