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
