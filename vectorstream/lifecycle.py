"""The data lifecycle: forgetting a user, expiring old events, and a model upgrade
without downtime (`vectorstream forget`, `expire`, `reindex`).

- `forget_user`: every event point of the user, in every version of the events
  collection, and their profile in every version of the users collection; the products
  they touched are counted again without their events. Idempotent.
- `expire`: the event points older than a duration by event time (a filter delete on the
  indexed timestamp), in every version; products and profiles are not expired.
- `reindex`: a new version of the events, products and users collections for another
  model, built from the stored payloads (or, `from_kafka`, from the topic) while a live
  pipeline goes on writing the old one; then the aliases move (io.versions). Catch-up
  passes copy what was stored meanwhile (by `ingested_at`), until a pass finds nothing,
  and once more after the move. `catch_up` copies what the old pipeline stored after
  that, once it is stopped. `rollback` moves the aliases back.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import Callable, Dict, List, Optional

from vectorstream.io.entities import user_events
from vectorstream.io.qdrant import Point, Store
from vectorstream.io.store import PRODUCT_FIELDS, USER_FIELDS, Where
from vectorstream.io.versions import Aliases, version_name, versions_of
from vectorstream.transforms.entities import (EVENT_TYPES, product_point_id, profile,
                                              text_fingerprint, user_point_id)
from vectorstream.transforms.events import format_time

_LOG = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class LifecycleError(ValueError):
    """Something the user must change; the message says what."""


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' → seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not found or float(found.group(1)) <= 0:
        raise LifecycleError(f"--older_than {text!r} is not a duration: give a positive "
                             f"number and a unit, e.g. 30d, 12h, 90m, 45s or 2w")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _recount(store: Store, events: str, products: str, product_ids: List[str]) -> int:
    """The counts of these products again, from the events collection."""
    if not product_ids or not store.exists(products):
        return 0
    counts: Dict[str, Dict[str, int]] = {p: {} for p in product_ids}
    for event_type in EVENT_TYPES:
        found = store.facet(events, "product.id", Where(match={"event_type": event_type},
                                                         any={"product.id": product_ids}))
        for pid, n in found.items():
            counts[pid][event_type] = n
    existing = {h.id for h in store.retrieve(products, [product_point_id(p)
                                                        for p in product_ids])}
    for pid in product_ids:
        if product_point_id(pid) in existing:
            store.set_payload(products, [product_point_id(pid)], {
                "counts": {t: counts[pid].get(t, 0) for t in EVENT_TYPES},
                "events": sum(counts[pid].values())})
    return len(existing)


def forget_user(store: Store, events: str, products: str, users: str,
                user_id: str) -> Dict[str, int]:
    """Deletes every point of `user_id`; returns how many, by collection."""
    out = {"events": 0, "profiles": 0, "products_recounted": 0}
    touched: List[str] = []
    for name in versions_of(store, events):
        touched += list(store.facet(name, "product.id", Where(match={"user_id": user_id})))
        out["events"] += store.delete_where(name, Where(match={"user_id": user_id}))
    for name in versions_of(store, users):
        if store.retrieve(name, [user_point_id(user_id)]):
            store.delete(name, [user_point_id(user_id)])
            out["profiles"] += 1
    if touched:
        for name in versions_of(store, products):
            version = name.split("__", 1)[1] if "__" in name else None
            events_version = f"{events}__{version}" if version else events
            if events_version in versions_of(store, events):
                out["products_recounted"] += _recount(store, events_version, name,
                                                      sorted(set(touched)))
    return out


def expire(store: Store, events: str, older_than_seconds: float) -> Dict[str, object]:
    """Deletes the event points older than that by event time; returns the count and the
    cutoff."""
    cutoff = format_time(dt.datetime.now(dt.timezone.utc)
                         - dt.timedelta(seconds=older_than_seconds))
    deleted = sum(store.delete_where(name, Where(before=("timestamp", cutoff)))
                  for name in versions_of(store, events))
    return {"deleted": deleted, "cutoff": cutoff}


# ---------------------------------------------------------------------------------------
# Reindex

def _event_text(payload: Dict) -> str:
    product = payload.get("product") or {}
    description = str(product.get("description") or "").strip()
    name = str(product.get("name") or "")
    return f"{name}. {description}" if description else name


def _product_text(payload: Dict) -> str:
    description = str(payload.get("description") or "").strip()
    name = str(payload.get("name") or "")
    return f"{name}. {description}" if description else name


def _copy(read: Store, write: Store, source: str, target: str, encode, text_of,
          model_name: str, since: Optional[str] = None, batch: int = 256) -> (int, Optional[str]):
    """Copies `source`'s points (those ingested at or after `since`) into `target`,
    embedded again by `encode`; returns (how many were ingested after `since`, the newest
    ingested_at seen). The points stamped `since` itself are copied again (a batch shares
    one stamp), and not counted."""
    newest = since
    hits = list(read.scroll(source, where=Where(since=("ingested_at", since))
                            if since else None))
    fresh = sum(1 for h in hits if since is None or (h.payload.get("ingested_at") or "") > since)
    for start in range(0, len(hits), batch):
        chunk = hits[start:start + batch]
        vectors = encode([text_of(h.payload) for h in chunk])
        points = []
        for hit, vector in zip(chunk, vectors):
            payload = dict(hit.payload)
            payload["model"] = model_name
            if "text_hash" in payload:
                payload["text_hash"] = text_fingerprint(text_of(hit.payload))
            points.append(Point(hit.id, vector, payload))
            stamp = hit.payload.get("ingested_at")
            if stamp and (newest is None or stamp > newest):
                newest = stamp
        write.upsert(target, points)
    return fresh, newest


def _copy_fresh(open_read, write: Store, source: str, target: str, encode, text_of,
                model_name: str, since: Optional[str] = None) -> (int, Optional[str]):
    """`_copy` from a fresh read (on the embedded store: a copy of the shards taken now)."""
    read = open_read()
    try:
        return _copy(read, write, source, target, encode, text_of, model_name, since)
    finally:
        read.close()


def reindex(open_read: Callable[[], Store], open_write: Callable[[], Store], alias: str,
            model, encode, from_kafka: Optional[Callable[[str], None]] = None,
            max_passes: int = 30, settle_seconds: float = 5.0,
            report=print) -> Dict[str, object]:
    """Builds `alias`'s version for `model` (a ModelChoice; `encode(texts)` its vectors)
    and moves the aliases of the events, products and users collections to it."""
    products, users = f"{alias}_products", f"{alias}_users"
    write = open_write()
    try:
        aliases = Aliases(write)
        old = aliases.current(alias)
        if old is None:
            raise LifecycleError(
                f"{alias} is not a versioned collection (no alias of that name): it was made "
                f"before versions, or not at all; run the pipeline into a new --collection")
        new = version_name(alias, model.name)
        if new == old:
            raise LifecycleError(f"{alias} is already on {model.name} ({old}): nothing to do "
                                 f"(--since STAMP copies what the old pipeline stored after "
                                 f"the reindex)")
        started = time.time()
        begun = format_time(dt.datetime.fromtimestamp(started, dt.timezone.utc))
        from vectorstream.io.store import INDEXED_FIELDS
        write.ensure_collection(new, model.dim, INDEXED_FIELDS)

        def copy(source, target, text_of, since=None):  # re-embedded, from a fresh read
            return _copy_fresh(open_read, write, source, target, encode, text_of, model.name,
                               since)

        if from_kafka is not None:
            since = begun
            from_kafka(new)  # (what the live writers store from now on: caught up by --since)
            copied, passes = write.count(new), 0
        else:
            copied, since, passes = 0, None, 0
            while passes < max_passes:
                if passes:  # a quiet spell, for what the live writers store meanwhile
                    time.sleep(settle_seconds)
                n, newest = copy(old, new, _event_text, since)
                copied += n
                passes += 1
                report(f"pass {passes}: {n} events copied into {new}")
                if n == 0 and passes > 1:
                    break  # nothing over a whole spell: the live writers are caught up
                since = newest
        moved = {alias: (old, new)}
        products_old = aliases.current(products)
        if products_old:
            products_new = version_name(products, model.name)
            write.ensure_collection(products_new, model.dim, PRODUCT_FIELDS)
            copy(products_old, products_new, _product_text)
            moved[products] = (products_old, products_new)
        users_old = aliases.current(users)
        if users_old:
            users_new = version_name(users, model.name)
            write.ensure_collection(users_new, model.dim, USER_FIELDS)
            _rebuild_profiles(write, open_read, users_old, users_new, new, model.name)
            moved[users] = (users_old, users_new)
        for name, (_, target) in moved.items():
            aliases.point(name, target)
        if from_kafka is None:  # what the live pipeline stored between the last pass and now
            late, newest = copy(old, new, _event_text, since)
            since = newest or since
            copied += late
            report(f"after the move: {late} events copied")
        counts = {"old": _count(open_read, old), "new": write.count(new)}
        return {"alias": alias, "from": old, "to": new, "copied": copied, "passes": passes,
                "seconds": round(time.time() - started, 1), "counts": counts,
                "moved": {k: v[1] for k, v in moved.items()},
                "through": since or begun}
    finally:
        write.close()


def catch_up(open_read: Callable[[], Store], open_write: Callable[[], Store], alias: str,
             model, encode, since: str) -> Dict[str, object]:
    """After `reindex`: the old pipeline went on writing the old version until it was
    stopped; this copies what it stored from `since` (the reindex's "through") into the
    version now live, counts the products again and rebuilds the profiles. Run it once the
    old pipeline has stopped, before the new one starts; again is harmless (same ids)."""
    products, users = f"{alias}_products", f"{alias}_users"
    write = open_write()
    try:
        aliases = Aliases(write)
        new, old = aliases.current(alias), aliases.previous(alias)
        if new != version_name(alias, model.name) or not old:
            raise LifecycleError(
                f"{alias} is {new}, not a reindex to {model.name}'s version with a previous "
                f"one: --since catches up after `vectorstream reindex --model` to that model")
        started = time.time()
        copied, newest = _copy_fresh(open_read, write, old, new, encode, _event_text,
                                     model.name, since)
        if aliases.previous(products) and aliases.current(products):
            _copy_fresh(open_read, write, aliases.previous(products),
                        aliases.current(products), encode, _product_text, model.name)
        if aliases.previous(users) and aliases.current(users):
            _rebuild_profiles(write, open_read, aliases.previous(users),
                              aliases.current(users), new, model.name)
        counts = {"old": _count(open_read, old), "new": write.count(new)}
        return {"alias": alias, "from": old, "to": new, "copied": copied,
                "seconds": round(time.time() - started, 1), "counts": counts,
                "through": newest or since}
    finally:
        write.close()


def _count(open_read, name: str) -> int:
    read = open_read()
    try:
        return read.count(name)
    finally:
        read.close()


def _rebuild_profiles(write: Store, open_read, users_old: str, users_new: str,
                      events_new: str, model_name: str) -> int:
    """Every profile again, from the new events version (a pure function of the events)."""
    read = open_read()
    try:
        user_ids = [h.payload["user_id"] for h in read.scroll(users_old)]
    finally:
        read.close()
    points = []
    for user_id in user_ids:
        made = profile(user_events(write, events_new, user_id, 50), 50)
        if made:
            points.append(Point(user_point_id(user_id), made[0],
                                {"user_id": user_id, **made[1], "model": model_name}))
        if len(points) >= 256:
            write.upsert(users_new, points)
            points = []
    if points:
        write.upsert(users_new, points)
    return len(user_ids)


def rollback(store: Store, alias: str) -> Dict[str, str]:
    """Moves the aliases of the events, products and users collections back."""
    aliases = Aliases(store)
    previous = aliases.previous(alias)
    if not previous:
        raise LifecycleError(f"{alias} has no previous version to roll back to (it has "
                             f"never been reindexed)")
    moved = {}
    for name in (alias, f"{alias}_products", f"{alias}_users"):
        back = aliases.previous(name)
        if back and back != aliases.current(name):
            aliases.point(name, back)
            moved[name] = back
    return moved
