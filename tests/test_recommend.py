"""Recommendations on a small hand-made history, with the real model's vectors, on both
store backends: the embedded Qdrant Edge shard and qdrant-client's local mode (the server
code path); and `vectorstream recommend` as a user runs it."""
import json
import subprocess
import sys

import pytest

from vectorstream.io import recommend
from vectorstream.io.qdrant import Point, open_store
from vectorstream.transforms.events import point_id

PRODUCTS = {
    "run-1": ("Trail running shoes", "Grippy outsole and cushioned midsole for long runs"),
    "run-2": ("Running socks", "Breathable cushioned socks for marathon running"),
    "run-3": ("Running hydration vest", "Lightweight vest with water bottles for trail runners"),
    "yoga-1": ("Non-slip yoga mat", "Thick mat for yoga and pilates practice"),
    "yoga-2": ("Cork yoga block", "Firm block to support yoga poses and stretching"),
    "coffee-1": ("Burr coffee grinder", "Grinds coffee beans evenly for espresso"),
    "coffee-2": ("Pour-over coffee kettle", "Gooseneck kettle for brewing filter coffee"),
    "pan": ("Stainless steel saucepan", "Saucepan with lid for the kitchen stove"),
    "chair": ("Ergonomic office chair", "Adjustable desk chair with lumbar support"),
    "hose": ("Garden hose", "Flexible hose for watering plants in the garden"),
}
# user-1 bought running shoes, put a yoga mat in the cart, looked at a coffee grinder.
HISTORY = [("purchase", "run-1", "2024-05-01T10:00:00Z"),
           ("add_to_cart", "yoga-1", "2024-05-01T10:05:00Z"),
           ("view", "coffee-1", "2024-05-01T10:10:00Z")]


@pytest.fixture(scope="module")
def vectors():
    """The English MiniLM's vectors: the per-event method's weighting is what these tests
    check (the profile method is tests/test_entities.py's, on the default model)."""
    from vectorstream.transforms.model import choose_model
    from vectorstream.transforms.model import load_model as _load
    model = _load(choose_model("minilm").path, "cpu")
    texts = [f"{name}. {description}" for name, description in PRODUCTS.values()]
    return dict(zip(PRODUCTS, model.encode(texts, normalize_embeddings=True)))


def event(n, user, kind, product, timestamp):
    name, description = PRODUCTS[product]
    return {"event_id": f"e-{n}", "timestamp": timestamp, "user_id": user, "event_type": kind,
            "product": {"id": product, "name": name, "description": description,
                        "category": product.split("-")[0], "price": 10.0}}


def fill(store, vectors):
    store.ensure_collection("events", len(next(iter(vectors.values()))))
    events = [event(i, "user-1", *h) for i, h in enumerate(HISTORY)]
    # Every product seen by others, some many times (many events, one product).
    for i, product in enumerate(PRODUCTS):
        for j in range(3):
            events.append(event(100 + 3 * i + j, f"other-{j}", "view", product,
                                f"2024-05-0{j + 2}T09:00:00Z"))
    store.upsert("events", [Point(point_id(e["event_id"]), vectors[e["product"]["id"]].tolist(), e)
                            for e in events])


@pytest.fixture(params=["edge", "local"])
def store(request, tmp_path, vectors):
    opened = (open_store(path=str(tmp_path / "edge")) if request.param == "edge"
              else open_store(url="local://" + str(tmp_path / "local")))
    fill(opened, vectors)
    yield opened
    opened.close()


def test_for_a_user_purchases_weigh_most_and_what_they_know_is_left_out(store):
    recs, basis = recommend.for_user(store, "events", "user-1", limit=6)
    ids = [r.product["id"] for r in recs]
    assert basis.events == 3 and basis.by_type == {"purchase": 1, "add_to_cart": 1, "view": 1}
    assert basis.excluded_products == ["coffee-1", "run-1", "yoga-1"]
    assert not {"run-1", "yoga-1", "coffee-1"} & set(ids), "bought or seen: not recommended"
    assert len(ids) == len(set(ids)), "one hit per product"
    assert ids[0] in ("run-2", "run-3"), ids  # purchase (×3) > add_to_cart (×2) > view
    first = {group: min(i for i, p in enumerate(ids) if p.startswith(group))
             for group in ("run", "yoga", "coffee")}
    assert first["run"] < first["yoga"] < first["coffee"], ids
    assert set(ids[:3]) == {"run-2", "run-3", "yoga-2"}, ids  # like the weightiest events
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_what_a_user_bought_long_ago_is_left_out_too(store, vectors):
    store.upsert("events", [Point(point_id("e-old"), vectors["chair"].tolist(),
                                  event("old", "user-1", "purchase", "chair",
                                        "2024-01-01T10:00:00Z"))])
    recs, basis = recommend.for_user(store, "events", "user-1", limit=9, recent=3)
    assert basis.events == 3 and "chair" in basis.excluded_products
    assert "chair" not in [r.product["id"] for r in recs]


def test_for_a_product_gives_products_like_it_once_each(store):
    recs, product = recommend.for_product(store, "events", "coffee-1", limit=3)
    ids = [r.product["id"] for r in recs]
    assert product["name"] == "Burr coffee grinder"
    assert ids[0] == "coffee-2" and "coffee-1" not in ids and len(set(ids)) == 3


def test_an_unknown_user_or_product_is_said_plainly(store):
    with pytest.raises(recommend.NothingToRecommendFrom, match="no stored events of user"):
        recommend.for_user(store, "events", "nobody")
    with pytest.raises(recommend.NothingToRecommendFrom, match="no stored event of product"):
        recommend.for_product(store, "events", "nothing")


def test_the_recommend_command(tmp_path, vectors):
    path = str(tmp_path / "edge")
    store = open_store(path=path)
    fill(store, vectors)
    store.close()
    run = [sys.executable, "-m", "vectorstream", "recommend", "--qdrant_path", path,
           "--collection", "events", "--from_events"]
    out = subprocess.run(run + ["--user", "user-1", "--json"], capture_output=True,
                         text=True, check=True).stdout
    data = json.loads(out)
    assert data["recommendations"][0]["product"]["id"] in ("run-2", "run-3")
    assert data["from"]["excluded_products"] == ["coffee-1", "run-1", "yoga-1"]
    text = subprocess.run(run + ["--product", "yoga-1"], capture_output=True, text=True,
                          check=True).stdout
    assert text.splitlines()[0] == "Like Non-slip yoga mat (yoga-1):"
    assert "Cork yoga block" in text.splitlines()[1]
    failed = subprocess.run(run + ["--user", "nobody"], capture_output=True, text=True)
    assert failed.returncode == 2 and "no stored events of user 'nobody'" in failed.stderr
