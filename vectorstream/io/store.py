"""The store interface the sink and the commands use, and what it deals in (points,
hits, errors). Two backends implement it (`vectorstream.io.qdrant.open_store` picks one):

- `EdgeStore`: an embedded Qdrant Edge shard on disk (`--qdrant_path`); one shard
  directory per collection, `<qdrant_path>/<collection>`. One process at a time.
- `ServerStore`: a Qdrant server through qdrant-client (`--qdrant_url http(s)://…`, API key
  from QDRANT_API_KEY), or qdrant-client's local mode (`--qdrant_url local://DIR`).

Both create the collection when missing (cosine distance, the model's dimension), refuse
a collection whose vector size differs, and index the payload fields people filter on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

_LOG = logging.getLogger(__name__)

# Payload fields with an index, and their types: the events collection's (filters, the
# products' counts by facet, a user's latest events by time, retention by event time) and
# the products' and users' collections'.
INDEXED_FIELDS = {
    "event_type": "keyword",
    "user_id": "keyword",
    "product.category": "keyword",
    "product.id": "keyword",
    "timestamp": "datetime",
    "ingested_at": "datetime",
}
# Indexed fields no vector search filters by: time ranges (retention's deletes, a model
# upgrade's copies, a user's latest events) and a product's events (counts, facets; they
# share one vector). Their indexes serve filters alone, so a Qdrant server builds no extra
# HNSW links for them (`enable_hnsw: false`): about half its indexing work here.
FILTER_ONLY_FIELDS = frozenset({"timestamp", "ingested_at", "product.id"})
PRODUCT_FIELDS = {"product_id": "keyword", "category": "keyword"}
USER_FIELDS = {"user_id": "keyword"}


@dataclass(frozen=True)
class Where:
    """A filter both backends understand: every `match` field equals its value, every
    `any` field is one of its values, no `not_any` field is one of its values, the point id
    is none of `not_ids`, and the datetime field of `before` is earlier than its time
    (RFC 3339)."""
    match: Mapping[str, Any] = field(default_factory=dict)
    any: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    not_any: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    not_ids: Sequence[str] = ()
    before: Optional[Tuple[str, str]] = None
    since: Optional[Tuple[str, str]] = None  # (datetime field, time): at or after it

    def __bool__(self):
        return bool(self.match or self.any or self.not_any or self.not_ids or self.before
                    or self.since)

    @staticmethod
    def of(match: Optional[Mapping[str, Any]] = None, where: Optional["Where"] = None) -> "Where":
        """`where` with the exact matches of `match` added (search's two ways to filter)."""
        where = where or Where()
        return Where(match={**where.match, **(match or {})}, any=where.any,
                     not_any=where.not_any, not_ids=where.not_ids, before=where.before,
                     since=where.since)


class StoreError(RuntimeError):
    """A store problem the user must fix; the message says what to do."""


@dataclass
class Point:
    id: str
    vector: Sequence[float]
    payload: Dict[str, Any]
    window: Any = None  # the Beam window it came from (the sink's dead letters go there)
    raw: Optional[bytes] = None  # the Kafka message it came from (a dead letter's original)


@dataclass
class Hit:
    id: str
    score: float
    payload: Dict[str, Any]
    vector: Optional[List[float]] = None


class Store:
    """What the pipeline and the CLI need from Qdrant."""

    description: str
    embedded = False  # an embedded shard (one call at a time), not a server

    def ensure_collection(self, name: str, dim: int,
                          indexes: Optional[Mapping[str, str]] = None) -> None:
        """Creates the collection when missing (cosine, `dim`), refuses one of another
        vector size, and indexes `indexes` (default: the events' INDEXED_FIELDS)."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def vector_size(self, name: str) -> Optional[int]:
        raise NotImplementedError

    def retrieve(self, name: str, ids: Sequence[str], with_vector: bool = False) -> List["Hit"]:
        """The points of `ids` that exist."""
        raise NotImplementedError

    def delete(self, name: str, ids: Sequence[str]) -> None:
        raise NotImplementedError

    def delete_where(self, name: str, where: Where) -> int:
        """Deletes the points `where` selects; returns how many there were."""
        raise NotImplementedError

    def count_where(self, name: str, where: Where) -> int:
        raise NotImplementedError

    def facet(self, name: str, key: str, where: Optional[Where] = None,
              limit: int = 10_000) -> Dict[Any, int]:
        """{value of payload field `key`: points holding it}, exactly, over `where`."""
        raise NotImplementedError

    def latest(self, name: str, where: Where, order_key: str, limit: int,
               with_vector: bool = True) -> List["Hit"]:
        """The `limit` points `where` selects with the largest `order_key` (an indexed
        datetime), newest first."""
        raise NotImplementedError

    def latest_many(self, name: str, wheres: Sequence[Where], order_key: str, limit: int,
                    with_vector: bool = True) -> List[List["Hit"]]:
        """`latest` for each of `wheres`, in that order; in few requests where the store
        can batch them (a server)."""
        return [self.latest(name, where, order_key, limit, with_vector) for where in wheres]

    def set_payload(self, name: str, ids: Sequence[str], payload: Dict[str, Any]) -> None:
        """Sets these payload keys on the points (the others stay)."""
        raise NotImplementedError

    def upsert(self, name: str, points: List[Point]) -> None:
        raise NotImplementedError

    def count(self, name: str) -> int:
        raise NotImplementedError

    def payload_field(self, name: str, ids: List[str], field: str) -> Dict[str, Any]:
        """{id: payload[field]} for the ids that exist and have the field."""
        raise NotImplementedError

    def search(self, name: str, vector: Sequence[float], limit: int = 5,
               match: Optional[Dict[str, Any]] = None,
               where: Optional[Where] = None) -> List[Hit]:
        raise NotImplementedError

    def scroll(self, name: str, batch: int = 1000,
               where: Optional[Where] = None) -> Iterator[Hit]:
        raise NotImplementedError

    def matching(self, name: str, match: Dict[str, Any], limit: int = 1000,
                 with_vector: bool = True) -> List[Hit]:
        """Points whose payload matches `match` exactly (a user's events, a product's)."""
        raise NotImplementedError

    def recommend(self, name: str, positives: Sequence[Sequence[float]],
                  negatives: Sequence[Sequence[float]], limit: int,
                  exclude: Optional[Dict[str, List[Any]]] = None) -> List[Hit]:
        """Qdrant's recommend query, `sum_scores` strategy (a point's score: the sum of its
        similarities to the positives less those to the negatives, so an example given
        twice counts twice), without the points whose payload field holds any of
        `exclude`'s values."""
        raise NotImplementedError

    def defer_indexing(self, name: str) -> bool:
        """Turns the vector indexing of collection `name` off for a backfill, remembering
        how it was (in the collection, so a run that does not finish leaves the way back
        behind it). Whether it did: only a Qdrant server builds its index as points
        arrive."""
        return False

    def resume_indexing(self, name: str) -> Optional[int]:
        """Turns the indexing `defer_indexing` turned off back on, as it was; the indexing
        threshold restored, or None when nothing was deferred."""
        return None

    def close(self) -> None:
        pass


