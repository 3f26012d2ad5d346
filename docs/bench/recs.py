"""Recommendation quality, measured: synthetic shoppers with hidden tastes on the Turkish
and English shop of `vectorstream/bench/catalog_tr_en.py` (192 products, 8 categories).

    python docs/bench/recs.py [--model use-multilingual-v3] [--users 300] [--report FILE]

Each shopper has one or two favourite categories (hidden): 80 % of their 12–40 events
are there, the rest anywhere (views, searches, carts, wishlists, purchases, a removal now
and then), and their last event is a purchase in a favourite category of a product they
never touched, which is held out. Everything else goes through Kafka and a real run
(`vectorstream run`, DirectRunner, an embedded store), which keeps the events, products
and users collections. Then, for each shopper, ten recommendations by:

- popularity: the most bought products (the products collection's counts), less those the
  shopper bought or just saw;
- per-event: Qdrant's recommend query over the shopper's recent stored events
  (`recommend --user --from_events`);
- profile: one query with the shopper's profile vector against the products collection
  (`recommend --user`).

Reported: precision@10 by category (share of the ten in a favourite category), hit rate@10
(the held-out purchase among the ten), NDCG@10 (gain 1 for a favourite category, 2 for the
held-out product); the latency of both per-user methods (p50 / p99 over 30 calls each,
library calls, no process start-up) for users with 10, 1,000 and 10,000 events; and how
many seconds after an event a streaming run's profile reflects it (`--freshness`).
"""
import argparse
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.bench.catalog_tr_en import products  # noqa: E402
from vectorstream.io import recommend  # noqa: E402
from vectorstream.io.kafka_admin import ensure_topic  # noqa: E402
from vectorstream.io.produce import produce  # noqa: E402
from vectorstream.io.qdrant import open_store  # noqa: E402
from vectorstream.telemetry import percentile  # noqa: E402
from vectorstream.transforms.events import format_time  # noqa: E402

KINDS = [("view", 50), ("search", 10), ("add_to_cart", 15), ("wishlist_add", 10),
         ("purchase", 10), ("remove_from_cart", 5)]
EVENTS = "recs_events"


def event(user, product, kind, when, rng):
    return {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": format_time(when), "user_id": user, "event_type": kind,
            "session_id": f"s-{user}", "product": {k: product[k] for k in
                                                   ("id", "name", "description", "category",
                                                    "price")},
            "quantity": 1, "total_amount": product["price"], "payment_method": "credit_card"}


def shoppers(n_users, rng, start):
    items = products()
    categories = sorted({p["category"] for p in items})
    by_category = {c: [p for p in items if p["category"] == c] for c in categories}
    kinds, weights = zip(*KINDS)
    users, events = [], []
    for u in range(n_users):
        user = f"shopper{u}"
        favourites = rng.sample(categories, rng.choice([1, 2]))
        when = start + dt.timedelta(minutes=rng.randint(0, 600))
        touched = set()
        for _ in range(rng.randint(12, 40)):
            pool = by_category[rng.choice(favourites)] if rng.random() < 0.8 else items
            product = rng.choice(pool)
            touched.add(product["id"])
            events.append(event(user, product, rng.choices(kinds, weights)[0], when, rng))
            when += dt.timedelta(minutes=rng.randint(1, 90))
        held = [p for c in favourites for p in by_category[c] if p["id"] not in touched]
        users.append({"user": user, "favourites": favourites,
                      "held_out": rng.choice(held)["id"] if held else None})
    return users, events, items


def ndcg(ranked, favourites, held_out, items_by_id):
    def gain(pid):
        return 2 if pid == held_out else (1 if items_by_id[pid]["category"] in favourites
                                          else 0)
    dcg = sum(gain(pid) / math.log2(i + 2) for i, pid in enumerate(ranked))
    ideal = [2] + [1] * 9
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def popularity(store, user, limit):
    counts = {}
    for hit in store.scroll(f"{EVENTS}_products"):
        counts[hit.payload["product_id"]] = (hit.payload.get("counts") or {}).get("purchase", 0)
    known = set(recommend.bought_by(store, EVENTS, user))
    try:
        known |= set(recommend.profile_of(store, f"{EVENTS}_users", user).payload
                     .get("product_ids") or [])
    except recommend.NothingToRecommendFrom:
        pass
    return [p for p, _ in sorted(counts.items(), key=lambda kv: -kv[1]) if p not in known][:limit]


def methods(store):
    return {
        "popularity": lambda u: popularity(store, u, 10),
        "per-event": lambda u: [r.product["id"] for r in recommend.for_user(
            store, EVENTS, u, limit=10)[0]],
        "profile": lambda u: [r.product["id"] for r in recommend.for_user_profile(
            store, EVENTS, f"{EVENTS}_products", f"{EVENTS}_users", u, limit=10)[0]],
    }


