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
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

_LOG = logging.getLogger(__name__)

# Payload fields with an index, and their types.
INDEXED_FIELDS = {
    "event_type": "keyword",
    "user_id": "keyword",
    "product.category": "keyword",
    "timestamp": "datetime",
}


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

    def ensure_collection(self, name: str, dim: int) -> None:
        raise NotImplementedError

    def upsert(self, name: str, points: List[Point]) -> None:
        raise NotImplementedError

    def count(self, name: str) -> int:
        raise NotImplementedError

    def payload_field(self, name: str, ids: List[str], field: str) -> Dict[str, Any]:
        """{id: payload[field]} for the ids that exist and have the field."""
        raise NotImplementedError

    def search(self, name: str, vector: Sequence[float], limit: int = 5,
               match: Optional[Dict[str, Any]] = None) -> List[Hit]:
        raise NotImplementedError

    def scroll(self, name: str, batch: int = 1000) -> Iterator[Hit]:
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


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by themselves (the service is down or busy)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_HTTP
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            return getattr(code(), "name", "") in TRANSIENT_GRPC
        except Exception:  # pylint: disable=broad-except
            return False
    try:
        from qdrant_client.http.exceptions import ResponseHandlingException
        if isinstance(exc, ResponseHandlingException):  # transport errors, timeouts
            return True
    except ImportError:
        pass
    try:
        import httpx
        if isinstance(exc, httpx.TransportError):
            return True
    except ImportError:
        pass
    text = str(exc)
    return "WouldBlock" in text or "Connection refused" in text or "timed out" in text
