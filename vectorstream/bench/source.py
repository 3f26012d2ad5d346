"""The events of one run as a pipeline's input: from Kafka or pre-encoded, stamped with
the time they were read."""
from __future__ import annotations

import pickle
import threading
import time
import typing
from typing import Dict, List, Optional

import apache_beam as beam


class Clock:
    """What one child measures: when the first event was read, when each was stored."""
    first_read: Optional[float] = None
    stored: List[tuple] = []  # (time stored, latency s)
    lock = threading.Lock()

    @classmethod
    def on_stored(cls, now, latencies):
        with cls.lock:
            cls.stored.extend((now, v) for v in latencies)


def _stamp(batch):
    """Stamps each message of a batch with the time the pipeline read it (latency starts
    here)."""
    now = time.time()
    if Clock.first_read is None:
        Clock.first_read = now
    millis = int(now * 1000)
    return [message._replace(timestamp_ms=millis) for message in batch]


class _EmitChunk(beam.DoFn):
    """Pre-encoded messages, one chunk per input element, in batches as the Kafka reader
    yields them."""

    def __init__(self, path: str, topic: str, chunk: int, events: int, batch: int):
        self._path, self._topic, self._chunk, self._events = path, topic, chunk, events
        self._batch = batch
        self._messages = None

    def setup(self):
        with open(self._path, "rb") as fh:
            self._messages = pickle.load(fh)

    def process(self, index):
        from vectorstream.io.kafka_source import KafkaMessage
        start = index * self._chunk
        end = min(start + self._chunk, self._events, len(self._messages))
        for first in range(start, end, self._batch):
            yield [KafkaMessage(self._topic, 0, offset, *self._messages[offset], 0)
                   for offset in range(first, min(first + self._batch, end))]


class BenchSource(beam.PTransform):
    """The events of one benchmark run, in batches (lists of KafkaMessage) as our reader
    gives them: read from Kafka, or pre-encoded, then stamped."""

    def __init__(self, spec: Dict, batch: int = 512, window_seconds: Optional[float] = None):
        super().__init__()
        self._spec = spec
        self._batch = batch
        self._window_seconds = window_seconds

    def expand(self, pbegin):
        spec = self._spec
        if spec["source"] == "kafka":
            from vectorstream.io.kafka_source import KafkaSource, ReadEvents
            messages = pbegin | "Read from Kafka" >> ReadEvents(KafkaSource(
                spec["bootstrap"], spec["topic"], group=spec["group"], start_from="earliest",
                max_num_records=spec["events"], batch_records=self._batch,
                window_seconds=self._window_seconds))
        else:
            chunk = max(1000, self._batch)
            messages = (pbegin
                        | "Chunks" >> beam.Create(range((spec["events"] + chunk - 1) // chunk))
                        | "Pre-encoded messages" >> beam.ParDo(
                            _EmitChunk(spec["messages"], spec["topic"], chunk,
                                       spec["events"], self._batch)))
        return messages | "Stamp read time" >> beam.Map(_stamp).with_output_types(typing.Any)
