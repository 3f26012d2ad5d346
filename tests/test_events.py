"""The event model: what is accepted, what is refused and why, and the point ids."""
import json

import pytest

from vectorstream.transforms.events import InvalidEvent, parse_event, point_id

GOOD = {"event_id": "3f2b6c1e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "timestamp": "2024-01-15T10:30:00Z",
        "user_id": "user123", "event_type": "purchase", "session_id": "session789",
        "product": {"id": "p-1", "name": "Kablosuz Kulaklık", "description": "Gürültü engelleme",
                    "category": "elektronik", "price": 1299.99},
        "quantity": 2, "total_amount": 2599.98, "payment_method": "credit_card"}


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def with_product(**changes):
    return {**GOOD, "product": {**GOOD["product"], **changes}}


def test_seed_event_is_accepted_and_extra_fields_are_kept():
    event = parse_event(dumps({**GOOD, "coupon": "YAZ10", "search_query": None}))
    payload = event.payload()
    assert payload["coupon"] == "YAZ10"
    assert payload["timestamp"] == "2024-01-15T10:30:00.000Z"
    assert payload["product"]["name"] == "Kablosuz Kulaklık"
    assert event.text == "Kablosuz Kulaklık. Gürültü engelleme"


def test_naive_and_offset_timestamps_become_utc():
    assert parse_event(dumps({**GOOD, "timestamp": "2024-01-15T10:30:00"})).payload()[
        "timestamp"] == "2024-01-15T10:30:00.000Z"
    assert parse_event(dumps({**GOOD, "timestamp": "2024-01-15T13:30:00+03:00"})).payload()[
        "timestamp"] == "2024-01-15T10:30:00.000Z"


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty message"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"event_id": "x", ', "invalid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"42", "not a JSON object"),
    (dumps({k: v for k, v in GOOD.items() if k != "product"}), "product: Field required"),
    (dumps(with_product(price=-1)), "product.price"),
    (dumps(with_product(price="12")), "product.price"),
    (dumps(with_product(price=float("nan"))), "product.price: Input should be a finite number"),
    (dumps({**GOOD, "quantity": "two"}), "quantity"),
    (dumps({**GOOD, "event_type": "teleport"}), "event_type"),
    (dumps({**GOOD, "timestamp": "yesterday"}), "timestamp"),
    (dumps(with_product(name="   ")), "product.name"),
    (dumps({**GOOD, "event_id": ""}), "event_id"),
])
def test_malformed_messages_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)
    assert reason in str(err.value)


def test_point_id_is_derived_from_event_id():
    assert point_id("e-1") == point_id("e-1")
    assert point_id("e-1") != point_id("e-2")
    assert parse_event(dumps(GOOD)).point_id == point_id(GOOD["event_id"])


def test_point_id_is_uuid5_of_the_event_id():
    import uuid
    from vectorstream.transforms.events import POINT_NAMESPACE
    for event_id in ("e-1", "", "3f2b6c1e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "olay-ğüşıöç-📦", "x" * 500):
        assert point_id(event_id) == str(uuid.uuid5(POINT_NAMESPACE, event_id))


BAD = test_malformed_messages_are_refused_with_a_reason.pytestmark[0].args[1]


def test_a_batch_is_parsed_in_one_call_with_each_reason_as_alone():
    """parse_messages over good and malformed messages mixed (broken JSON, and a message
    holding two JSON values between refused ones, which must not shift the others): each
    message gets what parse_event gives it alone, and the valid ones keep their order."""
    from vectorstream.io.kafka_source import KafkaMessage
    from vectorstream.transforms.parse import parse_messages
    raws = []
    for i, (raw, _reason) in enumerate(BAD):
        raws += [dumps({**GOOD, "event_id": f"good-{i}"}), raw]
        if i == 3:
            raws += [b'{"a": 1}, ' + dumps({**GOOD, "event_id": "hidden"}),
                     dumps({**GOOD, "event_id": f"good-{i}-b"})]
    messages = [KafkaMessage("t", 0, offset, None, raw, 1) for offset, raw in enumerate(raws)]
    parsed, dead = parse_messages(messages)
    reasons = {m.offset: reason for m, reason in dead}
    expected_ids = []
    for message in messages:
        try:
            expected = parse_event(message.value)
        except InvalidEvent as exc:
            assert reasons.get(message.offset) == str(exc), message.value[:80]
        else:
            assert message.offset not in reasons, (message.value[:80], reasons[message.offset])
            expected_ids.append(expected.point_id)
    assert [p.point_id for p in parsed] == expected_ids
    assert len(parsed) + len(dead) == len(messages)


def test_the_payload_is_the_message_with_its_time_in_utc_and_a_fingerprint_of_its_bytes():
    from vectorstream.io.kafka_source import KafkaMessage
    from vectorstream.transforms.parse import FINGERPRINT_PREFIX, parse_messages
    event = {**GOOD, "timestamp": "2024-01-15T13:30:00+03:00", "total_amount": 2600,
             "coupon": {"code": "YAZ10"}, "product": {**GOOD["product"], "price": 1300}}
    messages = [KafkaMessage("t", 0, 7, b"k", dumps(event), 123),
                KafkaMessage("t", 0, 8, b"k", b"{not json", 124)]
    parsed, dead = parse_messages(messages)
    assert [(m.offset, reason.split(":")[0]) for m, reason in dead] == [(8, "invalid JSON")]
    (one,) = parsed
    assert one.point_id == point_id(GOOD["event_id"])
    assert one.payload["timestamp"] == "2024-01-15T10:30:00.000Z"
    assert one.payload["total_amount"] == 2600.0 and isinstance(one.payload["total_amount"], float)
    assert one.payload["product"]["price"] == 1300.0
    assert one.payload["coupon"] == {"code": "YAZ10"}
    assert one.payload["kafka"] == {"topic": "t", "partition": 0, "offset": 7,
                                    "timestamp_ms": 123}
    assert one.payload["event_hash"].startswith(FINGERPRINT_PREFIX)
    assert one.raw == messages[0].value
    expected = parse_event(dumps(event)).payload()
    assert {k: v for k, v in one.payload.items() if k not in ("kafka", "event_hash")} == expected
