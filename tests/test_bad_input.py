"""A corpus of malformed messages mixed into valid traffic, through the whole pipeline on
the real broker, model and store: every malformed message ends in dead letters with a
reason that names the problem, every valid event is stored, and the run finishes."""
import json
import uuid

from conftest import consume_all
from test_end_to_end import COLLECTION, bounded_argv
from vectorstream.io.produce import generate, produce
from vectorstream.io.qdrant import open_store
from vectorstream.pipeline.launch import run
from vectorstream.transforms.events import point_id
from vectorstream.transforms.parse import original_bytes


def corpus(template):
    def event(**changes):
        return {**template, "event_id": str(uuid.uuid4()), **changes}

    def product(**changes):
        return event(product={**template["product"], **changes})

    def enc(obj):
        return json.dumps(obj, ensure_ascii=False).encode()

    text = enc(event())
    without = {k: v for k, v in event().items() if k != "timestamp"}
    return [
        (b'{"event_id": "\xff\xfe"}', "not UTF-8"),
        (text[: len(text) // 2], "invalid JSON"),
        (text + b" trailing", "invalid JSON"),
        (b"[1, 2, 3]", "not a JSON object: got list"),
        (b"42", "not a JSON object: got int"),
        (b'"just a string"', "not a JSON object: got str"),
        (b"null", "not a JSON object"),
        (b"", "empty message"),
        (enc({k: v for k, v in event().items() if k != "product"}), "product: Field required"),
        (enc(event(product="a phone")), "product: Input should be an object"),
        (enc(product(price=-5)), "product.price: Input should be greater than or equal to 0"),
        (enc(product(price=float("nan"))), "product.price: Input should be a finite number"),
        (enc(product(price=float("inf"))), "product.price: Input should be a finite number"),
        (enc(product(price="12.50")), "product.price: Input should be a valid number"),
        (enc(event(quantity="two")), "quantity: Input should be a valid integer"),
        (enc(event(quantity=-1)), "quantity: Input should be greater than or equal to 0"),
        (enc(event(event_type="teleport")), "event_type: Input should be"),
        (enc(event(timestamp="yesterday")), "timestamp: Input should be a valid datetime"),
        (enc(without), "timestamp: Field required"),
        (enc(event(event_id="")), "event_id: String should have at least 1 character"),
        (enc(product(name="   ")), "product.name: Value error, must not be blank"),
        (enc(product(description="x" * 50_000)), "product.description: String should have at most"),
        (enc(event(padding="y" * 5_000_000)), "message too large"),
    ]


def test_malformed_corpus_is_dead_lettered_and_valid_traffic_stored(kafka, topic, tmp_path):
    valid_msgs = list(generate(60, products=20, seed=41))
    template = valid_msgs[0][2]
    bad = corpus(template)
    # Valid on purpose: emoji and right-to-left text, unknown extra fields, an exact replay.
    special = {**template, "event_id": str(uuid.uuid4()), "gift_note": "🎁 for you",
               "product": {**template["product"], "name": "هاتف ذكي 📱 טלפון",
                           "description": "شاشة كبيرة, סוללה חזקה, 🔋 48h"}}
    replay = valid_msgs[1]
    # A different event reusing a stored event_id: refused by the sink, first one kept.
    # Keyed like the first (by event_id), so it lands after it in the same partition:
    # Kafka orders a partition, not the topic, and the reader takes a partition's records
    # a batch at a time, so across partitions "first" would not be defined.
    conflict = {**valid_msgs[2][2], "user_id": "someone-else"}
    conflict_bytes = json.dumps(conflict, ensure_ascii=False).encode()

    messages = ([(m[0], m[1]) for m in valid_msgs]
                + [(b"bad", raw) for raw, _ in bad]
                + [(b"special", json.dumps(special, ensure_ascii=False).encode()),
                   (replay[0], replay[1]), (valid_msgs[2][0], conflict_bytes)])
    produce(kafka, topic, messages)
    path = str(tmp_path / "q")
    run(bounded_argv(kafka, topic, len(messages), ["--qdrant_path", path]))

    store = open_store(path=path)
    try:
        stored = {h.id: h.payload for h in store.scroll(COLLECTION)}
    finally:
        store.close()
    expected = {point_id(m[2]["event_id"]) for m in valid_msgs} | {point_id(special["event_id"])}
    assert set(stored) == expected
    assert stored[point_id(special["event_id"])]["product"]["name"] == "هاتف ذكي 📱 טלפון"
    assert stored[point_id(conflict["event_id"])]["user_id"] == valid_msgs[2][2]["user_id"]

    letters = [json.loads(m.value()) for m in consume_all(kafka, f"{topic}.dlq", len(bad) + 1)]
    by_original = {original_bytes(r): r for r in letters}
    assert len(letters) == len(bad) + 1
    for raw, reason in bad:
        assert raw in by_original, f"no dead letter for {raw[:60]!r}"
        assert reason in by_original[raw]["reason"], (reason, by_original[raw]["reason"])
        assert by_original[raw]["stage"] == "parse"
    duplicate = [r for r in letters if r["stage"] == "write"]
    assert len(duplicate) == 1 and "duplicate event_id" in duplicate[0]["reason"]
    assert json.loads(original_bytes(duplicate[0]))["user_id"] == "someone-else"
