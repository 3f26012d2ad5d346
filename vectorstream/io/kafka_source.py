"""Reading events from Kafka: our Python-native source and its readers.

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

import copy
from typing import Dict, List, Optional

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.unbounded_source import UnboundedSource

from vectorstream.io.kafka_admin import client_config, partitions_of
from vectorstream.io.kafka_readers import (KafkaMessage, KafkaPartitionReader, MessageBatch,
                                           _MultiPartitionReader)
from vectorstream.transforms.batches import BatchCoder

__all__ = ["BatchMessages", "KafkaMessage", "KafkaSource", "ReadEvents"]


class KafkaSource(UnboundedSource):
    """Reads one topic; splits into one sub-source per partition.

    Args:
      bootstrap_servers, topic, group: where to read, and the consumer group whose
        committed offsets say where to start and which finalized checkpoints advance.
      start_from: 'earliest' or 'latest', for partitions with no committed offset.
      max_num_records: stop after this many records in all (then one reader reads every
        partition, since the budget is shared).
      max_read_time: stop after this many seconds.
      ending_offsets: {partition: end offset}: read each partition up to that offset, then
        end (`--ending_offsets latest`: the end offsets when the run started; a partition
        not in it is read to offset 0, that is not at all).
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
                 batch_records: int = 512, window_seconds: Optional[float] = None,
                 ending_offsets: Optional[Dict[int, int]] = None):
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
        self.ending_offsets = dict(ending_offsets) if ending_offsets is not None else None

    @property
    def bounded(self) -> bool:
        return (self.max_num_records is not None or self.max_read_time is not None
                or self.ending_offsets is not None)

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
        return MessageBatchCoder()


class MessageBatchCoder(BatchCoder):
    """The reader's batches (`transforms.batches`): Beam samples a splittable read's outputs
    for its byte counters, the first ten elements of every bundle
    (`SdfProcessSizedElements` restarts the sampling per element), so nearly every batch
    was pickled once more just to be measured."""

    def to_type_hint(self):
        return MessageBatch


coders.registry.register_coder(MessageBatch, MessageBatchCoder)


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
    timestamped with its records' event time, through our Python source above. (Beam's
    Java ReadFromKafka gives the same records: `vectorstream.runners.kafkaio`.)"""

    def __init__(self, source: KafkaSource, bundle_seconds: float = 1.0):
        super().__init__()
        self._source = source
        self._bundle_seconds = bundle_seconds

    def expand(self, pbegin):
        from apache_beam.io.unbounded_source import ReadFromUnboundedSource
        # While data flows a bundle lasts up to bundle_seconds (its end flushes the
        # batches); an idle source is polled 4 times a second and each poll ends a bundle,
        # which bounds the latency a trickle of events sees.
        return pbegin | "Read Kafka partitions" >> ReadFromUnboundedSource(
            self._source, poll_interval=0.25, max_read_time_seconds=self._bundle_seconds)
