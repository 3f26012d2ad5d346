"""Products and users as vectors of their own, on both stores (the embedded Edge shard and
qdrant-client's local mode for the server code path), from real runs over the real broker
with the real model: one product point per distinct product, counts that a replay does not
double, profiles that another order of the same events does not change, the catalog topic
(an update re-embeds, a tombstone deletes), and recommendations from them."""
import json
import random
import uuid

import numpy as np
import pytest

from vectorstream.io.kafka_admin import ensure_topic
from vectorstream.io.produce import generate, produce
from vectorstream.io.qdrant import open_store
from vectorstream.pipeline.launch import run
from vectorstream.transforms.entities import (last_events, product_point_id, profile,
                                              user_point_id)

EVENTS = "ecommerce_events"


def test_a_profile_is_a_pure_function_of_its_events():
    rng = random.Random(3)
    events = [{"event_id": f"e{i}", "event_type": rng.choice(["view", "purchase", "search",
                                                               "add_to_cart"]),
               "timestamp": f"2026-12-0{1 + i % 4}T10:{i:02d}:00.000Z", "product_id": f"p{i}",
               "vector": [rng.random() for _ in range(4)]} for i in range(30)]
    first = profile(events, 10)
    shuffled = events[:] + events[:5]  # duplicated, and in another order
    rng.shuffle(shuffled)
    again = profile(shuffled, 10)
    assert np.allclose(first[0], again[0]) and first[1] == again[1]
    assert [e["event_id"] for e in last_events(events, 3)] == ["e27", "e23", "e19"]
    assert first[1]["events"] == 10 and abs(np.linalg.norm(first[0]) - 1) < 1e-9
    # only a removal weighs nothing: no profile
    assert profile([dict(events[0], event_type="remove_from_cart")], 10) is None


@pytest.fixture(params=["edge", "client-local"])
def store_flags(request, tmp_path):
    if request.param == "edge":
        path = str(tmp_path / "edge")
        return ["--qdrant_path", path], lambda: open_store(path=path)
    url = f"local://{tmp_path / 'local'}"
    return ["--qdrant_url", url], lambda: open_store(url=url)


def _run(kafka, topic, group, flags, count, *extra):
    run(["--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", group,
         "--max_num_records", str(count), "--progress_seconds", "0", "--window_seconds", "5",
         "--dead_letter_path", "/dev/null", *flags, *extra])


def _profiles(store, users):
    return {u: store.retrieve(f"{EVENTS}_users", [user_point_id(u)], with_vector=True)[0]
            for u in users}


def test_products_once_each_counts_and_profiles_replay_safe(kafka, tmp_path, store_flags):
    flags, opener = store_flags
    topic = f"ent-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=2)
    messages = list(generate(240, products=15, seed=17, bad_fraction=0.05))
    for m in messages:  # a few users, so each has history
        if m[2] is not None:
            m[2]["user_id"] = f"user{hash(m[2]['event_id']) % 4}"
    messages = [(m[0], json.dumps(m[2]).encode(), m[2]) if m[2] else m for m in messages]
    valid = [m[2] for m in messages if m[2] is not None]
    produce(kafka, topic, messages)
    _run(kafka, topic, f"a-{topic}", flags, len(messages))
    store = opener()
    try:
        products = {e["product"]["id"] for e in valid}
        assert store.count(f"{EVENTS}_products") == len(products)
        stored = {h.payload["product_id"]: h.payload for h in store.scroll(f"{EVENTS}_products")}
        for pid in products:
            mine = [e for e in valid if e["product"]["id"] == pid]
            assert stored[pid]["events"] == len(mine)
            assert stored[pid]["counts"]["purchase"] == sum(e["event_type"] == "purchase"
                                                            for e in mine)
            assert stored[pid]["last_seen"] == max(e["timestamp"] for e in mine)
        users = sorted({e["user_id"] for e in valid})
        before = _profiles(store, users)
    finally:
        store.close()
    # The same topic again from the start (a new group): every event a replay.
    _run(kafka, topic, f"b-{topic}", flags, len(messages))
    store = opener()
    try:
        again = {h.payload["product_id"]: h.payload for h in store.scroll(f"{EVENTS}_products")}
        assert {p: v["counts"] for p, v in again.items()} == \
            {p: v["counts"] for p, v in stored.items()}, "a replay doubles no count"
        after = _profiles(store, users)
        for user in users:  # (a replayed event is embedded again, in another batch:
            # float32 noise of ~1e-8, not a change)
            assert np.allclose(before[user].vector, after[user].vector, atol=1e-6)
            assert before[user].payload["event_ids"] == after[user].payload["event_ids"]
    finally:
        store.close()


