"""Products and users as vectors of their own: pure functions (no Beam, no store).

- A product's point: id from the product id, vector = its text's embedding, payload = the
  product's latest fields, its counts by event type and when it was last seen. The counts
  are read from the events collection, whose points are the events themselves (one a
  distinct event id), so a replayed event counts once however often it comes.
- A user's profile: one vector from the user's last N events (by event time, newest
  first; ties by event id), each weighted by its type (purchase 3, add_to_cart and
  wishlist_add 2, view and search 1, remove_from_cart -1) and decayed by its age relative
  to the newest of them (half-life PROFILE_HALF_LIFE_DAYS), summed and normalised. A pure
  function of that set of events: a replayed or duplicated event, or another order of
  arrival, gives the same profile.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

# Fixed namespaces: never change them, or points would be written twice under new ids.
PRODUCT_NAMESPACE = uuid.UUID("2d1b6f3e-8c4a-5e7b-9a0d-3c5e7f9b1d2a")
USER_NAMESPACE = uuid.UUID("7a3c9e1b-4d6f-5a8c-b2e4-6f8a0c2e4b6d")

WEIGHTS = {"purchase": 3.0, "add_to_cart": 2.0, "wishlist_add": 2.0, "view": 1.0,
           "search": 1.0, "remove_from_cart": -1.0}
PROFILE_HALF_LIFE_DAYS = 14.0
EVENT_TYPES = tuple(WEIGHTS)


def product_point_id(product_id: str) -> str:
    return str(uuid.uuid5(PRODUCT_NAMESPACE, product_id))


def user_point_id(user_id: str) -> str:
    return str(uuid.uuid5(USER_NAMESPACE, user_id))


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def text_fingerprint(text: str) -> str:
    """What a product's vector was made from: a changed name or description is embedded
    again, an unchanged one is not."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def product_payload(product: Dict[str, Any], seen_at: Optional[str], counts: Dict[str, int],
                    fields_at: str, text: str, model: str) -> Dict[str, Any]:
    """The payload of a product's point: its fields (as the event or catalog record gave
    them), `counts` by event type (every type, 0 where none), `events` (their sum),
    `last_seen` (the newest event time of it, or None when only the catalog knows it),
    when its fields were last set, and what its vector was made from."""
    payload = {k: v for k, v in product.items() if k != "id"}
    payload.update(product_id=product["id"], counts={t: int(counts.get(t, 0)) for t in
                                                     EVENT_TYPES},
                   events=int(sum(counts.values())), last_seen=seen_at,
                   fields_at=fields_at, text_hash=text_fingerprint(text), model=model)
    return payload


def newer(a: Optional[str], b: Optional[str]) -> Optional[str]:
    """The later of two RFC 3339 times (either may be None)."""
    if a is None or b is None:
        return a or b
    return a if parse_time(a) >= parse_time(b) else b


def pick_latest(sightings: Iterable[Tuple[str, str, Dict, Any, str]]) -> Tuple:
    """Of one product's sightings (time, event id, product fields, vector, text) in a
    window, the latest by event time (ties by event id): its fields win."""
    return max(sightings, key=lambda s: (parse_time(s[0]), s[1]))


def last_events(events: Sequence[Dict[str, Any]], n: int) -> List[Dict[str, Any]]:
    """The `n` newest of a user's events (dicts with event_id, event_type, timestamp and
    vector), newest first, ties by event id; each event id once."""
    unique = {e["event_id"]: e for e in events}
    ordered = sorted(unique.values(), key=lambda e: (parse_time(e["timestamp"]), e["event_id"]),
                     reverse=True)
    return ordered[:n]


def profile(events: Sequence[Dict[str, Any]], n: int = 50,
            half_life_days: float = PROFILE_HALF_LIFE_DAYS) -> Optional[Tuple[List[float],
                                                                                 Dict[str, Any]]]:
    """(vector, facts) of a user's profile from their last `n` events, or None when they
    weigh nothing (only removals, say). `facts`: the event ids it was made from, the
    counts by type, the newest event time and the products of those events."""
    chosen = last_events(events, n)
    if not chosen:
        return None
    import numpy as np
    newest = parse_time(chosen[0]["timestamp"])
    weights, vectors = [], []
    by_type: Dict[str, int] = {}
    for event in chosen:
        by_type[event["event_type"]] = by_type.get(event["event_type"], 0) + 1
        age_days = (newest - parse_time(event["timestamp"])).total_seconds() / 86400.0
        weight = WEIGHTS.get(event["event_type"], 0.0) * 0.5 ** (age_days / half_life_days)
        if weight:
            weights.append(weight)
            vectors.append(event["vector"])
    if not weights or not any(WEIGHTS.get(e["event_type"], 0) > 0 for e in chosen):
        return None
    # the weighted sum in numpy, in float64 as the Python loop summed (50 events of 512
    # floats: 2-3 ms a profile in Python, which a run with profiles spent per user)
    total = np.asarray(weights) @ np.asarray(vectors, dtype=np.float64)
    norm = math.sqrt(float(total @ total))
    if norm == 0.0:
        return None
    facts = {"event_ids": [e["event_id"] for e in chosen], "events": len(chosen),
             "by_type": by_type, "newest_event": chosen[0]["timestamp"],
             "product_ids": list(dict.fromkeys(e["product_id"] for e in chosen
                                               if e.get("product_id")))}
    return (total / norm).tolist(), facts


def personal_score(query_score: float, product_vector: Optional[Sequence[float]],
                   profile_vector: Optional[Sequence[float]], weight: float = 0.3) -> float:
    """Personalised search's score of a product the query found: the query's cosine plus
    `weight` times the profile's (q·x + w·p·x, all vectors normalised). 0.3 keeps the query
    in charge: the profile reorders what matches the text, it does not replace it."""
    if profile_vector is None or product_vector is None:
        return query_score
    return query_score + weight * sum(p * x for p, x in zip(profile_vector, product_vector))
