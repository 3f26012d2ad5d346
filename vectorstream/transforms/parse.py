"""ParseEvents: Kafka messages → validated events, and dead letters for everything else.

The dead-letter record is one JSON object for every stage:
  {"stage", "reason", "original", "original_encoding", "time", "source": {topic, partition, offset}}
`original` is the message text, or base64 when the bytes are not UTF-8.
"""
from __future__ import annotations

import base64
import hashlib
import datetime as dt
import json
from typing import Any, Dict, NamedTuple, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from vectorstream.pipeline.progress import TALLY
from vectorstream.transforms.events import InvalidEvent, format_time, parse_event

DEAD_LETTERS = "dead_letters"


class ParsedEvent(NamedTuple):
    """A valid event, ready to embed: its point id, payload and the text to embed, and the
    payload's size as JSON (the sink's byte budget; 0 when unknown)."""
    point_id: str
    payload: Dict[str, Any]
    text: str
    size: int = 0


def dead_letter(stage: str, reason: str, original: Optional[bytes],
                source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    record: Dict[str, Any] = {"stage": stage, "reason": reason,
                              "time": format_time(dt.datetime.now(dt.timezone.utc)),
                              "source": source or {}}
    if original is None:
        record.update(original=None, original_encoding="none")
    else:
        try:
            record.update(original=original.decode("utf-8"), original_encoding="utf-8")
        except UnicodeDecodeError:
            record.update(original=base64.b64encode(original).decode("ascii"),
                          original_encoding="base64")
    return record


# Payload fields the pipeline adds to the event (here and in the sink).
ADDED_FIELDS = ("kafka", "model", "ingested_at", "event_hash")


def event_dead_letter(stage: str, reason: str, payload: Dict[str, Any]) -> Dict[str, Any]:
    """A dead letter for a valid event refused later (embed, write). Its original is the
    event without what the pipeline added, so `deadletters replay` publishes it as it was."""
    event = {k: v for k, v in payload.items() if k not in ADDED_FIELDS}
    kafka = payload.get("kafka") or {}
    return dead_letter(stage, reason, json.dumps(event, ensure_ascii=False).encode(),
                       {k: kafka.get(k) for k in ("topic", "partition", "offset")})


def original_bytes(record: Dict[str, Any]) -> Optional[bytes]:
    """The message bytes a dead-letter record holds (for replay)."""
    if record.get("original") is None:
        return None
    if record.get("original_encoding") == "base64":
        return base64.b64decode(record["original"])
    return record["original"].encode("utf-8")


def encode_dead_letter(record: Dict[str, Any]) -> tuple:
    """(key, value) bytes for the dead-letter topic."""
    source = record.get("source") or {}
    key = f"{source.get('topic')}/{source.get('partition')}/{source.get('offset')}"
    return key.encode(), json.dumps(record, ensure_ascii=False).encode("utf-8")


def parse_message(message) -> "ParsedEvent":
    """One Kafka message → a ParsedEvent; raises InvalidEvent with the reason."""
    event = parse_event(message.value)
    payload = event.payload()
    # A fingerprint of the event's content: a replay has the same one, a different
    # event reusing the event_id does not (the sink refuses that one).
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    payload["event_hash"] = hashlib.sha1(canonical).hexdigest()[:20]
    payload["kafka"] = {"topic": message.topic, "partition": message.partition,
                        "offset": message.offset, "timestamp_ms": message.timestamp_ms}
    return ParsedEvent(event.point_id, payload, event.text, len(canonical) + 256)


class _ParseFn(beam.DoFn):
    def __init__(self):
        self.valid = Metrics.counter("vectorstream", "events_valid")
        self.invalid = Metrics.counter("vectorstream", "events_invalid")
        self.read = Metrics.counter("vectorstream", "events_read")

    def process(self, messages):
        events = []
        for message in messages:
            try:
                events.append(parse_message(message))
            except InvalidEvent as exc:
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(
                    "parse", str(exc), message.value,
                    {"topic": message.topic, "partition": message.partition,
                     "offset": message.offset}))
        invalid = len(messages) - len(events)
        self.read.inc(len(messages))
        self.valid.inc(len(events))
        TALLY.add("read", len(messages))
        if invalid:
            self.invalid.inc(invalid)
            TALLY.add("invalid", invalid)
        if events:
            yield events


class ParseEvents(beam.PTransform):
    """Batches (lists) of KafkaMessage → batches of ParsedEvent (main output) and one
    dead-letter record per invalid message (`dead_letters`). A batch keeps its window."""

    def expand(self, batches):
        return batches | "Validate events" >> beam.ParDo(_ParseFn()).with_outputs(
            DEAD_LETTERS, main="events")