def _floats(vector) -> List[float]:
    """A list of Python floats; numpy's tolist() does it in C (the model returns arrays)."""
    tolist = getattr(vector, "tolist", None)
    return tolist() if tolist is not None else [float(x) for x in vector]


def _size_mismatch(name: str, have: int, want: int) -> StoreError:
    return StoreError(
        f"collection {name!r} holds vectors of size {have}, but the model makes vectors of "
        f"size {want}: use another --collection, or the model the collection was built with.")


# ---------------------------------------------------------------------------------------


TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}
TRANSIENT_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}


def retry_after_seconds(exc: BaseException) -> Optional[float]:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def grpc_code(exc: BaseException) -> str:
    """A gRPC error's status code name (UNAVAILABLE, …), or "" for anything else."""
    code = getattr(exc, "code", None)
    try:
        return getattr(code(), "name", "") if callable(code) else ""
    except Exception:  # pylint: disable=broad-except
        return ""


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by themselves (the service is down or busy)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_HTTP
    if callable(getattr(exc, "code", None)):  # grpc.RpcError
        return grpc_code(exc) in TRANSIENT_GRPC
    # qdrant-client's transport errors and timeouts, httpx's: told by their classes' names,
    # so that a store without them (embedded) never imports them
    for cls in type(exc).__mro__:
        if (cls.__module__.startswith("qdrant_client") and cls.__name__ ==
                "ResponseHandlingException") or (cls.__module__.startswith("httpx") and
                                                 cls.__name__ == "TransportError"):
            return True
    text = str(exc)
    return "WouldBlock" in text or "Connection refused" in text or "timed out" in text
