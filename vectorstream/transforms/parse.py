"""ParseEvents: Kafka messages → validated events, and dead letters for everything else.

The dead-letter record is one JSON object for every stage:
  {"stage", "reason", "original", "original_encoding", "time", "source": {topic, partition, offset}}
`original` is the message text, or base64 when the bytes are not UTF-8.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from vectorstream import telemetry
from vectorstream.transforms.batches import EventBatch
from vectorstream.transforms.events import (Event, InvalidEvent, format_time, parse_event,
                                            point_id)

DEAD_LETTERS = "dead_letters"


class ParsedEvent(NamedTuple):
    """A valid event, ready to embed: its point id, payload and the text to embed, the
    payload's size as JSON (the sink's byte budget; 0 when unknown) and the message's own
    bytes (what a later dead letter carries as its original)."""
    point_id: str
    payload: Dict[str, Any]
    text: str
    size: int = 0
    raw: Optional[bytes] = None
    delete: bool = False  # a tombstone: the point of this event id is deleted


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


def event_dead_letter(stage: str, reason: str, payload: Dict[str, Any],
                      raw: Optional[bytes] = None) -> Dict[str, Any]:
    """A dead letter for a valid event refused later (embed, write). Its original is the
    message's own bytes when known (else the event without what the pipeline added), so
    `deadletters replay` publishes it as it was, fingerprint and all."""
    if raw is None:
        event = {k: v for k, v in payload.items() if k not in ADDED_FIELDS}
        raw = json.dumps(event, ensure_ascii=False).encode()
    kafka = payload.get("kafka") or {}
    return dead_letter(stage, reason, raw,
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


# Fingerprints of the message bytes carry this prefix; a stored fingerprint without it
# was made by an earlier version from the re-serialised event, and cannot be compared.
FINGERPRINT_PREFIX = "r1:"

def fingerprint(raw: bytes) -> str:
    """A fingerprint of the message's bytes: a replay (the same message again) has the
    same one; a different event reusing an event_id does not, and the sink refuses it."""
    return FINGERPRINT_PREFIX + hashlib.sha1(raw).hexdigest()[:24]


def _parsed(message, event: Event) -> ParsedEvent:
    """The ParsedEvent of a validated message: its payload is the validated data itself
    (the event owns it from here), with the timestamp as text, a fingerprint of the
    message's bytes and where in Kafka it came from."""
    payload = event.data
    payload["timestamp"] = format_time(payload["timestamp"])
    payload["event_hash"] = fingerprint(message.value)
    payload["kafka"] = {"topic": message.topic, "partition": message.partition,
                        "offset": message.offset, "timestamp_ms": message.timestamp_ms}
    return ParsedEvent(point_id(payload["event_id"]), payload, event.text,
                       len(message.value) + 256, message.value)


def _tombstone(message) -> ParsedEvent:
    """A key with a null value: the point of that event id is deleted."""
    if not message.key:
        raise InvalidEvent("a tombstone (null value) without a key: there is no event id to "
                           "delete")
    try:
        event_id = message.key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent("a tombstone whose key is not UTF-8: there is no event id to "
                           "delete") from None
    return ParsedEvent(point_id(event_id), None, "", 0, None, True)


def parse_message(message) -> ParsedEvent:
    """One Kafka message → a ParsedEvent; raises InvalidEvent with the reason."""
    if message.value is None:
        return _tombstone(message)
    return _parsed(message, parse_event(message.value))


def parse_messages(messages: Sequence) -> Tuple[List[ParsedEvent], List[Tuple[Any, str]]]:
    """A batch of Kafka messages → (valid events, in order; [(message, reason)] for the
    rest)."""
    events: List[ParsedEvent] = []
    dead: List[Tuple[Any, str]] = []
    for message in messages:
        try:
            events.append(_parsed(message, parse_event(message.value))
                          if message.value is not None else _tombstone(message))
        except InvalidEvent as exc:
            dead.append((message, str(exc)))
    return events, dead


class _ParseFn(beam.DoFn):
    def __init__(self):
        self.valid = Metrics.counter("vectorstream", "events_valid")
        self.invalid = Metrics.counter("vectorstream", "events_invalid")
        self.read = Metrics.counter("vectorstream", "events_read")

    def process(self, messages):
        events, dead = parse_messages(messages)
        for message, reason in dead:
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(
                "parse", reason, message.value,
                {"topic": message.topic, "partition": message.partition,
                 "offset": message.offset}))
        self.read.inc(len(messages))
        self.valid.inc(len(events))
        if dead:
            self.invalid.inc(len(dead))
        telemetry.events_parsed(len(messages), len(events), len(dead))
        if events:
            yield EventBatch(events)


class ParseEvents(beam.PTransform):
    """Batches (lists) of KafkaMessage → batches of ParsedEvent (main output) and one
    dead-letter record per invalid message (`dead_letters`). A batch keeps its window."""

    def expand(self, batches):
        return batches | "Validate events" >> beam.ParDo(_ParseFn()).with_output_types(
            EventBatch).with_outputs(DEAD_LETTERS, main="events")
