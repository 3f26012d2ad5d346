"""Recommendations from the stored events, through Qdrant's own recommend query.

- For a user: the user's most recent events (`recent`, newest first by event time) are the
  examples, each counted by its type's weight (purchase > add_to_cart and wishlist_add >
  view and search; the `sum_scores` strategy adds an example's similarity once per count),
  a removal from the cart a negative example. Products the user already knows are left
  out: everything they ever bought, and the products of the recent events (viewed,
  carted), which would otherwise top the list, being the examples themselves.
- For a product: products like it (its own vector the one example), itself left out.

The store holds one point per event, so many points per product; the hits are folded to
one per product (its best-scoring event), the best `limit` of them returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from vectorstream.io.qdrant import Hit, Store
from vectorstream.io.store import Where
from vectorstream.transforms.entities import personal_score, product_point_id, user_point_id

# How many times an event of each type counts as an example (0: not at all).
WEIGHTS = {"purchase": 3, "add_to_cart": 2, "wishlist_add": 2, "view": 1, "search": 1}
NEGATIVE = {"remove_from_cart"}


class NothingToRecommendFrom(LookupError):
    """No stored event names the user or product; the message says so."""


@dataclass
class Recommendation:
    product: Dict[str, Any]
    score: float
    event_id: str


@dataclass
class Basis:
    """What a recommendation was made from."""
    events: int
    by_type: Dict[str, int] = field(default_factory=dict)
    excluded_products: List[str] = field(default_factory=list)


def _one_per_product(hits: List[Hit], limit: int) -> List[Recommendation]:
    out: Dict[str, Recommendation] = {}
    for hit in hits:  # best first
        product = hit.payload.get("product") or {}
        key = product.get("id")
        if key is not None and key not in out:
            out[key] = Recommendation(product, hit.score, hit.payload.get("event_id", ""))
            if len(out) == limit:
                break
    return list(out.values())


def for_user(store: Store, collection: str, user_id: str, limit: int = 5,
             recent: int = 50):
    """(recommendations, basis) for `user_id`."""
    events = store.matching(collection, {"user_id": user_id}, limit=10_000)
    if not events:
        raise NothingToRecommendFrom(f"no stored events of user {user_id!r} in {collection}")
    events.sort(key=lambda h: h.payload.get("timestamp", ""), reverse=True)
    bought = {_product_id(e) for e in events if e.payload.get("event_type") == "purchase"}
    events = events[:recent]
    positives, negatives, by_type = [], [], {}
    known = sorted(({_product_id(e) for e in events} | bought) - {None})
    for event in events:
        kind = event.payload.get("event_type", "")
        by_type[kind] = by_type.get(kind, 0) + 1
        if event.vector is None:
            continue
        if kind in NEGATIVE:
            negatives.append(event.vector)
        positives += [event.vector] * WEIGHTS.get(kind, 0)
    if not positives:
        raise NothingToRecommendFrom(f"user {user_id!r} has no events to recommend from "
                                     f"(only {', '.join(sorted(by_type))})")
    hits = _query(store, collection, positives, negatives, limit, known)
    return _one_per_product(hits, limit), Basis(len(events), by_type, known)


def _product_id(hit: Hit):
    return (hit.payload.get("product") or {}).get("id")


def for_product(store: Store, collection: str, product_id: str, limit: int = 5):
    """(recommendations, the product) for products like `product_id`."""
    events = store.matching(collection, {"product.id": product_id}, limit=1)
    if not events or events[0].vector is None:
        raise NothingToRecommendFrom(f"no stored event of product {product_id!r} in "
                                     f"{collection}")
    hits = _query(store, collection, [events[0].vector], [], limit, [product_id])
    return _one_per_product(hits, limit), events[0].payload.get("product") or {}


def _query(store: Store, collection: str, positives, negatives, limit: int,
           excluded: List[Any]) -> List[Hit]:
    # Many events share a product: ask for enough points to find `limit` products.
    return store.recommend(collection, positives, negatives, limit=max(50, limit * 20),
                           exclude={"product.id": excluded} if excluded else None)


def as_json(recommendations: List[Recommendation], basis: Optional[Dict] = None) -> Dict:
    return {"recommendations": [{"product": r.product, "score": r.score,
                                 "event_id": r.event_id} for r in recommendations],
            **({"from": basis} if basis else {})}


# ---------------------------------------------------------------------------------------
# From the products and users collections (the pipeline's products and profiles).

def as_product(payload: Dict[str, Any]) -> Dict[str, Any]:
    """A product point's payload as the product it is (fields, id), with its counts."""
    product = {k: v for k, v in payload.items()
               if k not in ("product_id", "fields_at", "text_hash", "model")}
    return {"id": payload.get("product_id"), **product}