def test_a_profile_is_the_same_whatever_order_the_events_came_in(kafka, tmp_path):
    messages = [m for m in generate(120, products=12, seed=5) if m[2] is not None]
    for m in messages:
        m[2]["user_id"] = "same-user"
    messages = [(m[0], json.dumps(m[2]).encode()) for m in messages]
    vectors = []
    for order in range(2):
        topic = f"order-{uuid.uuid4().hex[:8]}"
        ensure_topic(kafka, topic, partitions=2)
        shuffled = messages[:]
        random.Random(order).shuffle(shuffled)
        produce(kafka, topic, shuffled)
        path = str(tmp_path / f"q{order}")
        _run(kafka, topic, f"g-{topic}", ["--qdrant_path", path], len(shuffled))
        store = open_store(path=path)
        try:
            vectors.append(store.retrieve(f"{EVENTS}_users", [user_point_id("same-user")],
                                          with_vector=True)[0].vector)
        finally:
            store.close()
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)


def test_the_catalog_topic_keeps_the_products(kafka, tmp_path, store_flags):
    """Catalog records (keyed by product id) put products in the collection; a changed
    description is embedded again, a tombstone deletes the product."""
    flags, opener = store_flags
    topic, catalog = f"ev-{uuid.uuid4().hex[:8]}", f"cat-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    ensure_topic(kafka, catalog, partitions=1)

    def record(pid, name, description):
        return (pid.encode(), json.dumps({"id": pid, "name": name, "description": description,
                                          "category": "kitap", "price": 10.0}).encode())
    produce(kafka, catalog, [record("c1", "Suç ve Ceza", "Dostoyevski, ciltli"),
                             record("c2", "Küçük Prens", "resimli çocuk kitabı"),
                             record("c3", "Temiz Kod", "yazılım zanaatı")])
    produce(kafka, topic, [m for m in generate(5, seed=8)])
    _run(kafka, topic, f"g1-{topic}", flags, 5, "--catalog_topic", catalog)
    def stored_products():
        store = opener()
        try:
            return {h.payload["product_id"]: h for h in store.retrieve(
                f"{EVENTS}_products", [product_point_id(p) for p in ("c1", "c2", "c3")],
                with_vector=True)}
        finally:
            store.close()
    first = stored_products()
    assert set(first) == {"c1", "c2", "c3"}
    produce(kafka, catalog, [record("c1", "Suç ve Ceza", "Rus edebiyatı, cep boy"),
                             (b"c2", None)])
    produce(kafka, topic, [m for m in generate(5, seed=9)])
    _run(kafka, topic, f"g1-{topic}", flags, 5, "--catalog_topic", catalog)
    second = stored_products()
    assert set(second) == {"c1", "c3"}, "the tombstone deleted c2"
    assert second["c1"].payload["description"] == "Rus edebiyatı, cep boy"
    assert second["c1"].payload["text_hash"] != first["c1"].payload["text_hash"]
    assert not np.allclose(second["c1"].vector, first["c1"].vector), "embedded again"
    assert np.allclose(second["c3"].vector, first["c3"].vector)


def test_recommend_for_a_user_from_their_profile_ranks_a_hand_made_history(kafka, tmp_path):
    """A reader of Turkish classics: what they bought is left out, and the products the
    profile finds nearest are books, not the headphones they glanced at once."""
    import subprocess
    import sys
    from vectorstream.io import recommend
    from vectorstream.io.produce import catalog, make_event
    items = {p["name"]: p for p in catalog(60)}
    rng = random.Random(2)
    history = [("Suç ve Ceza", "purchase"), ("Kürk Mantolu Madonna", "view"),
               ("Kürk Mantolu Madonna", "add_to_cart"), ("The Pragmatic Programmer", "view"),
               ("Kablosuz Kulaklık", "view"), ("Suç ve Ceza Kompakt 1", "view")]
    messages = []
    for i, (name, kind) in enumerate(history):
        event = make_event(rng, items[name])
        event.update(user_id="reader", event_type=kind,
                     timestamp=f"2026-12-04T10:0{i}:00.000Z")
        messages.append((event["event_id"].encode(), json.dumps(event).encode()))
    others = [m for m in generate(200, products=60, seed=4)]
    topic = f"rec-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    produce(kafka, topic, messages + others)
    path = str(tmp_path / "q")
    _run(kafka, topic, f"g-{topic}", ["--qdrant_path", path], len(messages) + len(others))
    store = open_store(path=path)
    try:
        recs, basis = recommend.for_user_profile(store, EVENTS, f"{EVENTS}_products",
                                                 f"{EVENTS}_users", "reader", limit=5)
    finally:
        store.close()
    names = [r.product["name"] for r in recs]
    assert items["Suç ve Ceza"]["id"] in basis.excluded_products
    assert "Suç ve Ceza" not in names and "Kürk Mantolu Madonna" not in names
    assert sum(r.product["category"] == "kitap" for r in recs) >= 4, names
    proc = subprocess.run([sys.executable, "-m", "vectorstream", "recommend", "--user",
                           "reader", "--qdrant_path", path, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["from"]["method"] == "profile" and len(out["recommendations"]) == 5
    proc = subprocess.run([sys.executable, "-m", "vectorstream", "recommend", "--user",
                           "nobody", "--qdrant_path", path], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "no profile of user 'nobody'" in proc.stderr