def run_pipeline(args, topic, count, path, extra=()):
    argv = [sys.executable, "-m", "vectorstream", "run", "--bootstrap_servers",
            args.bootstrap_servers, "--topic", topic, "--consumer_group", f"g-{topic}",
            "--qdrant_path", path, "--collection", EVENTS, "--max_num_records", str(count),
            "--progress_seconds", "0", "--dead_letter_path", os.devnull, *extra]
    if args.model:
        argv += ["--model", args.model]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def latency(store, heavy_users, calls=30):
    out = {}
    for n, user in heavy_users.items():
        for name, fn in methods(store).items():
            if name == "popularity":
                continue
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                fn(user)
                times.append(time.perf_counter() - started)
            times.sort()
            out[f"{name} {n} events"] = {"p50_ms": round(percentile(times, 50) * 1000, 1),
                                         "p99_ms": round(percentile(times, 99) * 1000, 1)}
    return out


def freshness(args, tries=5):
    """Seconds from an event produced to the user's profile holding it, in a streaming
    run (the default 10-s window and a 2-s one)."""
    out = {}
    rng = random.Random(9)
    items = products()
    for window in (10, 2):
        topic = f"fresh-{uuid.uuid4().hex[:6]}"
        ensure_topic(args.bootstrap_servers, topic, partitions=1)
        path = tempfile.mkdtemp(prefix="fresh-")
        argv = [sys.executable, "-m", "vectorstream", "run", "--bootstrap_servers",
                args.bootstrap_servers, "--topic", topic, "--consumer_group", f"g-{topic}",
                "--qdrant_path", path, "--collection", EVENTS, "--window_seconds",
                str(window), "--progress_seconds", "0", "--dead_letter_path", os.devnull]
        if args.model:
            argv += ["--model", args.model]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delays = []
        try:
            for i in range(tries + 1):
                e = event("fresh-user", rng.choice(items), "purchase",
                          dt.datetime.now(dt.timezone.utc), rng)
                sent = time.time()
                produce(args.bootstrap_servers, topic, [(b"k", json.dumps(e).encode())])
                while True:
                    store = open_store(path=path, read_only=True)
                    try:
                        found = store.exists(f"{EVENTS}_users") and store.retrieve(
                            f"{EVENTS}_users", [recommend.user_point_id("fresh-user")])
                    finally:
                        store.close()
                    if found and e["event_id"] in found[0].payload.get("event_ids", []):
                        break
                    if time.time() - sent > 180:
                        raise RuntimeError("the profile never reflected the event")
                    time.sleep(0.2)
                if i:  # the first waited for the model to load
                    delays.append(time.time() - sent)
        finally:
            proc.terminate()
            proc.wait(60)
        delays.sort()
        out[f"window {window} s"] = {"p50_s": round(percentile(delays, 50), 2),
                                     "max_s": round(delays[-1], 2), "tries": len(delays)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--bootstrap_servers", default="127.0.0.1:9092")
    parser.add_argument("--freshness", action="store_true")
    parser.add_argument("--report", default=None)
    args = parser.parse_args()
    rng = random.Random(42)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    users, events, items = shoppers(args.users, rng, start)
    items_by_id = {p["id"]: p for p in items}
    heavy = {}
    for n in (10, 1_000, 10_000):  # users with that many events, for the latency
        user = f"heavy{n}"
        heavy[n] = user
        when = start
        for _ in range(n):
            events.append(event(user, rng.choice(items), rng.choices(
                [k for k, _ in KINDS], [w for _, w in KINDS])[0], when, rng))
            when += dt.timedelta(seconds=30)
    topic = f"recs-{uuid.uuid4().hex[:6]}"
    ensure_topic(args.bootstrap_servers, topic, partitions=2)
    produce(args.bootstrap_servers, topic, [(e["user_id"].encode(), json.dumps(
        e, ensure_ascii=False).encode()) for e in events])
    path = tempfile.mkdtemp(prefix="recs-")
    started = time.time()
    run_pipeline(args, topic, len(events), path)
    print(f"pipeline: {len(events)} events in {time.time() - started:.0f} s", file=sys.stderr)
    store = open_store(path=path)
    results = {}
    try:
        for name, fn in methods(store).items():
            precision, hits, gains, done = [], [], [], 0
            for u in users:
                if u["held_out"] is None:
                    continue
                ranked = fn(u["user"])[:10]
                done += 1
                precision.append(sum(items_by_id[p]["category"] in u["favourites"]
                                     for p in ranked) / 10)
                hits.append(float(u["held_out"] in ranked))
                gains.append(ndcg(ranked, u["favourites"], u["held_out"], items_by_id))
            results[name] = {"users": done,
                             "precision@10": round(sum(precision) / done, 3),
                             "hit_rate@10": round(sum(hits) / done, 3),
                             "ndcg@10": round(sum(gains) / done, 3)}
        timing = latency(store, heavy)
    finally:
        store.close()
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores", "model": args.model or "default",
              "users": args.users, "events": len(events), "quality": results,
              "latency": timing}
    if args.freshness:
        report["freshness"] = freshness(args)
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