def profile_of(store: Store, users: str, user_id: str) -> Hit:
    found = store.retrieve(users, [user_point_id(user_id)], with_vector=True) \
        if store.exists(users) else []
    if not found or found[0].vector is None:
        raise NothingToRecommendFrom(f"no profile of user {user_id!r} in {users}")
    return found[0]


def bought_by(store: Store, events: str, user_id: str) -> List[str]:
    """Every product the user ever bought (a facet of their purchases)."""
    return sorted(store.facet(events, "product.id", Where(match={
        "user_id": user_id, "event_type": "purchase"})))


def for_user_profile(store: Store, events: str, products: str, users: str, user_id: str,
                     limit: int = 5):
    """(recommendations, basis) for `user_id`: one query with their profile vector against
    the products collection, what they ever bought and the products of the events behind
    the profile left out."""
    user = profile_of(store, users, user_id)
    known = sorted(set(bought_by(store, events, user_id))
                   | set(user.payload.get("product_ids") or []))
    hits = store.search(products, user.vector, limit=limit,
                        where=Where(not_ids=[product_point_id(p) for p in known]))
    recs = [Recommendation(as_product(h.payload), h.score, "") for h in hits]
    return recs, Basis(int(user.payload.get("events", 0)),
                       dict(user.payload.get("by_type") or {}), known)


def for_product_point(store: Store, products: str, product_id: str, limit: int = 5):
    """(recommendations, the product) from the products collection: its own vector, itself
    left out."""
    found = store.retrieve(products, [product_point_id(product_id)], with_vector=True) \
        if store.exists(products) else []
    if not found or found[0].vector is None:
        raise NothingToRecommendFrom(f"no product {product_id!r} in {products}")
    hits = store.search(products, found[0].vector, limit=limit,
                        where=Where(not_ids=[found[0].id]))
    return ([Recommendation(as_product(h.payload), h.score, "") for h in hits],
            as_product(found[0].payload))


def search_for_user(store: Store, products: str, users: str, user_id: str, query_vector,
                    limit: int = 5, weight: float = 0.3, candidates: int = 50,
                    floor: float = 0.5):
    """Products for a query, nudged by the user's profile: the query picks the candidates
    (of its max(candidates, 5 × limit) nearest products, those scoring at least `floor`
    of the best one), the profile reorders them, each scored q·x + weight · p·x
    (`transforms.entities.personal_score`). A short query matches every product weakly;
    blending the vectors before the search, or reordering all of the nearest, let the
    profile bring products the query never asked for (books asked, laptops found)."""
    user = profile_of(store, users, user_id)
    query = list(map(float, query_vector))
    hits = store.search(products, query, limit=max(candidates, 5 * limit))
    if not hits:
        return []
    if hits[0].score > 0:
        hits = [h for h in hits if h.score >= floor * hits[0].score]
    vectors = {h.id: h.vector for h in store.retrieve(products, [h.id for h in hits],
                                                      with_vector=True)}
    scored = sorted(((personal_score(h.score, vectors.get(h.id), user.vector, weight), h)
                     for h in hits), key=lambda pair: -pair[0])
    return [Recommendation(as_product(h.payload), score, "") for score, h in scored[:limit]]
